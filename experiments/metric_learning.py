r"""Metric learning on Fashion-MNIST: train on classes 0-4, retrieve among the never-seen classes 5-9.

  python experiments/metric_learning.py [--out=experiments/results/metric_learning] [--workdirs=workdirs/metric]
                                        [--simclr=RUN] [--set=KEY=VALUE ...]

Trains, one after the other, the triplet network with batch-hard mining, the same with batch-semi-hard
mining and the siamese network (configs/metric/*_fashion_mnist.py; a finished run is not trained again),
and scores each by Recall@1/2/4/8 and MAP@R on the 5,000 test images of the held-out classes, beside two
baselines on the same images: raw pixels, and the frozen encoder of the self-supervised SimCLR run
(`--simclr`, default workdirs/simclr_fashion_mnist, read only; its 512-d features, the retrieval protocol).
Writes `results.md` (the table) and `metric_learning.png` (the scores and the t-SNE of each embedding).
A run of another recipe in `--workdirs` (another `--set`) is refused with the fields that differ, never reused.
`--set=KEY=VALUE` overrides a field of the three metric-learning configs (e.g. `--set=total_steps=1200`).
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

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
RUNS = {  # name -> (config file[:arg], what)
    "triplet_batch_hard": ("configs/metric/triplet_fashion_mnist.py", "triplet, batch-hard mining"),
    "triplet_batch_semi_hard": ("configs/metric/triplet_fashion_mnist.py:mining=batch_semi_hard",
                                "triplet, batch-semi-hard mining"),
    "siamese": ("configs/metric/siamese_fashion_mnist.py", "siamese, contrastive loss"),
}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="experiments/results/metric_learning")
  parser.add_argument("--workdirs", default="workdirs/metric")
  parser.add_argument("--simclr", default="workdirs/simclr_fashion_mnist")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a field of every metric-learning config, e.g. --set=total_steps=1200; repeatable")
  args = parser.parse_args(argv)
  bad = [s for s in args.set if "=" not in s]
  if bad:
    print(f"error: --set takes KEY=VALUE (e.g. --set=total_steps=1200), got {bad[0]!r}.", file=sys.stderr)
    return 2
  from ssl_jax import cli
  from ssl_jax.errors import UserError
  cli.quiet_libraries()
  try:
    _run(args, parser)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def _run(args, parser) -> None:
  from ssl_jax import evaluate
  from ssl_jax.errors import UserError
  from ssl_jax.evaluation.retrieval import plot_tsne, retrieval_metrics, tsne_points
  from ssl_jax.train import config as config_lib
  from ssl_jax.train import trainer

  simclr_config = evaluate.read_run(args.simclr)  # the baseline run must be there before anything trains
  os.makedirs(args.out, exist_ok=True)
  rows, clouds = [], []
  held_out = config = None
  for name, (path, what) in RUNS.items():
    config = config_lib.from_command([f"--config={path}", *(f"--config.{s}" for s in args.set)], cwd=ROOT)
    if simclr_config.data.name != config.data.name:
      raise UserError(f"the SimCLR run {args.simclr} trained on {simclr_config.data.name}, not on "
                      f"{config.data.name}; pass --simclr=<a run on the dataset of the metric-learning runs>.")
    workdir = os.path.join(args.workdirs, name)
    t0 = time.time()
    results = trainer.train_and_evaluate(config, workdir)
    print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    plan, state, _ = evaluate.restore_run(workdir, config)
    if held_out is None:
      held_out = trainer.load_stream(plan).eval_data["retrieval"]
    ctx = trainer.suite_context(plan, trainer.load_stream(plan))
    emb = ctx.outputs(state, held_out.images)["embeddings"]
    rows.append((f"{what} (`{path}`)", results, f"{results['train_seconds']:.0f} s"))
    clouds.append((what, emb))
  # Baselines on the same held-out images.
  pixels = held_out.images.reshape(len(held_out), -1).astype(np.float32) / 255.0
  rows.insert(0, ("raw pixels (784-d)" if pixels.shape[1] == 784 else f"raw pixels ({pixels.shape[1]}-d)",
                  retrieval_metrics(pixels, held_out.labels), "-"))
  clouds.insert(0, ("raw pixels", pixels))
  plan, state, step = evaluate.restore_run(args.simclr, simclr_config)
  feats = evaluate.encoder_features(plan, state, held_out.images)
  simclr_seconds = (_read_json(os.path.join(args.simclr, "results.json")) or {}).get("train_seconds")
  rows.insert(1, (f"frozen SimCLR encoder, all {plan.info.num_classes} classes unlabelled (step {step}, "
                  f"{feats.shape[1]}-d)",
                  retrieval_metrics(feats, held_out.labels),
                  f"{simclr_seconds:.0f} s (its own run)" if simclr_seconds else "its own run"))
  clouds.insert(1, ("frozen SimCLR encoder", feats))

  keys = ("recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "map_at_r")
  lines = ["| embedding | Recall@1 | Recall@2 | Recall@4 | Recall@8 | MAP@R | training |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for what, r, seconds in rows:
    lines.append(f"| {what} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {seconds} |")
  table = "\n".join(lines)
  fashion = config.data.name == "fashion_mnist"
  classes = sorted({int(y) for y in held_out.labels})
  held = ", ".join(FASHION[c].lower() if fashion else str(c) for c in classes)
  flags = [f" --{k}={v}" for k, v in vars(args).items() if k != "set" and v != parser.get_default(k)]
  flags += [f" --set={item}" for item in args.set]
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(f"# Metric learning on {config.data.name}: some classes for training, retrieval among the others\n\n"
            f"{len(held_out)} test images of the held-out classes ({held}), every image a query against all the "
            "others (cosine similarity).\n\n" + table + "\n\n"
            "Command: `python experiments/metric_learning.py" + "".join(flags) + "`.\n")
  print(table, flush=True)

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(clouds) + 1, figsize=(4 * (len(clouds) + 1), 4.2))
  names = [w for w, _, _ in rows]
  x = np.arange(len(rows))
  axes[0].bar(x - 0.2, [r["recall_at_1"] for _, r, _ in rows], 0.4, label="Recall@1")
  axes[0].bar(x + 0.2, [r["map_at_r"] for _, r, _ in rows], 0.4, label="MAP@R")
  axes[0].set_xticks(x, [n.split(" (")[0].replace(", ", "\n") for n in names], fontsize=6, rotation=30)
  axes[0].set_ylim(0, 1)
  axes[0].legend(fontsize=7)
  axes[0].set_title("held-out classes 5-9", fontsize=9)
  for ax, (what, emb) in zip(axes[1:], clouds):
    points, y = tsne_points(emb, held_out.labels, max_points=2000, seed=0)
    plot_tsne(ax, points, y, title=f"t-SNE: {what}", class_names=FASHION if fashion else None)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "metric_learning.png"), dpi=100)
  print(f"Wrote {args.out}/results.md and metric_learning.png", flush=True)


def _read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


if __name__ == "__main__":
  sys.exit(main())
