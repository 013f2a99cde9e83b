r"""Training-step time of real experiment configs on one CPU device against one device per core.

  python benchmarks/cpu_devices.py                          # the default configs, 2 rounds
  python benchmarks/cpu_devices.py --configs configs/ssl/simclr_fashion_mnist.py --steps 80 --rounds 3 --markdown

XLA:CPU runs each convolution on a single thread; the trainer therefore gives a run on CPU one XLA device per core
by default (`distributed.cpu_devices=0`, `ssl_jax.train.mesh.setup_cpu_devices`) and splits the batch over them.
This script runs each config through the real command line, `python -m ssl_jax.main`, once with
`--config.distributed.cpu_devices=1` (one device, how every run went before) and once with
`--config.distributed.cpu_devices=0` (one device per core: the default, unless the config sets a count), alternating
the order each round, for `--warmup + --steps` steps with no evaluation, and times the last `--steps` steps from the
run's own `train/seconds` log (compilation and the first steps excluded). It reports the median milliseconds per
step of each setting over the rounds and the speed-up. Runs happen one at a time; run it on an otherwise idle
machine. The results of our last run are in `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
sys.path.insert(0, _HERE)
import _timing  # noqa: E402  pylint: disable=g-import-not-at-top

DEFAULT_CONFIGS = (
    "configs/ssl/simclr_fashion_mnist.py",
    "configs/ssl/dino_fashion_mnist.py",
    "configs/ssl/barlow_twins_fashion_mnist.py",
    "configs/semi/fixmatch_fashion_mnist.py",
    "configs/mil/mil_mnist_bags.py",
    "configs/metric/triplet_fashion_mnist.py",
)


def time_run(config: str, cpu_devices: int, *, warmup: int, steps: int, workdir: str) -> tuple[float, int]:
  """(ms per step over the last `steps` steps, devices used) of one fresh run of `config`."""
  total = warmup + steps
  command = [sys.executable, "-m", "ssl_jax.main", f"--config={config}", f"--workdir={workdir}",
             f"--config.total_steps={total}", "--config.log_every_steps=1", "--config.eval_every_steps=0",
             "--config.eval.final=false", f"--config.checkpoint_every_steps={total}",
             f"--config.distributed.cpu_devices={cpu_devices}"]
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
  if out.returncode:
    raise SystemExit(f"error: {' '.join(command)} failed:\n{out.stdout[-1500:]}{out.stderr[-1500:]}")
  seconds = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for row in map(json.loads, f):
      if "train/seconds" in row:
        seconds[row["step"]] = row["train/seconds"]
  match = re.search(r"global batch \d+ on (\d+) device\(s\)", out.stdout)
  if not match:
    raise SystemExit(f"error: no device count in the log of {' '.join(command)}")
  devices = int(match.group(1))
  return 1e3 * (seconds[total] - seconds[warmup]) / steps, devices


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
  parser.add_argument("--warmup", type=int, default=10, help="steps run before the timing starts")
  parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
  parser.add_argument("--rounds", type=int, default=2, help="runs per config and setting")
  parser.add_argument("--markdown", action="store_true")
  parser.add_argument("--json", metavar="PATH", help="also write every run's time as JSON")
  args = parser.parse_args(argv)
  info = _timing.machine_info(with_torch=False)
  print("Machine: " + _timing.format_machine(info), file=sys.stderr, flush=True)
  rows, record = [], []
  with tempfile.TemporaryDirectory() as tmp:
    for config in args.configs:
      times = {1: [], 0: []}
      devices = {}
      for r in range(args.rounds):
        for setting in ((1, 0) if r % 2 == 0 else (0, 1)):
          workdir = os.path.join(tmp, f"{os.path.basename(config)}.{setting}.{r}")
          ms, devices[setting] = time_run(config, setting, warmup=args.warmup, steps=args.steps, workdir=workdir)
          times[setting].append(ms)
          print(f"{config} cpu_devices={setting} ({devices[setting]} device(s)), round {r}: {ms:.1f} ms/step",
                file=sys.stderr, flush=True)
      one, many = float(np.median(times[1])), float(np.median(times[0]))
      rows.append([config, f"{one:.1f}", f"{many:.1f}", str(devices[0]), f"{one / many:.2f}x"])
      record.append({"config": config, "one_device_ms": times[1], "one_per_core_ms": times[0],
                     "one_per_core_devices": devices[0]})
  headers = ["config", "1 device ms/step", "one per core ms/step", "devices", "speed-up"]
  print(_timing.format_table(headers, rows, markdown=args.markdown, align_right=[False, True, True, True, True]))
  print(f"\nMachine: {_timing.format_machine(info)}. Medians of {args.rounds} runs per setting, {args.steps} steps "
        f"each after {args.warmup}; command: python benchmarks/cpu_devices.py {' '.join(argv or sys.argv[1:])}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": info, "args": vars(args), "results": record}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
