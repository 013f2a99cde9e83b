r"""Every self-supervised method on Fashion-MNIST, trained from its config and compared in one table.

  python experiments/ssl_benchmark.py [--methods=simclr,byol,...] [--out=experiments/results/ssl_benchmark]
                                      [--workdirs=workdirs/ssl_benchmark] [--data_dir=/usr/share/datasets/fashion-mnist]
                                      [--set=total_steps=600 --set=byol.tau_base=0.98 ...]

Runs `configs/ssl/<method>_fashion_mnist.py` of every self-supervised method in `ssl_jax.methods.METHODS`
(or the chosen subset), one after the other, each as its own `python -m ssl_jax.main` process in
`<workdirs>/<method>`. A run that finished (its `results.json` holds the config's number of steps) is reused,
and a run that was interrupted resumes from its last checkpoint, so an interrupted benchmark continues where it
stopped; a run whose config.json differs from the config asked for (another `--set`, an edited config) is refused
with the differing fields, never reused. Two-phase methods train their first phase first (BEiT: the `vq_vae`
tokenizer, passed by `init_from`).

`--set=KEY=VALUE` overrides a config field. A field of a method's own section (`byol.tau_base=0.98`) applies to
that method's run only (and is refused when that method is not benchmarked); any other field
(`total_steps=600`, `optim.lr=1e-3`) applies to every run.

Writes `results.md` (linear probe top-1, kNN top-1, the last RankMe of the collapse monitor, train seconds and
steps per method, with the raw-pixel probe as the reference row) and `ssl_benchmark.png` (bar chart, the
raw-pixel probe and the 0.88 goal as lines). Each config's docstring gives its budget on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Methods whose config needs another run first: method -> (the first phase's method, the config field
# through which the second phase reads it).
FIRST_PHASE = {"beit": ("vq_vae", "init_from")}
# The joint-embedding methods, which the goal (linear probe >= 0.88) is about.
JOINT_EMBEDDING = ("simclr", "moco_v2", "moco_v3", "byol", "simsiam", "barlow_twins", "vicreg", "swav", "dino",
                   "nnclr")
GOAL = 0.88


def ssl_methods() -> list[str]:
  """Every method of the self-supervised family that has a Fashion-MNIST config, in METHODS order."""
  from ssl_jax.methods import METHODS  # pylint: disable=g-import-not-at-top
  return [name for name, module in METHODS.items()
          if module.__name__.split(".")[-2] == "ssl" and os.path.exists(config_path(name))
          and name not in {first for first, _ in FIRST_PHASE.values()}]


class Refused(Exception):
  """A sentence for the user (exit status 2): a failed run, or a workdir of another recipe."""


def config_path(method: str) -> str:
  return os.path.join(ROOT, "configs", "ssl", f"{method}_fashion_mnist.py")


def finished(workdir: str, total_steps: int) -> dict | None:
  """The results of a finished run in `workdir`, or None."""
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return None
  return results if results.get("steps") == total_steps and "linear_probe_top1" in results else None


def last_rankme(workdir: str) -> float | None:
  value = None
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      for record in map(json.loads, f):
        value = record.get("eval/rankme", value)
  except (OSError, ValueError):
    return None
  return value


def train(method: str, workdir: str, data_dir: str | None, extra: list[str], sets: list[str]) -> dict:
  """Train `method`'s config in `workdir` (resuming or reusing it); its results.json."""
  from ssl_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import trainer  # pylint: disable=g-import-not-at-top
  command = [sys.executable, "-m", "ssl_jax.main", f"--config={config_path(method)}", f"--workdir={workdir}",
             *extra, *(f"--config.{s}" for s in sets)]
  try:  # the config this run is trained with, to compare with a run already in its workdir
    config = config_lib.from_command(command)
    changes = trainer.resume_changes(config, workdir)
  except UserError as e:
    raise Refused(f"{method}: {e}") from None
  if changes:
    raise Refused(f"{method}: {workdir} holds a run of another recipe ({changes}); pass the --set values "
                  "that run was trained with, or another --workdirs.")
  if results := finished(workdir, config.total_steps):
    print(f"{method}: reusing the finished run in {workdir}", flush=True)
    return results
  if data_dir and config.data.name == "fashion_mnist":
    command.append(f"--config.data.data_dir={data_dir}")
  print(f"{method}: {' '.join(command[1:])}", flush=True)
  t0 = time.time()
  status = subprocess.run(command, cwd=ROOT, check=False).returncode
  if status != 0:
    raise Refused(f"the {method} run stopped with exit status {status}; its log is above. Fix it and "
                  "run this command again: finished runs are reused and this one resumes.")
  print(f"{method}: {time.time() - t0:.0f} s", flush=True)
  results = finished(workdir, config.total_steps)
  if results is None:
    raise Refused(f"the {method} run ended without results in {workdir}/results.json.")
  return results


def table(rows: list[tuple[str, dict, float | None]], pixel: float | None) -> str:
  lines = ["| method | linear probe top-1 | kNN top-1 | RankMe (last monitor) | train seconds | steps |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
  for method, r, rank in rows:
    rank_text = f"{rank:.0f}" if rank is not None else "-"
    lines.append(f"| `{method}` | {r['linear_probe_top1']:.4f} | {r['knn_top1']:.4f} | {rank_text} | "
                 f"{r['train_seconds']:.0f} | {r['steps']} |")
  if pixel is not None:
    lines.append(f"| raw pixels (reference) | {pixel:.4f} | - | - | - | - |")
  return "\n".join(lines)


def plot(rows, pixel: float | None, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  names = [m for m, _, _ in rows]
  x = np.arange(len(rows))
  fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(rows) + 2), 4.2))
  ax.bar(x - 0.2, [r["linear_probe_top1"] for _, r, _ in rows], 0.4, label="linear probe top-1")
  ax.bar(x + 0.2, [r["knn_top1"] for _, r, _ in rows], 0.4, label="kNN top-1")
  if pixel is not None:
    ax.axhline(pixel, color="gray", linestyle="--", linewidth=1, label=f"raw-pixel probe {pixel:.3f}")
  ax.axhline(GOAL, color="tab:red", linestyle=":", linewidth=1, label=f"goal {GOAL} (joint-embedding)")
  low = min([r["knn_top1"] for _, r, _ in rows] + [r["linear_probe_top1"] for _, r, _ in rows] + [pixel or 1])
  ax.set_ylim(max(0.0, low - 0.05), 1.0)
  ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
  ax.set_ylabel("Fashion-MNIST test top-1")
  ax.set_title("Self-supervised methods, frozen features (each config's own budget on 2 CPU cores)", fontsize=9)
  ax.legend(fontsize=7, loc="upper center", ncol=4)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="", help="comma-separated subset (default: every SSL method)")
  parser.add_argument("--out", default="experiments/results/ssl_benchmark")
  parser.add_argument("--workdirs", default="workdirs/ssl_benchmark")
  parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist",
                      help="folder of the Fashion-MNIST IDX files (Debian's dataset-fashion-mnist)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override, e.g. --set=total_steps=600 (every run) or --set=byol.tau_base=0.98 "
                      "(that method's run only); repeatable")
  args = parser.parse_args(argv)
  bad = [s for s in args.set if "=" not in s]
  if bad:
    print(f"error: --set takes KEY=VALUE (e.g. --set=total_steps=600), got {bad[0]!r}.", file=sys.stderr)
    return 2
  from ssl_jax import cli  # pylint: disable=g-import-not-at-top
  cli.quiet_libraries()

  available = ssl_methods()
  methods = [m.strip() for m in args.methods.split(",") if m.strip()] or available
  unknown = [m for m in methods if m not in available]
  if unknown:
    print(f"error: no self-supervised method with a Fashion-MNIST config is called {', '.join(unknown)}; "
          f"choose among {', '.join(available)}.", file=sys.stderr)
    return 2
  from ssl_jax.train.config import unused_overrides  # pylint: disable=g-import-not-at-top
  unused = unused_overrides(methods + [FIRST_PHASE[m][0] for m in methods if m in FIRST_PHASE], args.set)
  if unused:
    print(f"error: --set={unused[0]} sets a field of the {unused[0].split('.', 1)[0]} method, which is not "
          f"benchmarked here; add it to --methods or drop the --set.", file=sys.stderr)
    return 2
  try:
    return _benchmark(args, methods)
  except Refused as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


def _benchmark(args, methods: list[str]) -> int:
  from ssl_jax.train.config import overrides_for  # pylint: disable=g-import-not-at-top
  data_dir = args.data_dir if os.path.isdir(args.data_dir) else None
  rows, pixel = [], None
  for method in methods:
    extra = []
    if method in FIRST_PHASE:
      first, field = FIRST_PHASE[method]
      first_dir = os.path.join(args.workdirs, first)
      train(first, first_dir, data_dir, [], overrides_for(first, args.set))
      extra.append(f"--config.{field}={first_dir}")
    workdir = os.path.join(args.workdirs, method)
    results = train(method, workdir, data_dir, extra, overrides_for(method, args.set))
    rows.append((method, results, last_rankme(workdir)))
    pixel = results.get("pixel_linear_probe_top1", pixel)

  os.makedirs(args.out, exist_ok=True)
  text = table(rows, pixel)
  below = [m for m, r, _ in rows if m in JOINT_EMBEDDING and r["linear_probe_top1"] < GOAL]
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write("# Self-supervised methods on Fashion-MNIST: frozen-feature linear probe and kNN\n\n"
            "Each method pretrains on the 60,000 training images without labels (its "
            "`configs/ssl/<method>_fashion_mnist.py`, whose docstring gives its budget on 2 CPU cores); a linear "
            "probe and a kNN classifier (k=20) on its frozen encoder features score it on the 10,000 test images. "
            "RankMe is the effective rank of the features at the last monitor step (near 1 means collapse).\n\n"
            + text + "\n\n"
            f"Joint-embedding methods below the goal of {GOAL}: {', '.join(below) if below else 'none'}.\n\n"
            f"Command: `python experiments/ssl_benchmark.py{' --methods=' + args.methods if args.methods else ''}"
            f"{''.join(' --set=' + s for s in args.set)}`"
            f" ({datetime.date.today().isoformat()}).\n")
  plot(rows, pixel, os.path.join(args.out, "ssl_benchmark.png"))
  print(text)
  print(f"Wrote {args.out}/results.md and ssl_benchmark.png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
