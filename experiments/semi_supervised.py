r"""Semi-supervised methods per label budget on Fashion-MNIST: mean +- std over seeds, one table and one chart.

  python experiments/semi_supervised.py [--methods=fixmatch,supervised,...] [--labels=40,250,1000]
      [--seeds=0,1,2] [--out=experiments/results/semi_supervised] [--workdirs=workdirs/semi]
      [--data_dir=/usr/share/datasets/fashion-mnist] [--set=total_steps=600 ...]

Trains `configs/semi/<method>_fashion_mnist.py:labels=L,label_seed=S` for every chosen method, label budget L
(40, 100, 250, 1000, 4000: a class-balanced split `fashion_mnist.S@L`) and seed S, one after the other, each as
its own `python -m ssl_jax.main` process in `<workdirs>/<method>/labels<L>_seed<S>`. Finished runs are reused and
an interrupted run resumes from its checkpoint, so an interrupted grid continues where it stopped; a run whose
config.json differs from the config asked for (another `--set`, or a changed config file) is refused with the
differing fields, never reused. The seed picks the labelled split (`label_seed`) and the run's own seed.
`--set=KEY=VALUE` overrides a config field: one of a method's own section (`fixmatch.threshold=0.9`) for that
method's runs only (refused when that method is not in the grid), any other (`total_steps=600`) for every run.

Writes `results.md`: per method and budget the mean +- std over seeds of the online model's final test top-1,
and the same for the median of the last `--median_of` evaluations during training (how FixMatch's authors
report); each method's gain over the labelled-only baseline on the same split, seed by seed, and the methods at
or below it, on the mean and on some split, per budget; and
`semi_supervised.png`, a grouped bar chart (one group per budget, one bar per method, the std as error bars).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BASELINE = "supervised"


class Refused(Exception):
  """A sentence for the user (exit status 2): a bad argument, a failed run, or a workdir of another recipe."""


def semi_methods() -> list[str]:
  """Every semi-supervised method with a Fashion-MNIST config, in METHODS order (the baseline first)."""
  from ssl_jax.methods import METHODS  # pylint: disable=g-import-not-at-top
  names = [n for n, mod in METHODS.items() if mod.__name__.split(".")[-2] == "semi"
           and os.path.exists(config_path(n))]
  return sorted(names, key=lambda n: n != BASELINE)


def config_path(method: str) -> str:
  return os.path.join(ROOT, "configs", "semi", f"{method}_fashion_mnist.py")


def _ints(text: str, what: str) -> list[int]:
  try:
    return [int(x) for x in text.split(",") if x.strip()]
  except ValueError:
    raise Refused(f"--{what} takes comma-separated integers, e.g. --{what}=0,1,2; got {text!r}.") from None


def read_run(workdir: str, total_steps: int, median_of: int) -> dict | None:
  """{"final", "median_last"} of a finished run in `workdir`, or None."""
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return None
  if results.get("steps") != total_steps or "test_top1" not in results:
    return None
  monitored = []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for record in map(json.loads, f):
      if "eval/test_top1" in record:
        monitored.append(record["eval/test_top1"])
  last = monitored[-median_of:] or [results["test_top1"]]
  return {"final": results["test_top1"], "median_last": float(np.median(last)),
          "seconds": results.get("train_seconds", 0.0)}


def run(method: str, labels: int, seed: int, workdir: str, data_dir: str | None, sets: list[str],
        median_of: int) -> dict:
  from ssl_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import trainer  # pylint: disable=g-import-not-at-top
  path = f"{config_path(method)}:labels={labels},label_seed={seed}"
  command = [sys.executable, "-m", "ssl_jax.main", f"--config={path}", f"--workdir={workdir}",
             f"--config.seed={seed}", *(f"--config.{s}" for s in sets)]
  try:  # the config this run is trained with, to compare with a run already in its workdir
    config = config_lib.from_command(command, cwd=ROOT)
    changes = trainer.resume_changes(config, workdir)  # a run of another recipe: refused, never reused or resumed
  except UserError as e:
    raise Refused(f"{method} with {labels} labels, seed {seed}: {e}") from None
  if changes:
    raise Refused(f"{method} with {labels} labels, seed {seed}: {workdir} holds a run of another recipe "
                  f"({changes}); pass the --set values that run was trained with, or another --workdirs.")
  if (found := read_run(workdir, config.total_steps, median_of)) is not None:
    print(f"{method} @{labels} seed {seed}: reusing the finished run in {workdir}", flush=True)
    return found
  if data_dir and config.data.name == "fashion_mnist":
    command.append(f"--config.data.data_dir={data_dir}")
  print(f"{method} @{labels} seed {seed}: {' '.join(command[1:])}", flush=True)
  t0 = time.time()
  status = subprocess.run(command, cwd=ROOT, check=False).returncode
  if status != 0:
    raise Refused(f"the {method} run with {labels} labels, seed {seed}, stopped with exit status {status}; its "
                  "log is above. Fix it and run this command again: finished runs are reused and this one resumes.")
  print(f"{method} @{labels} seed {seed}: {time.time() - t0:.0f} s", flush=True)
  found = read_run(workdir, config.total_steps, median_of)
  if found is None:
    raise Refused(f"the {method} run ended without results in {workdir}/results.json.")
  return found


def summarise(values: list[float]) -> str:
  if len(values) == 1:
    return f"{values[0]:.4f}"
  return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def table(grid: dict, methods: list[str], budgets: list[int], key: str) -> str:
  lines = ["| method | " + " | ".join(f"{b} labels" for b in budgets) + " |",
           "| --- |" + " ---: |" * len(budgets)]
  for method in methods:
    cells = [summarise([r[key] for r in grid[method][b]]) for b in budgets]
    lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def against_baseline(grid: dict, methods: list[str], budgets: list[int], seeds: list[int]) -> str:
  """Each method's gain over the baseline on the same split (seed), and who is at or below it, per budget."""
  others = [m for m in methods if m != BASELINE]
  lines = [f"Gain over the labelled-only baseline on the same split, in points of test top-1, per seed "
           f"({', '.join(map(str, seeds))}):", "",
           "| method | " + " | ".join(f"{b} labels" for b in budgets) + " |", "| --- |" + " ---: |" * len(budgets)]
  for method in others:
    cells = [", ".join(f"{100 * (r['final'] - b['final']):+.1f}" for r, b in zip(grid[method][n], grid[BASELINE][n]))
             for n in budgets]
    lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
  lines.append("")
  for n in budgets:
    base = np.mean([r["final"] for r in grid[BASELINE][n]])
    on_mean = [m for m in others if np.mean([r["final"] for r in grid[m][n]]) <= base]
    on_split = []
    for m in others:
      lost = [str(s) for s, r, b in zip(seeds, grid[m][n], grid[BASELINE][n]) if r["final"] <= b["final"]]
      if lost:
        on_split.append(f"{m} (seed {', '.join(lost)})")
    lines.append(f"- {n} labels: labelled-only baseline {base:.4f}; at or below it on the mean: "
                 f"{', '.join(on_mean) or 'none'}; on some split: {', '.join(on_split) or 'none'}.")
  return "\n".join(lines) + "\n"


def plot(grid: dict, methods: list[str], budgets: list[int], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  width = 0.8 / len(methods)
  fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(budgets) * max(1, len(methods)) * 0.4 + 3), 4.2))
  colors = plt.get_cmap("tab20").colors  # 20 distinct colours: one per method, none repeated
  for i, method in enumerate(methods):
    means = [np.mean([r["final"] for r in grid[method][b]]) for b in budgets]
    stds = [np.std([r["final"] for r in grid[method][b]], ddof=1) if len(grid[method][b]) > 1 else 0.0
            for b in budgets]
    x = np.arange(len(budgets)) + (i - (len(methods) - 1) / 2) * width
    ax.bar(x, means, width, yerr=stds, capsize=2, label=method, color=colors[i % len(colors)])
    if method == BASELINE:  # the number every method must beat, drawn across its budget's group
      for j, mean in enumerate(means):
        ax.hlines(mean, j - 0.42, j + 0.42, colors="black", linestyles="dashed", linewidth=0.8)
  ax.set_xticks(np.arange(len(budgets)), [f"{b} labels" for b in budgets])
  low = min(np.mean([r["final"] for r in grid[m][b]]) for m in methods for b in budgets)
  ax.set_ylim(max(0.0, low - 0.1), 1.0)
  ax.set_ylabel("Fashion-MNIST test top-1")
  ax.set_title("Semi-supervised methods per label budget (mean ± std over seeds)", fontsize=9)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="", help="comma-separated subset (default: every semi-supervised method)")
  parser.add_argument("--labels", default="40,250,1000", help="label budgets, multiples of the 10 classes")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--median_of", type=int, default=5, help="evaluations during training the median is over")
  parser.add_argument("--out", default="experiments/results/semi_supervised")
  parser.add_argument("--workdirs", default="workdirs/semi")
  parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override, e.g. --set=total_steps=600 (every run) or "
                      "--set=fixmatch.threshold=0.9 (that method's runs only); repeatable")
  args = parser.parse_args(argv)
  from ssl_jax import cli  # pylint: disable=g-import-not-at-top
  cli.quiet_libraries()

  available = semi_methods()
  methods = [m.strip() for m in args.methods.split(",") if m.strip()] or available
  unknown = [m for m in methods if m not in available]
  if unknown:
    print(f"error: no semi-supervised method with a Fashion-MNIST config is called {', '.join(unknown)}; choose "
          f"among {', '.join(available)}.", file=sys.stderr)
    return 2
  try:
    return _grid(args, methods)
  except Refused as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


def _grid(args, methods: list[str]) -> int:
  budgets, seeds = _ints(args.labels, "labels"), _ints(args.seeds, "seeds")
  if not budgets or not seeds or any(b <= 0 or b % 10 for b in budgets):
    print("error: --labels takes positive multiples of the 10 classes (e.g. 40,250,1000) and --seeds at least "
          "one seed.", file=sys.stderr)
    return 2
  bad = [s for s in args.set if "=" not in s]
  if bad:
    print(f"error: --set takes KEY=VALUE (e.g. --set=total_steps=600), got {bad[0]!r}.", file=sys.stderr)
    return 2
  from ssl_jax.train.config import overrides_for, unused_overrides  # pylint: disable=g-import-not-at-top
  unused = unused_overrides(methods, args.set)
  if unused:
    print(f"error: --set={unused[0]} sets a field of the {unused[0].split('.', 1)[0]} method, which is not "
          "in this grid; add it to --methods or drop the --set.", file=sys.stderr)
    return 2
  data_dir = args.data_dir if os.path.isdir(args.data_dir) else None

  grid = {m: {b: [] for b in budgets} for m in methods}
  for budget in budgets:
    for method in methods:
      for seed in seeds:
        workdir = os.path.join(args.workdirs, method, f"labels{budget}_seed{seed}")
        grid[method][budget].append(run(method, budget, seed, workdir, data_dir, overrides_for(method, args.set),
                                           args.median_of))

  os.makedirs(args.out, exist_ok=True)
  final, median = table(grid, methods, budgets, "final"), table(grid, methods, budgets, "median_last")
  above = against_baseline(grid, methods, budgets, seeds) if BASELINE in methods else ""
  command = ("python experiments/semi_supervised.py" + (f" --methods={args.methods}" if args.methods else "")
             + f" --labels={args.labels} --seeds={args.seeds}" + "".join(f" --set={s}" for s in args.set))
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write("# Semi-supervised methods on Fashion-MNIST per label budget\n\n"
            "Test top-1 on the 10,000 test images, mean ± std (the sample std, n - 1) over seeds "
            f"{args.seeds} (each seed its own "
            "class-balanced labelled split); every other training image is unlabelled.\n\n"
            "## Final test top-1\n\n" + final + "\n\n"
            f"## Median of the last {args.median_of} evaluations during training\n\n" + median + "\n\n"
            + (f"## Against the labelled-only baseline\n\n{above}\n" if above else "")
            + f"Command: `{command}` ({datetime.date.today().isoformat()}).\n")
  plot(grid, methods, budgets, os.path.join(args.out, "semi_supervised.png"))
  print(final)
  print(f"Wrote {args.out}/results.md and semi_supervised.png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
