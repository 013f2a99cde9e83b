"""Evaluation suites: how each family is judged, by name, each writing named results.

A method lists the suites that judge it (`SUITES = ("representation",)`); the trainer runs each suite's
`monitor` every `eval_every_steps` (cheap, logged as `eval/<key>`) and its `final` at the end (written to
`results.json`, TensorBoard and `report.png`). A suite reads what the method predicts
(`predict(m, state, inputs) -> {"features" | "logits" | "ema_logits" | "bag_logits" | "embeddings"}`)
on the evaluation data of the run's stream (`Stream.eval_data`).

| suite | method predicts | eval data | results |
| --- | --- | --- | --- |
| `representation` | `features` | the labelled train split and the test split | `linear_probe_top1`, `knn_top1`, `pixel_linear_probe_top1`; monitor: `knn_monitor_top1`, `rankme` |
| `accuracy` | `logits` (and `ema_logits`) | the test split (the target domain's for adaptation) | `test_top1`, `ema_test_top1` |
| `bags` | `bag_logits` (and `attention`) | the test bags | `bag_auc`, `bag_accuracy`, `instance_auc`; `attention.png` |
| `retrieval` | `embeddings` | the test images of the classes held out of training | `recall_at_1/2/4/8`, `map_at_r`, `pixel_recall_at_1`, `pixel_map_at_r`; `retrieval_tsne.png` in `figures_dir` |
| `reconstruction` | `reconstructions` (and `samples`), given `{"image": images}` | the test split | `reconstruction_mse`; `reconstructions.png` (and `samples.png`) in `figures_dir`; monitor: `reconstruction_mse` on at most 1,000 test images |

The evaluation data may be streamed (`ssl_jax.data.streamed`): the suites read images only through slices and
`apply_batched`, which reads one batch at a time, so a split is never held whole; `eval.train_examples` makes the
`representation` suite featurise a seeded subset of a large training split (`train_subset`).

The `reconstruction` suite calls `predict(m, state, {"image": images})` (a dict, so the other suites, which pass
the images themselves, never pay for the decoder): reconstructions are float32 images in [0, 1] of the input's
shape, and a generative model adds `samples`, one image drawn from its prior per input row.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ssl_jax.evaluation.features import apply_batched
from ssl_jax.evaluation.knn import knn_accuracy
from ssl_jax.evaluation.linear_probe import linear_probe
from ssl_jax.evaluation.rankme import rankme
from ssl_jax.evaluation.retrieval import retrieval_metrics, tsne_figure

# Every result key a suite can write, with the words the report and the results table use for it.
LABELS: dict[str, str] = {
    "linear_probe_top1": "linear probe top-1 (learned features)",
    "knn_top1": "kNN top-1 (learned features)",
    "pixel_linear_probe_top1": "linear probe top-1 (raw pixels)",
    "knn_monitor_top1": "kNN monitor top-1",
    "rankme": "RankMe effective rank (label-free collapse monitor)",
    "test_top1": "test top-1",
    "ema_test_top1": "test top-1 (EMA model)",
    "bag_auc": "bag AUC",
    "bag_accuracy": "bag accuracy",
    "instance_auc": "instance AUC of the attention",
    "recall_at_1": "Recall@1 (held-out classes)",
    "recall_at_2": "Recall@2 (held-out classes)",
    "recall_at_4": "Recall@4 (held-out classes)",
    "recall_at_8": "Recall@8 (held-out classes)",
    "map_at_r": "MAP@R (held-out classes)",
    "pixel_recall_at_1": "Recall@1 (raw pixels)",
    "pixel_map_at_r": "MAP@R (raw pixels)",
    "reconstruction_mse": "reconstruction MSE (test, pixels in [0, 1])",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Context:
  """What a suite needs: the jitted prediction, the evaluation data, the `eval` config and the mesh.

  Attributes:
    predict: `(state, inputs) -> dict of arrays`, jitted with inputs sharded over the mesh.
    eval_data: the stream's evaluation data (see `ssl_jax.data.streams`).
    config: the run's `eval` config block.
    mesh: the device mesh.
    seed: the run's seed (probe shuffles).
    log: prints a line on the console.
    figures_dir: where a suite's `final` may write figures (PNG files named after the suite), or None
      to write none (other processes than 0, tests that do not want them).
  """
  predict: Callable[[Any, Any], dict[str, Any]]
  eval_data: dict[str, Any]
  config: Any
  mesh: Any
  seed: int = 0
  log: Callable[[str], None] = print
  figures_dir: str | None = None

  def outputs(self, state, inputs, *, batch_size: int | None = None) -> dict[str, np.ndarray]:
    """The predictions for `inputs`, `batch_size` rows per call (default `eval.batch_size`)."""
    return apply_batched(lambda x: self.predict(state, x), inputs, batch_size=batch_size or self.config.batch_size,
                         mesh=self.mesh)


PIXEL_BASELINE_BYTES = 4 << 30
"""The raw-pixel baselines are skipped (with a line on the console) when their float32 pixels would take more."""


def _pixels(images) -> np.ndarray:
  """float32 pixels in [0, 1], one row per image; read in chunks, so a streamed split is never held as uint8."""
  n, dim = len(images), int(np.prod(images.shape[1:]))
  out = np.empty((n, dim), np.float32)
  for start in range(0, n, 4096):
    chunk = np.asarray(images[start:start + 4096])
    out[start:start + len(chunk)] = chunk.reshape(len(chunk), dim).astype(np.float32) / 255.0
  return out


def _pixels_fit(ctx: Context, *image_arrays) -> bool:
  """Whether the raw-pixel features of these images fit in `PIXEL_BASELINE_BYTES`; says so when they do not."""
  size = sum(4 * int(np.prod(x.shape)) for x in image_arrays)
  if size > PIXEL_BASELINE_BYTES:
    ctx.log(f"Skipped the raw-pixel baseline: its features would take {size / 2**30:.1f} GiB of host memory "
            f"(more than {PIXEL_BASELINE_BYTES / 2**30:.0f} GiB); lower eval.train_examples to get it.")
    return False
  return True


def train_subset(ctx: Context, train):
  """The training examples the final suites score: all of them, or a seeded subset of `eval.train_examples`
  (sorted positions drawn with `np.random.default_rng([seed, 7])`), for datasets too large to featurise whole."""
  n = getattr(ctx.config, "train_examples", 0) or 0
  if not n or n >= len(train):
    return train
  return train.take(np.sort(np.random.default_rng([ctx.seed, 7]).choice(len(train), n, replace=False)))


def _need(ctx: Context, suite: str, *keys: str) -> None:
  missing = [k for k in keys if k not in ctx.eval_data]
  if missing:
    raise ValueError(f"The `{suite}` suite needs the evaluation data {missing}, which this method's stream "
                     "does not provide; pick a suite that matches the stream.")


def _output(out: dict, suite: str, key: str) -> np.ndarray:
  if key not in out:
    raise ValueError(f"The `{suite}` suite reads `{key}` from the method's predict(), which returns only "
                     f"{sorted(out)}; return `{key}` or pick another suite.")
  return out[key]


# ------------------------------------------------------------------------------- representation


def representation_monitor(ctx: Context, state) -> dict[str, float]:
  """kNN top-1 on the first `eval.monitor_examples` train and test images, and the label-free RankMe (the
  effective rank of those training features: near 1 means collapse), cheap enough to run often."""
  _need(ctx, "representation", "train", "test")
  train, test = ctx.eval_data["train"], ctx.eval_data["test"]
  n_tr, n_te = min(ctx.config.monitor_examples, len(train)), min(ctx.config.monitor_examples, len(test))
  tr = _output(ctx.outputs(state, train.images[:n_tr]), "representation", "features")
  te = _output(ctx.outputs(state, test.images[:n_te]), "representation", "features")
  return {"knn_monitor_top1": knn_accuracy(tr, train.labels[:n_tr], te, test.labels[:n_te],
                                           num_classes=train.num_classes, k=ctx.config.knn_k,
                                           temperature=ctx.config.knn_temperature, mesh=ctx.mesh),
          "rankme": rankme(tr)}


def representation_final(ctx: Context, state) -> dict[str, float]:
  """Linear probe and kNN on frozen features of the whole train (or `eval.train_examples` of it) and test splits;
  the raw-pixel probe. Features are computed batch by batch, so a streamed split is read in chunks."""
  _need(ctx, "representation", "train", "test")
  train, test = train_subset(ctx, ctx.eval_data["train"]), ctx.eval_data["test"]
  t0 = time.perf_counter()
  tr = _output(ctx.outputs(state, train.images), "representation", "features")
  te = _output(ctx.outputs(state, test.images), "representation", "features")
  ctx.log(f"Extracted features {tr.shape} + {te.shape} in {time.perf_counter() - t0:.1f}s; fitting probes.")
  c = ctx.config
  out = {"linear_probe_top1": linear_probe(tr, train.labels, te, test.labels, num_classes=train.num_classes,
                                           mesh=ctx.mesh, epochs=c.probe_epochs, min_steps=c.probe_min_steps,
                                           seed=ctx.seed).top1,
         "knn_top1": knn_accuracy(tr, train.labels, te, test.labels, num_classes=train.num_classes,
                                  k=c.knn_k, temperature=c.knn_temperature, mesh=ctx.mesh)}
  if c.pixel_baseline and _pixels_fit(ctx, train.images, test.images):
    out["pixel_linear_probe_top1"] = linear_probe(
        _pixels(train.images), train.labels, _pixels(test.images), test.labels,
        num_classes=train.num_classes, mesh=ctx.mesh, epochs=c.probe_epochs, min_steps=c.probe_min_steps,
        seed=ctx.seed).top1
  return {k: float(v) for k, v in out.items()}


# ------------------------------------------------------------------------------------- accuracy


def _accuracy(ctx: Context, state, limit: int | None) -> dict[str, float]:
  _need(ctx, "accuracy", "test")
  test = ctx.eval_data["test"]
  n = len(test) if limit is None else min(limit, len(test))
  out = ctx.outputs(state, test.images[:n])
  results = {"test_top1": float(np.mean(np.argmax(_output(out, "accuracy", "logits"), -1) == test.labels[:n]))}
  if "ema_logits" in out:
    results["ema_test_top1"] = float(np.mean(np.argmax(out["ema_logits"], -1) == test.labels[:n]))
  return results


def accuracy_monitor(ctx: Context, state) -> dict[str, float]:
  """Test top-1 (and of the EMA model) on the first `eval.monitor_examples` test images."""
  return _accuracy(ctx, state, ctx.config.monitor_examples)


def accuracy_final(ctx: Context, state) -> dict[str, float]:
  """Test top-1 on the whole test split, and `ema_test_top1` when the method keeps an EMA model."""
  return _accuracy(ctx, state, None)


# ------------------------------------------------------------------------------------------ bags


def bag_scores(bag_logits: np.ndarray) -> np.ndarray:
  """The positive-class score of each bag: the logit itself ([B]) or the log-odds of 2 logits ([B, 2])."""
  bag_logits = np.asarray(bag_logits, np.float64)
  if bag_logits.ndim == 2 and bag_logits.shape[1] == 1:
    return bag_logits[:, 0]
  if bag_logits.ndim == 2 and bag_logits.shape[1] == 2:
    return bag_logits[:, 1] - bag_logits[:, 0]
  if bag_logits.ndim == 1:
    return bag_logits
  raise ValueError(f"bag_logits must be [B], [B, 1] or [B, 2] for a binary bag label; got {bag_logits.shape}.")


def bags_monitor(ctx: Context, state) -> dict[str, float]:
  """Bag AUC and accuracy (score > 0) on the test bags; the attention's instance AUC when it is known."""
  return _bags(ctx, state, figure=False)


def bags_final(ctx: Context, state) -> dict[str, float]:
  """As the monitor; with `ctx.figures_dir`, also `attention.png`: six test bags, each instance with its
  attention weight (or instance score), from `ssl_jax.evaluation.mil_figures.attention_figure`."""
  return _bags(ctx, state, figure=True)


def _bags(ctx: Context, state, *, figure: bool) -> dict[str, float]:
  from sklearn.metrics import roc_auc_score  # pylint: disable=g-import-not-at-top
  _need(ctx, "bags", "bags_test")
  bags = ctx.eval_data["bags_test"]
  # eval.batch_size counts instances here: 1,000 bags of 80 padded LeNet instances in one call took 17 GB.
  per_call = max(1, ctx.config.batch_size // bags["mask"].shape[1])
  out = ctx.outputs(state, {"instances": bags["instances"], "mask": bags["mask"]}, batch_size=per_call)
  scores, labels = bag_scores(_output(out, "bags", "bag_logits")), bags["label"]
  results = {"bag_accuracy": float(np.mean((scores > 0) == (labels == 1)))}
  if 0 < labels.sum() < len(labels):
    results["bag_auc"] = float(roc_auc_score(labels, scores))
  if "attention" in out and "instance_label" in bags:
    # Localisation: within positive bags, do the attention weights rank the key instances first?
    real = bags["mask"] & (labels[:, None] == 1)
    y = bags["instance_label"][real]
    if 0 < y.sum() < y.size:
      results["instance_auc"] = float(roc_auc_score(y, np.asarray(out["attention"])[real]))
  if figure and ctx.figures_dir and "attention" in out:
    from ssl_jax.evaluation.mil_figures import attention_figure  # pylint: disable=g-import-not-at-top
    path = os.path.join(ctx.figures_dir, "attention.png")
    attention_figure(bags["instances"], bags["mask"], labels, np.asarray(out["attention"]), path,
                     bag_scores=scores, instance_labels=bags.get("instance_label"))
    ctx.log(f"Wrote {path}.")
  return results


# ------------------------------------------------------------------------------------- retrieval


def _retrieval(ctx: Context, state, limit: int | None, *, pixels: bool, figure: bool = False) -> dict[str, float]:
  _need(ctx, "retrieval", "retrieval")
  data = ctx.eval_data["retrieval"]
  n = len(data) if limit is None else min(limit, len(data))
  emb = _output(ctx.outputs(state, data.images[:n]), "retrieval", "embeddings")
  results = retrieval_metrics(emb, data.labels[:n])
  if figure and ctx.figures_dir:
    path = os.path.join(ctx.figures_dir, "retrieval_tsne.png")
    tsne_figure(emb, data.labels[:n], path, seed=ctx.seed,
                title=f"t-SNE of the embeddings of {n} held-out test images (Recall@1 {results['recall_at_1']:.3f})")
    ctx.log(f"Wrote {path}.")
  if pixels and _pixels_fit(ctx, data.images[:n]):
    px = retrieval_metrics(_pixels(data.images[:n]), data.labels[:n])
    results.update({"pixel_recall_at_1": px["recall_at_1"], "pixel_map_at_r": px["map_at_r"]})
  return results


def retrieval_monitor(ctx: Context, state) -> dict[str, float]:
  """Recall@1 and MAP@R on the first `eval.monitor_examples` held-out images."""
  r = _retrieval(ctx, state, ctx.config.monitor_examples, pixels=False)
  return {"recall_at_1": r["recall_at_1"], "map_at_r": r["map_at_r"]}


def retrieval_final(ctx: Context, state) -> dict[str, float]:
  """Recall@1/2/4/8 and MAP@R on every held-out test image, and the same on raw pixels.

  With `ctx.figures_dir`, also the t-SNE picture of those embeddings, `retrieval_tsne.png`.
  """
  return _retrieval(ctx, state, None, pixels=ctx.config.pixel_baseline, figure=True)


# -------------------------------------------------------------------------------- reconstruction

RECONSTRUCTION_MONITOR_EXAMPLES = 1000


def image_grid(images: np.ndarray, cols: int, path: str, *, title: str = "") -> None:
  """Write images [n, h, w, c] in [0, 1] as a PNG grid of `cols` columns (1-pixel white gaps)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  images = np.clip(np.asarray(images, np.float64), 0.0, 1.0)
  n, h, w, c = images.shape
  rows = -(-n // cols)
  canvas = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, 3))
  for i, img in enumerate(images):
    r, q = divmod(i, cols)
    canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = (
        img if c == 3 else np.repeat(img[..., :1], 3, axis=-1))
  width = min(2 + cols * (w + 1) / 12, 20)
  fig, ax = plt.subplots(figsize=(width, width * canvas.shape[0] / canvas.shape[1] + (0.4 if title else 0)))
  ax.imshow(canvas, interpolation="nearest")
  ax.set_axis_off()
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _reconstruction(ctx: Context, state, limit: int | None, *, figure: bool) -> dict[str, float]:
  _need(ctx, "reconstruction", "test")
  test = ctx.eval_data["test"]
  n = len(test) if limit is None else min(limit, len(test))
  images = np.asarray(test.images[:n])
  out = ctx.outputs(state, {"image": images})
  recon = np.asarray(_output(out, "reconstruction", "reconstructions"), np.float32)
  pixels = images.astype(np.float32) / 255.0
  if recon.shape != pixels.shape:
    raise ValueError(f"The method's reconstructions have shape {recon.shape[1:]}, not the images' "
                     f"{pixels.shape[1:]}; return one image in [0, 1] per input.")
  results = {"reconstruction_mse": float(np.mean(np.square(recon - pixels)))}
  if figure and ctx.figures_dir:
    cols = min(16, n)
    rows = min(4, n // max(cols, 1))  # pairs of rows: the test images above their reconstructions
    pairs = [block for r in range(rows) for block in (pixels[r * cols:(r + 1) * cols], recon[r * cols:(r + 1) * cols])]
    path = os.path.join(ctx.figures_dir, "reconstructions.png")
    image_grid(np.concatenate(pairs), cols, path, title=f"Test images (odd rows) and their reconstructions "
               f"(even rows); MSE {results['reconstruction_mse']:.4f} over {n} test images")
    ctx.log(f"Wrote {path}.")
    if "samples" in out:
      path = os.path.join(ctx.figures_dir, "samples.png")
      image_grid(np.asarray(out["samples"][:64], np.float32), 8, path, title="Samples from the prior")
      ctx.log(f"Wrote {path}.")
  return results


def reconstruction_monitor(ctx: Context, state) -> dict[str, float]:
  """Reconstruction MSE of the first 1,000 (at most `eval.monitor_examples`) test images."""
  limit = min(ctx.config.monitor_examples, RECONSTRUCTION_MONITOR_EXAMPLES)
  return _reconstruction(ctx, state, limit, figure=False)


def reconstruction_final(ctx: Context, state) -> dict[str, float]:
  """Reconstruction MSE (pixels in [0, 1]) of every test image; with `ctx.figures_dir`, `reconstructions.png`
  (64 test images above their reconstructions) and, when the method predicts `samples`, `samples.png` (64
  images drawn from its prior)."""
  return _reconstruction(ctx, state, None, figure=True)


@dataclasses.dataclass(frozen=True)
class Suite:
  """A named pair of evaluations: `monitor` during training and `final` at the end."""
  monitor: Callable[[Context, Any], dict[str, float]]
  final: Callable[[Context, Any], dict[str, float]]


# The results each suite always writes (others depend on the data: e.g. `instance_auc` needs instance labels).
SUITE_KEYS: dict[str, tuple[str, ...]] = {
    "representation": ("linear_probe_top1", "knn_top1"),
    "accuracy": ("test_top1",),
    "bags": ("bag_auc", "bag_accuracy"),
    "retrieval": ("recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "map_at_r"),
    "reconstruction": ("reconstruction_mse",),
}

SUITES: dict[str, Suite] = {
    "representation": Suite(representation_monitor, representation_final),
    "accuracy": Suite(accuracy_monitor, accuracy_final),
    "bags": Suite(bags_monitor, bags_final),
    "retrieval": Suite(retrieval_monitor, retrieval_final),
    "reconstruction": Suite(reconstruction_monitor, reconstruction_final),
}
