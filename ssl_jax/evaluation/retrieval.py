"""Retrieval metrics of metric learning: Recall@K and MAP@R, every item a query against all the others.

Similarity is the cosine of the embeddings. For a query q with label y_q, its neighbours are all other
items sorted by decreasing similarity (the query itself excluded);

  Recall@K = mean_q [ at least one of the K nearest neighbours has label y_q ]      (Oh Song et al. 2016)
  MAP@R    = mean_q (1 / R_q) sum_{i=1}^{R_q} P_q(i) [neighbour i has label y_q]     (Musgrave et al. 2020)

where R_q is the number of other items with label y_q and P_q(i) the precision among the i nearest.
Queries are processed in blocks on the device (`[block, N]` similarities at a time), so N of tens of
thousands fits in memory. References: Oh Song et al. 2016, arXiv:1511.06452; Musgrave, Belongie & Lim
2020, "A Metric Learning Reality Check", arXiv:2003.08505.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _normalize(x: jax.Array) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _block_scores(q, q_labels, q_index, gallery, labels, same_count, *, ks: tuple[int, ...], r_max: int):
  sims = q @ gallery.T                                           # [blk, N]
  sims = sims.at[jnp.arange(q.shape[0]), q_index].set(-jnp.inf)  # a query is not its own neighbour
  _, nn = jax.lax.top_k(sims, max(max(ks), r_max))
  hits = (labels[nn] == q_labels[:, None]).astype(jnp.float32)    # [blk, k]
  recalls = jnp.stack([jnp.max(hits[:, :k], axis=1) for k in ks], axis=1)
  r = same_count                                                  # [blk]
  ranks = jnp.arange(1, hits.shape[1] + 1, dtype=jnp.float32)
  in_r = ranks[None, :] <= r[:, None]
  precision = jnp.cumsum(hits, axis=1) / ranks[None, :]
  map_r = jnp.sum(jnp.where(in_r, precision * hits, 0.0), axis=1) / jnp.maximum(r, 1)
  return recalls, map_r


def retrieval_metrics(embeddings: np.ndarray, labels: np.ndarray, *, ks: Sequence[int] = (1, 2, 4, 8),
                      block_size: int = 256) -> dict[str, float]:
  """Recall@K for each K in `ks` and MAP@R over all items of a labelled set (see module docstring).

  Args:
    embeddings: [N, d] float embeddings (normalised here; cosine similarity).
    labels: [N] integer labels.
    ks: the K of Recall@K.
    block_size: queries per block.
  Returns:
    {"recall_at_<K>": ..., "map_at_r": ...}; queries whose class has no other item are left out.
  """
  embeddings = np.asarray(embeddings, np.float32)
  labels = np.asarray(labels)
  if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
    raise ValueError(f"retrieval_metrics: embeddings must be [N, d] with one label each; got "
                     f"{embeddings.shape} and labels {labels.shape}.")
  n = len(labels)
  ks = tuple(int(k) for k in ks)
  if n < 2 or min(ks) < 1 or max(ks) >= n:
    raise ValueError(f"retrieval_metrics: need 2 <= N and 1 <= K < N; got N={n}, ks={ks}.")
  _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
  same = (counts[inverse] - 1).astype(np.float32)     # R of every query
  r_max = int(min(same.max(), n - 1))
  gallery = _normalize(jnp.asarray(embeddings))
  labels_d = jnp.asarray(labels)
  fn = jax.jit(functools.partial(_block_scores, ks=ks, r_max=r_max))
  block = min(block_size, n)
  recalls, maps = [], []
  for start in range(0, n, block):
    idx = np.arange(start, start + block) % n          # the last block wraps round; extra rows dropped
    rec, mp = fn(gallery[idx], labels_d[idx], jnp.asarray(idx), gallery, labels_d, jnp.asarray(same[idx]))
    take = min(block, n - start)
    recalls.append(np.asarray(rec)[:take])
    maps.append(np.asarray(mp)[:take])
  recalls, maps = np.concatenate(recalls), np.concatenate(maps)
  valid = same > 0
  out = {f"recall_at_{k}": float(recalls[valid, i].mean()) for i, k in enumerate(ks)}
  out["map_at_r"] = float(maps[valid].mean())
  return out


def tsne_figure(embeddings: np.ndarray, labels: np.ndarray, path: str, *, max_points: int = 2000,
                seed: int = 0, title: str = "", class_names: Sequence[str] | None = None) -> np.ndarray:
  """A 2-D t-SNE picture (scikit-learn's `TSNE`, cosine metric) of embeddings coloured by label, as a PNG.

  At most `max_points` rows are drawn (a seeded random subset, to keep it to seconds); the 2-D points are
  returned ([n, 2]). References: van der Maaten & Hinton 2008, "Visualizing Data using t-SNE", JMLR 9.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  points, y = tsne_points(embeddings, labels, max_points=max_points, seed=seed)
  fig, ax = plt.subplots(figsize=(6, 6))
  plot_tsne(ax, points, y, title=title or f"t-SNE of {len(y)} embeddings", class_names=class_names)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return points


def tsne_points(embeddings: np.ndarray, labels: np.ndarray, *, max_points: int = 2000,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(2-D t-SNE points [n, 2], their labels [n]) of a seeded subset of at most `max_points` rows."""
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  embeddings, labels = np.asarray(embeddings, np.float32), np.asarray(labels)
  if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1] or len(labels) < 3:
    raise ValueError(f"tsne_figure: embeddings must be [N, d] with N >= 3 and one label each; got "
                     f"{embeddings.shape} and labels {labels.shape}.")
  rng = np.random.default_rng(seed)
  keep = np.sort(rng.choice(len(labels), min(max_points, len(labels)), replace=False))
  x, y = embeddings[keep], labels[keep]
  points = TSNE(n_components=2, metric="cosine", init="pca", random_state=seed,
                perplexity=min(30.0, (len(x) - 1) / 3)).fit_transform(x)
  return points, y


def plot_tsne(ax, points: np.ndarray, labels: np.ndarray, *, title: str = "",
              class_names: Sequence[str] | None = None) -> None:
  """Scatter t-SNE points on a matplotlib axis, one colour per class."""
  y = labels
  for c in np.unique(y):
    name = class_names[c] if class_names is not None and c < len(class_names) else f"class {c}"
    ax.scatter(points[y == c, 0], points[y == c, 1], s=4, label=name)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.legend(markerscale=3, fontsize=7, loc="best")
  ax.set_title(title, fontsize=9)
