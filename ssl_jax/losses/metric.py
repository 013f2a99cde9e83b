"""Metric-learning losses: siamese contrastive, triplet, and triplet with online batch mining.

All losses are pure functions with keyword-only hyperparameters that return one value per pair,
triplet or anchor; the caller reduces. The mining losses also return a boolean `valid` mask of the
anchors that had both a positive and a negative, so the usual reduction is

  losses, valid = batch_hard_triplet(embeddings, labels)
  loss = jnp.sum(losses) / jnp.maximum(jnp.sum(valid), 1)

and, inside `jax.shard_map` with `axis_name`, the same with `psum` over the axis for both sums.
Distances are computed in float32 at least (bfloat16/float16 inputs are upcast, as TF-Addons does),
so the returned losses are float32 for half-precision inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.losses import _utils as U


def _float(x: jax.Array) -> jax.Array:
  """`x` as a floating array of at least float32 precision."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_floating(loss: str, **arrays) -> None:
  """Raise if any array is not of a floating dtype."""
  for name, x in arrays.items():
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
      got = ", ".join(f"{k}{tuple(jnp.shape(v))}:{jnp.result_type(v)}" for k, v in arrays.items())
      raise ValueError(f"{loss}: `{name}` must be a floating array (embeddings), not "
                       f"{jnp.result_type(x)}; got {got}. Cast it with `.astype(jnp.float32)`.")


def _check_labels(loss: str, embeddings: jax.Array, labels: jax.Array) -> None:
  """Raise unless embeddings are [b, d] floats and labels are [b] integers."""
  U.check_ndim(loss, 2, embeddings=embeddings)
  _check_floating(loss, embeddings=embeddings)
  if jnp.ndim(labels) != 1 or jnp.shape(labels)[0] != jnp.shape(embeddings)[0]:
    raise U.shape_error(loss, "`labels` must have shape [b], one class id per row of `embeddings`",
                        embeddings=embeddings, labels=labels)
  dtype = jnp.result_type(labels)
  if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_)):
    raise ValueError(f"{loss}: `labels` must be integer class ids, not {dtype} (shape "
                     f"{tuple(jnp.shape(labels))}); pass `labels.astype(jnp.int32)`, not one-hot "
                     f"or float labels.")


def _safe_sqrt(d2: jax.Array) -> jax.Array:
  """sqrt(d2) with value 0 and gradient 0 (not inf/NaN) where d2 == 0 (double-where trick)."""
  positive = d2 > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)


def _candidate_distances(
    embeddings: jax.Array, labels: jax.Array, squared: bool, axis_name: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Distances from the local anchors to every candidate of the (global) batch, with masks.

  Returns:
    dist: [b, B] distances (squared if `squared`), exactly 0 from an anchor to itself.
    positive: [b, B] bool, same label and not the anchor itself.
    negative: [b, B] bool, different label.
  """
  x = _float(embeddings)
  cands = U.all_gather(x, axis_name)
  cand_labels = U.all_gather(labels, axis_name)
  b = x.shape[0]
  # |a - c|^2 = |a|^2 + |c|^2 - 2 <a, c>, clipped at 0 against cancellation error.
  sq_a = jnp.sum(x * x, axis=-1, keepdims=True)
  sq_c = jnp.sum(cands * cands, axis=-1)[None, :]
  gram = jnp.matmul(x, cands.T, precision=jax.lax.Precision.HIGHEST)
  d2 = jnp.maximum(sq_a + sq_c - 2.0 * gram, 0.0)
  rows = U.axis_index(axis_name) * b + jnp.arange(b)
  is_self = rows[:, None] == jnp.arange(cands.shape[0])[None, :]
  d2 = jnp.where(is_self, 0.0, d2)
  dist = d2 if squared else _safe_sqrt(d2)
  same = labels[:, None] == cand_labels[None, :]
  return dist, same & ~is_self, ~same


def contrastive_margin(x1: jax.Array, x2: jax.Array, y: jax.Array, *,
                       margin: float = 1.0) -> jax.Array:
  """Siamese contrastive (margin) loss of Hadsell, Chopra and LeCun; one value per pair.

  With D = ||x1_i - x2_i||_2 and Y_i = 0 for a similar (positive) pair, 1 for a dissimilar one:
    L_i = (1 - Y_i) * 1/2 * D^2 + Y_i * 1/2 * max(0, margin - D)^2.
  Note the label convention: Y = 1 means *dissimilar* (as in the paper), unlike TF-Addons'
  `contrastive_loss` where 1 means similar. The gradient is finite everywhere, including D = 0.

  Args:
    x1, x2: embeddings of the two members of each pair, shape [b, d], floating.
    y: pair labels, shape [b]: 0 for a similar pair, 1 for a dissimilar pair (int, bool or float).
    margin: distance beyond which dissimilar pairs no longer contribute.
  Returns:
    Losses of shape [b] (float32 at least); the caller takes the mean.
  References: Hadsell, Chopra, LeCun 2006, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR.
  """
  name = "contrastive_margin"
  U.check_ndim(name, 2, x1=x1, x2=x2)
  U.check_same_shape(name, x1=x1, x2=x2)
  _check_floating(name, x1=x1, x2=x2)
  if jnp.shape(y) != jnp.shape(x1)[:1]:
    raise U.shape_error(name, "`y` must have shape [b], one 0/1 label per pair", x1=x1, x2=x2, y=y)
  diff = _float(x1) - _float(x2)
  d2 = jnp.sum(diff * diff, axis=-1)
  d = _safe_sqrt(d2)
  y = jnp.asarray(y).astype(d2.dtype)
  return (1.0 - y) * 0.5 * d2 + y * 0.5 * jnp.square(jnp.maximum(margin - d, 0.0))


def triplet_margin(anchor: jax.Array, positive: jax.Array, negative: jax.Array, *,
                   margin: float = 1.0, p: float = 2, eps: float = 1e-6) -> jax.Array:
  """Triplet margin loss on given triplets; one value per triplet.

    L_i = max(0, margin + d(a_i, p_i) - d(a_i, n_i)),  d(u, v) = (sum_k |u_k - v_k|^p + eps)^(1/p).
  `eps` sits inside the root, the convention of `optax.losses.triplet_margin_loss`, which keeps the
  gradient finite when a = p; for even `p` the two agree exactly. We take |u - v| before the
  power, so odd `p` is a true p-norm (optax omits the absolute value). PyTorch's
  `TripletMarginLoss` instead adds eps to the difference, ||u - v + eps||_p (an O(eps) difference).

  Args:
    anchor, positive, negative: embeddings, shape [b, d], floating.
    margin: required gap between the negative and the positive distance.
    p: norm degree of the distance (> 0).
    eps: added to the sum of powers before the root, for a finite gradient at zero distance.
  Returns:
    Losses of shape [b] (float32 at least); the caller takes the mean.
  References: Schroff, Kalenichenko, Philbin 2015, arXiv:1503.03832; Balntas et al. 2016, BMVC.
  """
  name = "triplet_margin"
  U.check_ndim(name, 2, anchor=anchor, positive=positive, negative=negative)
  U.check_same_shape(name, anchor=anchor, positive=positive, negative=negative)
  _check_floating(name, anchor=anchor, positive=positive, negative=negative)
  a, pos, neg = _float(anchor), _float(positive), _float(negative)

  def dist(u, v):
    return jnp.power(jnp.sum(jnp.power(jnp.abs(u - v), p), axis=-1) + eps, 1.0 / p)

  return jnp.maximum(margin + dist(a, pos) - dist(a, neg), 0.0)


def batch_hard_triplet(embeddings: jax.Array, labels: jax.Array, *, margin: float = 1.0,
                       squared: bool = False,
                       axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """Triplet loss with online batch-hard mining (Hermans et al.); one value per anchor.

  For each anchor a, the hardest positive is the farthest other row with the same label and the
  hardest negative the closest row with a different label:
    L_a = max(0, margin + max_{p: y_p = y_a, p != a} d(a, p) - min_{n: y_n != y_a} d(a, n)).
  With `axis_name`, the anchors are the local rows and the candidates (positives and negatives) come
  from the global batch, all-gathered over the axis; gradients flow back to every device's rows.
  Anchors with no positive or no negative among the candidates get loss 0 and `valid` False.

  Args:
    embeddings: shape [b, d] (per device when `axis_name` is set), floating; usually L2-normalized.
    labels: integer class ids, shape [b].
    margin: required gap between hardest-negative and hardest-positive distances.
    squared: use squared Euclidean distances instead of Euclidean ones.
    axis_name: mesh axis to gather candidates over inside `shard_map`; None under plain `jit`.
  Returns:
    (losses, valid): losses of shape [b] (float32 at least) and a bool mask of shape [b]. Reduce
    with sum(losses) / max(sum(valid), 1) (psum both sums over `axis_name` when sharded).
  References: Hermans, Beyer, Leibe 2017, arXiv:1703.07737.
  """
  name = "batch_hard_triplet"
  _check_labels(name, embeddings, labels)
  dist, positive, negative = _candidate_distances(embeddings, labels, squared, axis_name)
  has_pos, has_neg = jnp.any(positive, axis=1), jnp.any(negative, axis=1)
  hardest_pos = jnp.max(jnp.where(positive, dist, -jnp.inf), axis=1)
  hardest_neg = jnp.min(jnp.where(negative, dist, jnp.inf), axis=1)
  valid = has_pos & has_neg
  hardest_pos = jnp.where(valid, hardest_pos, 0.0)
  hardest_neg = jnp.where(valid, hardest_neg, 0.0)
  losses = jnp.where(valid, jnp.maximum(margin + hardest_pos - hardest_neg, 0.0), 0.0)
  return losses, valid


def batch_semi_hard_triplet(embeddings: jax.Array, labels: jax.Array, *, margin: float = 1.0,
                            squared: bool = False,
                            axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """Triplet loss with FaceNet's online semi-hard mining; one value per anchor.

  For every anchor-positive pair (a, p) (same label, p != a) the negative is the semi-hard one, the
  closest negative farther than the positive,
    n*(a, p) = argmin_{n: y_n != y_a, d(a, n) > d(a, p)} d(a, n);
  if there is none, it falls back to the farthest negative, argmax_{n: y_n != y_a} d(a, n). This is
  exactly the rule of TF-Addons `triplet_semihard_loss` (and tf.contrib's before it). Per anchor,
    L_a = mean_{p} max(0, margin + d(a, p) - d(a, n*(a, p))).
  Differences from TF-Addons: TF-Addons returns one scalar, the mean over all positive *pairs* of
  the batch; we return per-anchor means (weight L_a by the anchor's positive count to recover it).
  Its default `distance_metric="L_2"` actually uses *squared* distances: pass `squared=True` to
  match it. With `axis_name`, anchors are the local rows and candidates the all-gathered global
  batch. Anchors with no positive or no negative get loss 0 and `valid` False. The negative is found
  by sorting each anchor's negative distances (memory O(b * B), not the O(b * B^2) of the tiled TF
  formulation).

  Args:
    embeddings: shape [b, d] (per device when `axis_name` is set), floating; usually L2-normalized.
    labels: integer class ids, shape [b].
    margin: required gap between negative and positive distances.
    squared: use squared Euclidean distances instead of Euclidean ones.
    axis_name: mesh axis to gather candidates over inside `shard_map`; None under plain `jit`.
  Returns:
    (losses, valid): losses of shape [b] (float32 at least) and a bool mask of shape [b]. Reduce
    with sum(losses) / max(sum(valid), 1) (psum both sums over `axis_name` when sharded).
  References: Schroff, Kalenichenko, Philbin 2015, arXiv:1503.03832.
  """
  name = "batch_semi_hard_triplet"
  _check_labels(name, embeddings, labels)
  dist, positive, negative = _candidate_distances(embeddings, labels, squared, axis_name)
  num_pos = jnp.sum(positive, axis=1)
  num_neg = jnp.sum(negative, axis=1)
  # Each anchor's negative distances in increasing order, non-negatives pushed to the end as +inf.
  neg_sorted = jnp.sort(jnp.where(negative, dist, jnp.inf), axis=1)
  # Index of the first negative strictly farther than d(a, p), for every candidate p.
  first_farther = jax.vmap(lambda row, q: jnp.searchsorted(row, q, side="right"))(neg_sorted, dist)
  has_semi_hard = first_farther < num_neg[:, None]
  farthest = jnp.take_along_axis(neg_sorted, jnp.maximum(num_neg - 1, 0)[:, None], axis=1)
  semi_hard = jnp.take_along_axis(neg_sorted, jnp.minimum(first_farther, dist.shape[1] - 1), axis=1)
  d_an = jnp.where(has_semi_hard, semi_hard, farthest)
  d_an = jnp.where(positive & (num_neg[:, None] > 0), d_an, 0.0)
  pair_losses = jnp.where(positive, jnp.maximum(margin + dist - d_an, 0.0), 0.0)
  valid = (num_pos > 0) & (num_neg > 0)
  losses = jnp.where(valid, jnp.sum(pair_losses, axis=1) / jnp.maximum(num_pos, 1), 0.0)
  return losses, valid
