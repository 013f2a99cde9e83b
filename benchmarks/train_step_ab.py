r"""Before and after in one interleaved run: the SimCLR ConvNet step of an older commit, of the working tree, and
PyTorch's, timed ABBA-interleaved in one process (medians), as `train_step.py` times JAX against PyTorch.

  python benchmarks/train_step_ab.py --before bb58334            # both ConvNet rows, 8 steps, 3 runs
  python benchmarks/train_step_ab.py --before main --rows 28x28x1 --steps 10 --runs 5

The older commit's `ssl_jax` is extracted with `git archive` into a temporary folder and imported under the name
`ssl_jax_before` (its imports rewritten), so both steps run side by side under the same load. Each run builds
both JAX steps and the PyTorch step afresh and prints one line: images/s of each, and the ratios; the last line
gives the medians over runs. Both JAX steps must give the same first-step loss up to float rounding.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train_step.py, before torch is imported
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))

import numpy as np  # noqa: E402

import _timing  # noqa: E402  pylint: disable=wrong-import-position
import train_step as TS  # noqa: E402  pylint: disable=wrong-import-position


def extract_before(rev: str, into: str) -> None:
  """`ssl_jax` at `rev` as package `ssl_jax_before` under `into`."""
  root = os.path.dirname(_HERE)
  archive = subprocess.run(["git", "-C", root, "archive", rev, "ssl_jax"], check=True, capture_output=True).stdout
  subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
  pkg = pathlib.Path(into) / "ssl_jax_before"
  (pathlib.Path(into) / "ssl_jax").rename(pkg)
  for path in pkg.rglob("*.py"):
    text = re.sub(r"\bssl_jax\b(?=[.\s])", "ssl_jax_before", path.read_text())
    path.write_text(text)
  sys.path.insert(0, into)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--before", required=True, help="git revision of the 'before' step (e.g. main, bb58334)")
  parser.add_argument("--rows", nargs="+", default=["28x28x1", "32x32x3"], help="ConvNet rows by input shape")
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--steps", type=int, default=8, help="timed steps per side per run")
  parser.add_argument("--runs", type=int, default=3)
  args = parser.parse_args()
  _timing.setup_torch_threads()
  rows = {"x".join(map(str, r.image_shape)): r for r in TS.ROWS if r.key == "convnet"}
  with tempfile.TemporaryDirectory() as tmp:
    extract_before(args.before, tmp)
    print("Machine: " + _timing.format_machine(_timing.machine_info()), flush=True)
    for name in args.rows:
      row, ratios = rows[name], []
      rng = np.random.default_rng(0)
      images = rng.integers(0, 256, (args.batch_size, *row.image_shape), dtype=np.uint8)
      labels = rng.integers(0, 10, (args.batch_size,), dtype=np.int32)
      for run in range(args.runs):
        before = TS.JaxStep(row, args.batch_size, images, labels, package="ssl_jax_before")
        after = TS.JaxStep(row, args.batch_size, images, labels)
        torch_step = TS.TorchStep(row, after.method, images)
        for s in (before, after, torch_step):
          s.warmup()
        if not np.isclose(before.first_loss, after.first_loss, rtol=1e-5):
          raise RuntimeError(f"before and after compute different losses: {before.first_loss}, {after.first_loss}")
        load = os.getloadavg()[0]
        b, a, t = (x.median for x in _timing.interleaved([before, after, torch_step], args.steps))
        ratios.append((t / b, t / a, b / a))
        n = args.batch_size
        print(f"{name} run {run + 1}: load {load:.1f}; before {n / b:.0f}, after {n / a:.0f}, PyTorch {n / t:.0f} "
              f"img/s; before/PyTorch {t / b:.2f}x, after/PyTorch {t / a:.2f}x, after/before {b / a:.2f}x",
              flush=True)
      med = [statistics.median(r[i] for r in ratios) for i in range(3)]
      print(f"{name} medians of {args.runs} runs: before/PyTorch {med[0]:.2f}x, after/PyTorch {med[1]:.2f}x, "
            f"after/before {med[2]:.2f}x", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
