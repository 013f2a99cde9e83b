"""The public surface of `ssl_jax.losses`: every name importable, and no TensorFlow pulled in."""

import subprocess
import sys


def test_import_losses_does_not_import_tensorflow():
  code = ("import sys, ssl_jax.losses as L; "
          "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
          "assert all(callable(getattr(L, n)) for n in L.__all__); print(len(L.__all__))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert int(out.stdout) >= 35
