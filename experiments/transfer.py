r"""Transfer from a self-supervised encoder with few labels: fine-tuning and a frozen-feature SVM.

  python experiments/transfer.py [--out=experiments/results/transfer] [--workdirs=workdirs/transfer]
                                 [--simclr=RUN] [--byol=RUN] [--fractions=0.01,0.1] [--set=KEY=VALUE ...]

With 1% (600) and 10% (6,000) of the Fashion-MNIST training labels (class-balanced, seed 0), scored on the
10,000 test images:

* fine-tuning (configs/transfer/finetune_fashion_mnist.py: the whole ConvNet, the pretrained encoder at the
  head's learning rate) from the SimCLR run, from the BYOL run, and from scratch (the same network and
  recipe without `init_from`); and from the SimCLR run with the encoder at 0.1x the head's rate
  (discriminative fine-tuning, `finetune.pretrained_lr_scale=0.1`);
* a linear SVM (`LinearSVC`, C chosen on a validation split of the labelled images) on the frozen encoder
  of each run, and on raw pixels (`python -m ssl_jax.evaluate --protocol=svm`).

The self-supervised runs (`--simclr`, `--byol`) are only read: the SVM results go to
`<workdirs>/eval_results_<run>.json`. Writes `results.md` (one table) and `transfer.png`. A fine-tuning run that
finished in `--workdirs` is reused, an interrupted one resumes, and one of another recipe (another `--set`) is
refused with the fields that differ. `--set=KEY=VALUE` overrides a field of every fine-tuning config (e.g.
`--set=total_steps=1200`; `--set=data.name=...` fine-tunes and scores the raw pixels on another dataset, which
must be the self-supervised runs' own).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FRACTIONS = (0.01, 0.1)
CONFIG = os.path.join(ROOT, "configs", "transfer", "finetune_fashion_mnist.py")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="experiments/results/transfer")
  parser.add_argument("--workdirs", default="workdirs/transfer")
  parser.add_argument("--simclr", default="workdirs/simclr_fashion_mnist")
  parser.add_argument("--byol", default="workdirs/byol_fashion_mnist")
  parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)),
                      help="fractions of the training labels, comma-separated, each in (0, 1]")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a field of every fine-tuning config, e.g. --set=total_steps=1200; repeatable")
  args = parser.parse_args(argv)
  try:
    fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
  except ValueError:
    fractions = []
  if not fractions or not all(0.0 < f <= 1.0 for f in fractions):
    print(f"error: --fractions takes fractions of the labels in (0, 1], comma-separated (e.g. 0.01,0.1); got "
          f"{args.fractions!r}.", file=sys.stderr)
    return 2
  bad = [s for s in args.set if "=" not in s]
  if bad:
    print(f"error: --set takes KEY=VALUE (e.g. --set=total_steps=1200), got {bad[0]!r}.", file=sys.stderr)
    return 2
  from ssl_jax import cli
  from ssl_jax.errors import UserError
  cli.quiet_libraries()
  try:
    _run(args, parser, fractions)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def _pct(fraction: float) -> str:
  return f"{fraction * 100:g}%"


def _run(args, parser, fractions: list[float]) -> None:
  from ssl_jax import evaluate
  from ssl_jax.evaluation.svm import svm_probe
  from ssl_jax.train import config as config_lib
  from ssl_jax.train import trainer

  def finetune_config(fraction: float):
    return config_lib.from_command([f"--config={CONFIG}:fraction={fraction}", *(f"--config.{s}" for s in args.set)])

  os.makedirs(args.out, exist_ok=True)
  os.makedirs(args.workdirs, exist_ok=True)
  # name -> (the run to start from, the encoder's learning-rate scale: None keeps the config's, its folder's name)
  sources = {"SimCLR": (args.simclr, None, "simclr"), "SimCLR, encoder lr x0.1": (args.simclr, 0.1, "simclr_lr0.1"),
             "BYOL": (args.byol, None, "byol"), "scratch": ("", None, "scratch")}
  table: dict[str, dict[str, float]] = {name: {} for name in [*sources, "raw pixels"]}
  seconds: dict[str, float] = {}
  for fraction in fractions:
    pct = _pct(fraction)
    for name, (source, lr_scale, slug) in sources.items():
      config = finetune_config(fraction)
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
        if evaluate.main([f"--workdir={source}", "--protocol=svm", f"--label_fraction={fraction}",
                          f"--label_seed={config.finetune.label_seed}", f"--output={out}"]) != 0:
          raise UserError(f"the SVM on the frozen encoder of {source} failed; its error is above.")
        with open(out) as f:
          svm = [v for v in json.load(f).values() if v["data"] == r["data"]]
        if not svm:
          raise UserError(f"the SVM on {source} scored other labelled images than the fine-tuning run "
                          f"({r['data']}); the self-supervised runs must be of the dataset fine-tuned on "
                          f"({config.data.name}).")
        table[name][f"SVM {pct}"] = svm[0]["svm_top1"]
  # Raw pixels: the same SVM protocol on the pixels of the same labelled images.
  config = finetune_config(fractions[0])
  plan = trainer.preflight(config)
  train, test = evaluate.load_split_pair(plan, config.data.name)
  for fraction in fractions:
    subset, _ = evaluate.labelled_subset(train, labels=0, fraction=fraction, seed=config.finetune.label_seed)
    px = lambda d: d.images.reshape(len(d), -1).astype(np.float32) / 255.0
    table["raw pixels"][f"SVM {_pct(fraction)}"] = svm_probe(px(subset), subset.labels, px(test), test.labels).top1

  cols = [f"finetune {_pct(f)}" for f in fractions] + [f"SVM {_pct(f)}" for f in fractions]
  lines = ["| initialisation | " + " | ".join(c.replace("finetune", "fine-tuning").replace("SVM", "frozen + SVM")
                                              for c in cols) + " |",
           "| --- |" + " ---: |" * len(cols)]
  for name, row in table.items():
    lines.append(f"| {name} | " + " | ".join(f"{row[c]:.4f}" if c in row else "-" for c in cols) + " |")
  pcts = [_pct(f) for f in fractions]
  gains = "; ".join(
      f"{n} " + ", ".join(f"{(table[n][f'finetune {p}'] - table['scratch'][f'finetune {p}']) * 100:+.1f} points at "
                          f"{p}" + (" (goal: +5)" if p == "1%" else "") for p in pcts)
      for n in ("SimCLR", "BYOL"))
  flags = [f" --{k}={v}" for k, v in vars(args).items() if k != "set" and v != parser.get_default(k)]
  text = (f"# Transfer with {' and '.join(pcts)} of the {config.data.name} labels\n\n"
          f"Test top-1 on the {len(test):,} test images; class-balanced labelled splits of seed "
          f"{config.finetune.label_seed}.\n\n" + "\n".join(lines) + "\n\n"
          f"Fine-tuning over training from scratch: {gains}.\n\n"
          "Training seconds: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ".\n\n"
          "Command: `python experiments/transfer.py" + "".join(flags)
          + "".join(f" --set={item}" for item in args.set) + "`.\n")
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
  sys.exit(main())
