r"""Transfer from a self-supervised encoder with few labels: fine-tuning and a frozen-feature SVM.

  python experiments/transfer.py [--out=experiments/results/transfer] [--workdirs=workdirs/transfer]

With 1% (600) and 10% (6,000) of the Fashion-MNIST training labels (class-balanced, seed 0), scored on the
10,000 test images:

* fine-tuning (configs/transfer/finetune_fashion_mnist.py: the whole ConvNet, the pretrained encoder at the
  head's learning rate) from the SimCLR run, from the BYOL run, and from scratch (the same network and
  recipe without `init_from`); and from the SimCLR run with the encoder at 0.1x the head's rate
  (discriminative fine-tuning, `finetune.pretrained_lr_scale=0.1`);
* a linear SVM (`LinearSVC`, C chosen on a validation split of the labelled images) on the frozen encoder
  of each run, and on raw pixels (`python -m ssl_jax.evaluate --protocol=svm`).

The self-supervised runs (`--simclr`, `--byol`) are only read: the SVM results go to
`<workdirs>/eval_results_<run>.json`. Writes `results.md` (one table) and `transfer.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FRACTIONS = (0.01, 0.1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="experiments/results/transfer")
  parser.add_argument("--workdirs", default="workdirs/transfer")
  parser.add_argument("--simclr", default="workdirs/simclr_fashion_mnist")
  parser.add_argument("--byol", default="workdirs/byol_fashion_mnist")
  args = parser.parse_args()
  from ssl_jax import cli
  cli.quiet_libraries()
  from ssl_jax import evaluate
  from ssl_jax.evaluation.svm import svm_probe
  from ssl_jax.train import config as config_lib
  from ssl_jax.train import trainer

  os.makedirs(args.out, exist_ok=True)
  os.makedirs(args.workdirs, exist_ok=True)
  # name -> (the run to start from, the encoder's learning-rate scale: None keeps the config's, its folder's name)
  sources = {"SimCLR": (args.simclr, None, "simclr"), "SimCLR, encoder lr x0.1": (args.simclr, 0.1, "simclr_lr0.1"),
             "BYOL": (args.byol, None, "byol"), "scratch": ("", None, "scratch")}
  table: dict[str, dict[str, float]] = {name: {} for name in [*sources, "raw pixels"]}
  seconds: dict[str, float] = {}
  for fraction in FRACTIONS:
    pct = f"{fraction:.0%}"
    for name, (source, lr_scale, slug) in sources.items():
      config = config_lib.load_config(f"configs/transfer/finetune_fashion_mnist.py:fraction={fraction}")
      config.init_from = source
      if lr_scale is not None:
        config.finetune.pretrained_lr_scale = lr_scale
      workdir = os.path.join(args.workdirs, f"finetune_{slug}_{pct[:-1]}pc")
      t0 = time.time()
      r = trainer.train_and_evaluate(config, workdir)
      seconds[f"finetune {name} {pct}"] = r["train_seconds"]
      print(f"fine-tune from {name} with {pct} ({r['data']}): test {r['test_top1']:.4f} "
            f"(EMA {r['ema_test_top1']:.4f}); {time.time() - t0:.0f} s", flush=True)
      table[name][f"finetune {pct}"] = r["test_top1"]
      if source and lr_scale is None:  # the frozen encoder's SVM, once per run
        out = os.path.join(args.workdirs, f"eval_results_{slug}.json")
        evaluate.main([f"--workdir={source}", "--protocol=svm", f"--label_fraction={fraction}", f"--output={out}"])
        with open(out) as f:
          svm = [v for v in json.load(f).values() if v["data"] == r["data"]]
        table[name][f"SVM {pct}"] = svm[0]["svm_top1"]
  # Raw pixels: the same SVM protocol on the pixels of the same labelled images.
  config = config_lib.load_config("configs/transfer/finetune_fashion_mnist.py")
  plan = trainer.preflight(config)
  train, test = evaluate.load_split_pair(plan, "fashion_mnist")
  for fraction in FRACTIONS:
    subset, _ = evaluate.labelled_subset(train, labels=0, fraction=fraction, seed=0)
    px = lambda d: d.images.reshape(len(d), -1).astype(np.float32) / 255.0
    table["raw pixels"][f"SVM {fraction:.0%}"] = svm_probe(px(subset), subset.labels, px(test), test.labels).top1

  cols = [f"finetune {f:.0%}" for f in FRACTIONS] + [f"SVM {f:.0%}" for f in FRACTIONS]
  lines = ["| initialisation | " + " | ".join(c.replace("finetune", "fine-tuning").replace("SVM", "frozen + SVM")
                                              for c in cols) + " |",
           "| --- |" + " ---: |" * len(cols)]
  for name, row in table.items():
    lines.append(f"| {name} | " + " | ".join(f"{row[c]:.4f}" if c in row else "-" for c in cols) + " |")
  gain = {n: {f: table[n][f"finetune {f}"] - table["scratch"][f"finetune {f}"] for f in ("1%", "10%")}
          for n in ("SimCLR", "BYOL")}
  text = ("# Transfer with 1% and 10% of the Fashion-MNIST labels\n\n"
          "Test top-1 on the 10,000 test images; labelled splits fashion_mnist.0@600 (1%) and fashion_mnist.0@6000 "
          "(10%).\n\n" + "\n".join(lines) + "\n\n"
          f"Fine-tuning over training from scratch: SimCLR {gain['SimCLR']['1%'] * 100:+.1f} points at 1% of the "
          f"labels (goal: +5) and {gain['SimCLR']['10%'] * 100:+.1f} at 10%; BYOL {gain['BYOL']['1%'] * 100:+.1f} "
          f"and {gain['BYOL']['10%'] * 100:+.1f}.\n\n"
          "Training seconds: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ".\n\n"
          "Command: `python experiments/transfer.py"
          + "".join(f" --{k}={v}" for k, v in vars(args).items() if v != parser.get_default(k)) + "`.\n")
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(text)
  print(text, flush=True)

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(8, 4))
  x = np.arange(len(cols))
  width = 0.8 / len(table)
  for i, (name, row) in enumerate(table.items()):
    ax.bar(x + (i - (len(table) - 1) / 2) * width, [row.get(c, np.nan) for c in cols], width, label=name)
  ax.set_xticks(x, [c.replace("finetune", "fine-tune").replace("SVM", "frozen+SVM") for c in cols])
  lo = min(v for row in table.values() for v in row.values())
  ax.set_ylim(max(0.0, lo - 0.05), 1.0)
  ax.set_ylabel("Fashion-MNIST test top-1")
  ax.legend(fontsize=8)
  ax.set_title("Fine-tuning and frozen-feature SVM with 1% / 10% of the labels", fontsize=10)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "transfer.png"), dpi=110)
  print(f"Wrote {args.out}/results.md and transfer.png", flush=True)


if __name__ == "__main__":
  main()
