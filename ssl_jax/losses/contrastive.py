"""Joint-embedding (contrastive and regression) losses: NT-Xent, InfoNCE, SupCon, negative cosine.

Every loss L2-normalises its inputs, computes in float32 (or wider) whatever the input dtype, and returns
one value per anchor; the caller takes the mean. With `axis_name=` the losses run inside `jax.shard_map`:
each device computes the rows of its own anchors against the keys of every device (gathered with
`all_gather`, whose transpose sends each key's gradient back to the device that owns it).

`ntxent` and `info_nce` take `block_size=`: the cross-entropy's log-sum-exp is then computed tile by tile
(`block_size` x `block_size` logits at a time, with a custom VJP that recomputes the tiles in the backward
pass), so neither the forward nor the backward pass holds the [N, N] logits matrix. It agrees with the dense
path to float32 rounding and supports reverse-mode differentiation (`jax.grad`, `jax.vjp`), not `jax.jvp`.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp

from ssl_jax.losses import _utils

# Logit given to excluded entries (self-similarity, padding): exp(_NEG - lse) underflows to exactly 0, and
# unlike -inf it never produces inf - inf = nan in a max-shift or a gradient.
_NEG = -1e30


def _check_temperature(loss: str, temperature) -> None:
  if isinstance(temperature, numbers.Real) and not temperature > 0:
    raise ValueError(f"{loss}: `temperature` must be positive; got {temperature!r}.")


def _check_block_size(loss: str, block_size) -> None:
  if block_size is not None and (
      isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1):
    raise ValueError(
        f"{loss}: `block_size` must be a positive integer or None; got {block_size!r}.")


def _match_manual_axes(*xs: jax.Array) -> tuple[jax.Array, ...]:
  """Give every array the union of the `shard_map` axes the others vary over; a no-op outside shard_map.

  Adding a zero built by `zeros_like` (which reads no values) makes an invariant array (e.g. a replicated
  queue) varying; the transpose of that broadcast is a psum, the correct gradient of a replicated input.
  The custom VJP below needs it: its cotangents must have the same varying axes as its inputs.
  """
  zero = sum(jnp.zeros_like(x, shape=()) for x in xs)
  return tuple(x + zero.astype(x.dtype) for x in xs)


# ----------------------------------------------------------------------------------------------------------
# Row-wise masked log-sum-exp of anchors @ keys.T: the one place where the [n, m] logits are formed.
# ----------------------------------------------------------------------------------------------------------


def _lse_dense(anchors: jax.Array, keys: jax.Array, exclude: jax.Array | None) -> jax.Array:
  """lse_i = log sum_{j != exclude_i} exp(<anchors_i, keys_j>) with one matmul: [n, d], [m, d] -> [n]."""
  logits = anchors @ keys.T
  if exclude is not None:
    cols = jnp.arange(keys.shape[0], dtype=jnp.int32)
    logits = jnp.where(cols[None, :] == exclude[:, None], _NEG, logits)
  return jax.nn.logsumexp(logits, axis=1)


def _tile_logits(a_blk, k_blk, excl_blk, col_start, num_valid):
  """Logits of one tile with excluded and padded columns set to _NEG, and the mask that did it."""
  logits = a_blk @ k_blk.T
  cols = col_start + jnp.arange(k_blk.shape[0], dtype=jnp.int32)
  mask = (cols[None, :] == excl_blk[:, None]) | (cols[None, :] >= num_valid)
  return jnp.where(mask, _NEG, logits), mask


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _lse_tiled(anchors, keys, exclude, num_valid: int, row_block: int, col_block: int):
  """Blockwise `_lse_dense` on padded inputs: anchors [n, d] with n % row_block == 0, keys [m, d] with
  m % col_block == 0, of which the first `num_valid` are real. Holds one [row_block, col_block] tile."""
  return _lse_tiled_fwd(anchors, keys, exclude, num_valid, row_block, col_block)[0]


def _lse_tiled_fwd(anchors, keys, exclude, num_valid, row_block, col_block):
  n, d = anchors.shape
  m = keys.shape[0]
  k_blocks = keys.reshape(m // col_block, col_block, d)
  col_starts = jnp.arange(0, m, col_block, dtype=jnp.int32)

  def rows(args):
    a_blk, e_blk = args

    def cols(carry, xs):  # online log-sum-exp over column tiles
      run_max, run_sum = carry
      k_blk, c0 = xs
      logits, _ = _tile_logits(a_blk, k_blk, e_blk, c0, num_valid)
      new_max = jnp.maximum(run_max, jnp.max(logits, axis=1))
      run_sum = run_sum * jnp.exp(run_max - new_max) + jnp.sum(jnp.exp(logits - new_max[:, None]), axis=1)
      return (new_max, run_sum), None

    init = (jnp.full_like(a_blk[:, 0], _NEG), jnp.zeros_like(a_blk[:, 0]))
    (run_max, run_sum), _ = jax.lax.scan(cols, init, (k_blocks, col_starts))
    return run_max + jnp.log(run_sum)

  lse = jax.lax.map(rows, (anchors.reshape(n // row_block, row_block, d),
                           exclude.reshape(n // row_block, row_block)))
  lse = lse.reshape(n)
  return lse, (anchors, keys, exclude, lse)


def _lse_tiled_bwd(num_valid, row_block, col_block, residuals, g):
  anchors, keys, exclude, lse = residuals
  n, d = anchors.shape
  m = keys.shape[0]
  k_blocks = keys.reshape(m // col_block, col_block, d)
  col_starts = jnp.arange(0, m, col_block, dtype=jnp.int32)

  def rows(dkeys, xs):
    a_blk, e_blk, lse_blk, g_blk = xs

    def cols(da_blk, ys):
      k_blk, c0 = ys
      logits, mask = _tile_logits(a_blk, k_blk, e_blk, c0, num_valid)
      # d lse_i / d logits_ij = softmax_ij, recomputed from the saved lse.
      p = jnp.where(mask, 0.0, jnp.exp(logits - lse_blk[:, None])) * g_blk[:, None]
      return da_blk + p @ k_blk, p.T @ a_blk

    da_blk, dk = jax.lax.scan(cols, jnp.zeros_like(a_blk), (k_blocks, col_starts))
    return dkeys + dk, da_blk

  dkeys, danchors = jax.lax.scan(
      rows, jnp.zeros_like(k_blocks),
      (anchors.reshape(n // row_block, row_block, d), exclude.reshape(n // row_block, row_block),
       lse.reshape(n // row_block, row_block), g.reshape(n // row_block, row_block)))
  return danchors.reshape(n, d), dkeys.reshape(m, d), None


_lse_tiled.defvjp(_lse_tiled_fwd, _lse_tiled_bwd)


def _masked_lse(anchors: jax.Array, keys: jax.Array, exclude: jax.Array | None,
                block_size: int | None) -> jax.Array:
  """Row-wise log-sum-exp of anchors @ keys.T over columns j != exclude[i]; [n, d], [m, d] -> [n].

  `exclude` holds one column index per row (-1 or None: exclude nothing). Dense (one matmul) when
  `block_size` is None, else tiled with the memory-efficient custom VJP; inputs are padded to whole tiles
  here, outside the custom VJP, so JAX differentiates the padding.
  """
  if block_size is None:
    return _lse_dense(anchors, keys, exclude)
  n, m = anchors.shape[0], keys.shape[0]
  if exclude is None:
    exclude = jnp.full((n,), -1, jnp.int32)
  row_block, col_block = min(block_size, n), min(block_size, m)
  pad_n, pad_m = -n % row_block, -m % col_block
  anchors, keys = _match_manual_axes(anchors, keys)
  a = jnp.pad(anchors, ((0, pad_n), (0, 0)))
  k = jnp.pad(keys, ((0, pad_m), (0, 0)))
  e = jnp.pad(exclude.astype(jnp.int32), (0, pad_n), constant_values=-1)
  return _lse_tiled(a, k, e, m, row_block, col_block)[:n]


# ----------------------------------------------------------------------------------------------------------
# Public losses.
# ----------------------------------------------------------------------------------------------------------


def ntxent(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.1, axis_name: str | None = None,
           block_size: int | None = None) -> jax.Array:
  r"""NT-Xent loss of SimCLR; one value per view-example.

  With u = normalise(concat(z1, z2)) over all 2B rows (B = global batch), row i and its other view pos(i)
  are positives and every other row of both views, on every device when `axis_name` is given, is a
  negative (2B - 2 negatives per anchor):

    l_i = -log( exp(u_i . u_pos(i) / t) / sum_{j != i} exp(u_i . u_j / t) ).

  The mean of the result is the SimCLR loss (both views serve as anchors). Computed as
  logsumexp_{j != i}(u_i . u_j / t) - u_i . u_pos(i) / t in float32.

  Args:
    z1: projections of the first view, shape [b, d] (per device when `axis_name` is set).
    z2: projections of the second view, shape [b, d]; row i is the positive of row i of `z1`.
    temperature: softmax temperature t > 0.
    axis_name: mesh axis to gather negatives over inside `jax.shard_map`; None under plain `jit`.
    block_size: None for the dense path (one [2b, 2B] logits matrix); an int to compute the log-sum-exp
      in [block_size, block_size] tiles with a memory-saving custom VJP (e.g. 1024 for large batches).

  Returns:
    float32 losses of shape [2b]: the b rows of `z1` as anchors, then the b rows of `z2` (under
    `shard_map`, each device's own rows in that order).

  References:
    Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual Representations,
    arXiv:2002.05709.
  """
  _utils.check_ndim("ntxent", 2, z1=z1, z2=z2)
  _utils.check_same_shape("ntxent", z1=z1, z2=z2)
  _check_temperature("ntxent", temperature)
  _check_block_size("ntxent", block_size)
  b = z1.shape[0]
  u1, u2 = _utils.l2_normalize(z1), _utils.l2_normalize(z2)
  anchors = jnp.concatenate([u1, u2], axis=0)          # [2b, d], this device's rows
  keys = _utils.all_gather(anchors, axis_name)           # [2B, d], device-major: [z1_0; z2_0; z1_1; ...]
  scaled = anchors / temperature
  positive = jnp.sum(scaled * jnp.concatenate([u2, u1], axis=0), axis=1)
  self_index = _utils.axis_index(axis_name) * (2 * b) + jnp.arange(2 * b, dtype=jnp.int32)
  return _masked_lse(scaled, keys, self_index, block_size) - positive


def info_nce(query: jax.Array, key: jax.Array, *, queue: jax.Array | None = None,
             temperature: float = 0.07, axis_name: str | None = None,
             block_size: int | None = None) -> jax.Array:
  r"""InfoNCE loss of MoCo; one value per query.

  With q, k, Q the L2-normalised query, key and queue, row i of `key` is the positive of row i of `query`.
  With a queue (MoCo v1/v2) the negatives are the K queue rows:

    l_i = -log( exp(q_i . k_i / t) / (exp(q_i . k_i / t) + sum_{j<K} exp(q_i . Q_j / t)) )
        = softplus( logsumexp_j(q_i . Q_j / t) - q_i . k_i / t ).

  Without a queue (MoCo v3) the negatives are the other keys of the batch, on every device when
  `axis_name` is given: l_i = -log softmax_j(q_i . k_j / t)[i] over all B keys.

  Args:
    query: queries, shape [b, d] (per device when `axis_name` is set).
    key: keys, shape [b, d]; row i is the positive of query row i. Apply `jax.lax.stop_gradient` to it
      yourself when the key encoder is not trained by this loss (MoCo).
    queue: negatives, shape [K, d], or None to use the other keys. The same queue serves every device;
      `axis_name` does not change the queue path.
    temperature: softmax temperature t > 0.
    axis_name: mesh axis to gather keys over inside `jax.shard_map` (no-queue path); None under `jit`.
    block_size: None for the dense path; an int to compute the log-sum-exp over negatives in tiles with a
      memory-saving custom VJP.

  Returns:
    float32 losses of shape [b].

  References:
    He et al. 2020, Momentum Contrast for Unsupervised Visual Representation Learning, arXiv:1911.05722.
    Chen, Xie & He 2021 (MoCo v3), An Empirical Study of Training Self-Supervised Vision Transformers,
    arXiv:2104.02057.
  """
  _utils.check_ndim("info_nce", 2, query=query, key=key)
  _utils.check_same_shape("info_nce", query=query, key=key)
  if queue is not None:
    _utils.check_ndim("info_nce", 2, queue=queue)
    if queue.shape[1] != query.shape[1]:
      raise _utils.shape_error(
          "info_nce", "`queue` must have the feature dimension of `query` ([K, d] with the same d)",
          query=query, key=key, queue=queue)
  _check_temperature("info_nce", temperature)
  _check_block_size("info_nce", block_size)
  q, k = _utils.l2_normalize(query), _utils.l2_normalize(key)
  scaled = q / temperature
  positive = jnp.sum(scaled * k, axis=1)
  if queue is not None:
    lse_neg = _masked_lse(scaled, _utils.l2_normalize(queue), None, block_size)
    return jax.nn.softplus(lse_neg - positive)
  keys = _utils.all_gather(k, axis_name)
  return _masked_lse(scaled, keys, None, block_size) - positive


def supcon(z: jax.Array, labels: jax.Array, *, temperature: float = 0.1,
           axis_name: str | None = None) -> jax.Array:
  r"""Supervised contrastive loss (SupCon, L_out); one value per anchor.

  With u the L2-normalised embeddings, A(i) every row but i and P(i) = {p in A(i): y_p = y_i} (on every
  device when `axis_name` is given):

    l_i = -1/|P(i)| sum_{p in P(i)} log( exp(u_i . u_p / t) / sum_{a in A(i)} exp(u_i . u_a / t) ),

  computed as logsumexp_{a in A(i)}(u_i . u_a / t) - mean_{p in P(i)} u_i . u_p / t. Anchors with no
  positive (a label seen once and a single view) get loss 0 and no gradient, so `mean` of the result
  counts them as zeros; divide by the number of anchors with positives if you want to leave them out.
  The `temperature / base_temperature` factor of the authors' code is omitted (it is 1 by default).

  Args:
    z: embeddings, shape [n, d], or [n, views, d] with the views of example i in z[i]; views are flattened
      into the batch view-major (all of view 0, then view 1, ...) with the labels repeated. Per device
      when `axis_name` is set.
    labels: integer class labels, shape [n].
    temperature: softmax temperature t > 0.
    axis_name: mesh axis to gather positives and negatives over inside `jax.shard_map`; None under `jit`.

  Returns:
    float32 losses of shape [n] for 2-D `z`, [views * n] (view-major) for 3-D `z`.

  References:
    Khosla et al. 2020, Supervised Contrastive Learning, arXiv:2004.11362.
  """
  _utils.check_ndim("supcon", (2, 3), z=z)
  _utils.check_ndim("supcon", 1, labels=labels)
  if labels.shape[0] != z.shape[0]:
    raise _utils.shape_error(
        "supcon", "`labels` must have one entry per row of `z` ([n] for z of shape [n, d] or "
        "[n, views, d])", z=z, labels=labels)
  _check_temperature("supcon", temperature)
  if z.ndim == 3:
    views = z.shape[1]
    z = jnp.swapaxes(z, 0, 1).reshape(views * z.shape[0], z.shape[2])
    labels = jnp.tile(labels, views)
  n = z.shape[0]
  u = _utils.l2_normalize(z)
  keys = _utils.all_gather(u, axis_name)
  key_labels = _utils.all_gather(labels, axis_name)
  logits = (u / temperature) @ keys.T                                       # [n, N]
  cols = jnp.arange(keys.shape[0], dtype=jnp.int32)
  self_index = _utils.axis_index(axis_name) * n + jnp.arange(n, dtype=jnp.int32)
  is_self = cols[None, :] == self_index[:, None]
  logits = jnp.where(is_self, _NEG, logits)
  lse = jax.nn.logsumexp(logits, axis=1)
  is_pos = (labels[:, None] == key_labels[None, :]) & ~is_self
  num_pos = jnp.sum(is_pos, axis=1)
  mean_pos = jnp.sum(jnp.where(is_pos, logits, 0.0), axis=1) / jnp.maximum(num_pos, 1)
  return jnp.where(num_pos > 0, lse - mean_pos, 0.0)


def negative_cosine(p: jax.Array, z: jax.Array) -> jax.Array:
  r"""Negative cosine similarity of BYOL / SimSiam; one value per example.

    l_i = -<p_i, z_i> / (||p_i|| ||z_i||).

  This is SimSiam's form, in [-1, 1]. BYOL writes it as ||p_i/||p_i|| - z_i/||z_i|| ||^2 = 2 + 2 l_i, an
  affine transform with the same minimiser and twice the gradient. The caller applies
  `jax.lax.stop_gradient` to the target `z` (and symmetrises over the two views).

  Args:
    p: predictions of the online network, shape [b, d].
    z: targets, shape [b, d].

  Returns:
    float32 losses of shape [b].

  References:
    Grill et al. 2020, Bootstrap Your Own Latent, arXiv:2006.07733.
    Chen & He 2021, Exploring Simple Siamese Representation Learning, arXiv:2011.10566.
  """
  _utils.check_ndim("negative_cosine", 2, p=p, z=z)
  _utils.check_same_shape("negative_cosine", p=p, z=z)
  return -jnp.sum(_utils.l2_normalize(p) * _utils.l2_normalize(z), axis=1)
