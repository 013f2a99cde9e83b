"""The benchmark scripts' own arithmetic and the paths they take on a machine without TensorFlow."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import train_step  # noqa: E402  pylint: disable=wrong-import-position


def test_step_flops_counts_every_convolution_of_the_backward_pass():
  """A SimCLR step is at least forward + backward (3x the forward) of the encoder for both views of every image.

  The count must not be XLA's count of the CPU's chunked kernel gradient (a loop counted once: about 2/3 of the
  step) nor of a GPU module whose convolutions are cuDNN calls (counted 0).
  """
  from ssl_jax.models.registry import ENCODERS  # pylint: disable=g-import-not-at-top
  size, batch = 64, 2
  encoder = ENCODERS["resnet50_imagenet"]()
  x = jnp.zeros((1, size, size, 3))
  variables = jax.eval_shape(lambda: encoder.init(jax.random.key(0), x, train=False))
  forward = jax.jit(lambda v, x: encoder.apply(v, x, train=False)).lower(variables, x).cost_analysis()["flops"]
  flops = train_step.step_flops("ResNet-50 SimCLR", batch, size, "float32")
  assert 3 * 2 * batch * forward * 0.98 <= flops <= 3 * 2 * batch * forward * 1.3


def test_mil_throughput_runs_from_an_npz_without_tensorflow(tmp_path):
  """--export-npz writes mnist5k's training digits; --images-npz reads them with TensorFlow and TFDS unimportable."""
  npz = str(tmp_path / "digits.npz")
  script = os.path.join(ROOT, "benchmarks", "mil_throughput.py")
  subprocess.run([sys.executable, script, "--export-npz", npz], check=True, capture_output=True, cwd=ROOT)
  blocked = ("import runpy, sys\n"
             "for m in ('tensorflow', 'tensorflow_datasets', 'clu', 'mlxtend'): sys.modules[m] = None\n"
             f"sys.argv = [{script!r}] + sys.argv[1:]\n"
             f"runpy.run_path({script!r}, run_name='__main__')\n")
  out = subprocess.run([sys.executable, "-c", blocked, "--images-npz", npz, "--encoder", "mlp", "--batches", "4",
                        "--repeats", "1", "--bags-per-repeat", "8"], capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [line for line in out.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")]
  assert len(rows) == 2 and "1.00x" in rows[0]
