"""Clustering / self-distillation losses: Sinkhorn-Knopp, SwAV and DINO.

`sinkhorn_knopp` and `swav` are batch-coupled (the equipartition constraint is over the global batch) and
take `axis_name=` for use inside `jax.shard_map`. The DINO loss is per-example once the center is given
(`dino_per_example`); only the center update `dino_center` needs the global batch.

All arithmetic runs in float32 at least; Sinkhorn works in the log domain, so small epsilons and large
scores never overflow.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ssl_jax.losses._utils import check_ndim, psum, shape_error


def _check_positive(loss: str, name: str, value) -> None:
  """Raise if a concrete hyperparameter is not > 0 (traced values, e.g. schedules, are not checked)."""
  if isinstance(value, numbers.Real) and not value > 0:
    raise ValueError(f"{loss}: `{name}` must be > 0; got {name}={value!r}.")


def _float_dtype(x) -> jnp.dtype:
  return jnp.promote_types(jnp.result_type(x), jnp.float32)


def _stack_views(loss: str, name: str, views) -> jax.Array:
  """Turn a sequence of [b, K] arrays, or one [V, b, K] array, into a [V, b, K] array."""
  if isinstance(views, (list, tuple)):
    if not views:
      raise ValueError(f"{loss}: `{name}` must hold at least one [b, K] array; got an empty sequence.")
    shapes = [tuple(jnp.shape(v)) for v in views]
    if any(len(s) != 2 for s in shapes) or len(set(shapes)) > 1:
      raise ValueError(f"{loss}: every crop in `{name}` must be a [b, K] array of the same shape (same batch "
                       f"and number of prototypes); got shapes {shapes}.")
    return jnp.stack(views)
  check_ndim(loss, 3, **{name: views})
  return jnp.asarray(views)


def _global_logsumexp(x: jax.Array, axis, axis_name: str | None) -> jax.Array:
  """log sum exp of x over `axis` and, when `axis_name` is set, over the devices too (keepdims).

  `axis` must include the batch axis 0 when `axis_name` is set. Not differentiated (used under
  `stop_gradient`).
  """
  m = jnp.max(x, axis=axis, keepdims=True)
  if axis_name is not None:
    m = jax.lax.pmax(m, axis_name)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  return m + jnp.log(psum(jnp.sum(jnp.exp(x - m), axis=axis, keepdims=True), axis_name))


def sinkhorn_knopp(scores: jax.Array, *, epsilon: float = 0.05, num_iters: int = 3,
                   axis_name: str | None = None) -> jax.Array:
  r"""Soft equipartitioned assignment of samples to prototypes (SwAV's `distributed_sinkhorn`).

  With B the global batch size and K the number of prototypes, starting from Q = exp(scores / epsilon)
  normalised to sum to 1, each iteration rescales

    rows (prototypes):  Q_bk <- Q_bk / (K sum_b' Q_b'k)      (sum over the global batch)
    columns (samples):  Q_bk <- Q_bk / (B sum_k' Q_bk')

  and the result is B Q, so every row of the output (one sample) sums to 1 and, as num_iters grows, every
  prototype receives B / K of the mass. The iterations run in the log domain (log-sum-exp instead of sums of
  exponentials), which equals the exp-based reference up to rounding but never overflows, e.g. with
  epsilon=0.05 and scores of 10 or more.

  Args:
    scores: prototype scores, shape [b, K] (per device when `axis_name` is set), usually cosine
      similarities between normalised embeddings and normalised prototypes.
    epsilon: entropic regularisation; smaller is closer to a hard assignment.
    num_iters: number of Sinkhorn iterations (a Python int; 3 in SwAV).
    axis_name: mesh axis that shards the batch inside `shard_map`: the row sums and B are global;
      None under plain `jit`.

  Returns:
    Assignments Q of shape [b, K], dtype float32 (or wider), rows summing to 1 (when num_iters >= 1),
    with no gradient (`stop_gradient`).

  Raises:
    ValueError: if scores is not rank 2, epsilon <= 0 or num_iters is not a non-negative int.

  References:
    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments",
    NeurIPS 2020, arXiv:2006.09882 (Sec. 3.1); facebookresearch/swav main_swav.py `distributed_sinkhorn`.
  """
  loss = "sinkhorn_knopp"
  check_ndim(loss, 2, scores=scores)
  _check_positive(loss, "epsilon", epsilon)
  if isinstance(num_iters, bool) or not isinstance(num_iters, numbers.Integral) or num_iters < 0:
    raise ValueError(f"{loss}: `num_iters` must be a non-negative Python int; got num_iters={num_iters!r}.")
  scores = jax.lax.stop_gradient(jnp.asarray(scores))
  scores = scores.astype(_float_dtype(scores))
  b, k = scores.shape
  log_b = jnp.log(psum(jnp.asarray(b, scores.dtype), axis_name))
  log_k = math.log(k)

  log_q = scores / epsilon
  log_q = log_q - _global_logsumexp(log_q, None, axis_name)  # Q /= sum(Q)

  def body(_, log_q):
    log_q = log_q - _global_logsumexp(log_q, 0, axis_name) - log_k  # prototypes: mass 1/K each
    return log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True) - log_b  # samples: mass 1/B each

  log_q = jax.lax.fori_loop(0, int(num_iters), body, log_q)
  return jax.lax.stop_gradient(jnp.exp(log_q + log_b))


def swav(scores_per_view: Sequence[jax.Array] | jax.Array, *, temperature: float = 0.1,
         epsilon: float = 0.05, num_iters: int = 3, crops_for_assign: Sequence[int] = (0, 1),
         axis_name: str | None = None) -> jax.Array:
  r"""SwAV swapped-prediction loss over multi-crop views; a scalar.

  For each crop v in `crops_for_assign`, codes q_v = sinkhorn_knopp(scores_v) (no gradient) are predicted
  from every other crop u:

    L = (1/|A|) sum_{v in A} (1/(V-1)) sum_{u != v} (1/B) sum_b -sum_k q_v[b, k] log softmax_k(scores_u[b] / t)

  exactly as the official training loop (without the optional feature queue: to use one, concatenate the
  queued scores before calling `sinkhorn_knopp` and keep the last b rows). Batch-coupled through Sinkhorn,
  so it returns a scalar; the mean is over the global batch B.

  Args:
    scores_per_view: prototype scores of each crop, a sequence of V arrays of shape [b, K] (the 2 global
      crops, then any local crops, all with the same b), or one array of shape [V, b, K].
    temperature: softmax temperature of the predictions (t).
    epsilon: Sinkhorn entropic regularisation.
    num_iters: number of Sinkhorn iterations.
    crops_for_assign: indices of the crops whose codes are computed (A); each in [0, V).
    axis_name: mesh axis that shards the batch inside `shard_map` (global Sinkhorn and global mean);
      None under plain `jit`.

  Returns:
    The loss, a scalar of dtype float32 (or wider), identical on every device.

  Raises:
    ValueError: on crops of different shapes, fewer than 2 crops, or `crops_for_assign` out of range.

  References:
    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments",
    NeurIPS 2020, arXiv:2006.09882; facebookresearch/swav main_swav.py.
  """
  loss = "swav"
  scores = _stack_views(loss, "scores_per_view", scores_per_view)
  n_views, b, _ = scores.shape
  if n_views < 2:
    raise shape_error(loss, "`scores_per_view` must hold at least 2 crops to predict one from another",
                      scores_per_view=scores)
  crops = tuple(crops_for_assign)
  if (not crops or any(isinstance(c, bool) or not isinstance(c, numbers.Integral) for c in crops)
      or any(not 0 <= c < n_views for c in crops)):
    raise ValueError(f"{loss}: `crops_for_assign` must be a non-empty sequence of crop indices in "
                     f"[0, {n_views}) for {n_views} crops; got crops_for_assign={crops_for_assign!r}.")
  _check_positive(loss, "temperature", temperature)
  scores = scores.astype(_float_dtype(scores))
  log_p = jax.nn.log_softmax(scores / temperature, axis=-1)  # [V, b, K]

  total = jnp.zeros((), scores.dtype)
  for v in crops:
    q = sinkhorn_knopp(scores[v], epsilon=epsilon, num_iters=num_iters, axis_name=axis_name)
    ce = -jnp.sum(q[None] * log_p, axis=-1)  # [V, b]: cross-entropy of every crop against q_v
    others = jnp.arange(n_views) != v
    total = total + jnp.sum(jnp.where(others[:, None], ce, 0.0)) / (n_views - 1)
  total = total / len(crops)
  return psum(total, axis_name) / psum(jnp.asarray(b, total.dtype), axis_name)


def _dino_inputs(student_logits, teacher_logits, center):
  loss = "dino"
  student = _stack_views(loss, "student_logits", student_logits)
  teacher = _stack_views(loss, "teacher_logits", teacher_logits)
  n_s, b_s, k_s = student.shape
  n_t, b_t, k_t = teacher.shape
  if (b_s, k_s) != (b_t, k_t):
    raise shape_error(loss, "student and teacher crops must have the same batch and output size [b, K]",
                      student_logits=student, teacher_logits=teacher)
  if n_s < max(n_t, 2):
    raise shape_error(loss, "need at least 2 student crops and at least as many as teacher crops (the first "
                      "T student crops are the global crops the teacher saw)",
                      student_logits=student, teacher_logits=teacher)
  if jnp.shape(center) not in ((k_t,), (1, k_t)):
    raise shape_error(loss, f"`center` must have shape [K] or [1, K] with K={k_t}",
                      center=center, teacher_logits=teacher)
  return student, teacher, jnp.reshape(center, (k_t,))


def dino_per_example(student_logits: Sequence[jax.Array] | jax.Array,
                     teacher_logits: Sequence[jax.Array] | jax.Array, center: jax.Array, *,
                     student_temperature: float = 0.1, teacher_temperature: float = 0.04) -> jax.Array:
  r"""DINO self-distillation loss, one value per example.

  With teacher crops t = 0..T-1 and student crops s = 0..S-1 (the first T student crops are the same global
  crops the teacher saw), teacher targets P_t = stop_gradient(softmax((g_t - c) / tau_t)) and

    l_b = (1/|pairs|) sum_{t, s != t} -sum_k P_t[b, k] log softmax_k(f_s[b] / tau_s),   |pairs| = T (S - 1).

  Args:
    student_logits: student outputs, shape [S, b, K] or a sequence of S arrays [b, K].
    teacher_logits: teacher outputs on the T global crops, shape [T, b, K] or a sequence of T arrays [b, K].
    center: running center of the teacher outputs, shape [K] or [1, K] (see `dino_center`).
    student_temperature: tau_s.
    teacher_temperature: tau_t (a traced scalar is fine, e.g. from a warm-up schedule).

  Returns:
    Losses of shape [b], dtype float32 (or wider); the caller takes the mean. Gradients flow only into
    `student_logits`.

  Raises:
    ValueError: on mismatched crop shapes, fewer than 2 student crops or fewer student than teacher
      crops, or a center that is not [K] or [1, K].

  References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
    arXiv:2104.14294; facebookresearch/dino main_dino.py `DINOLoss`.
  """
  loss = "dino"
  student, teacher, center = _dino_inputs(student_logits, teacher_logits, center)
  _check_positive(loss, "student_temperature", student_temperature)
  _check_positive(loss, "teacher_temperature", teacher_temperature)
  dtype = jnp.promote_types(_float_dtype(student), _float_dtype(teacher))
  n_s, n_t = student.shape[0], teacher.shape[0]
  q = jax.nn.softmax((teacher.astype(dtype) - center.astype(dtype)) / teacher_temperature, axis=-1)
  q = jax.lax.stop_gradient(q)  # [T, b, K]
  log_p = jax.nn.log_softmax(student.astype(dtype) / student_temperature, axis=-1)  # [S, b, K]

  # The loss is linear in the targets: sum_t sum_{s != t} q_t . log p_s = sum_s w_s . log p_s with
  # w_s = sum_t q_t - [s < T] q_s, so one product per student crop instead of one per (t, s) pair.
  q_sum = jnp.sum(q, axis=0)  # [b, K]
  total = jnp.zeros(student.shape[1], dtype)
  for s in range(n_s):
    w = q_sum - q[s] if s < n_t else q_sum
    total = total - jnp.sum(w * log_p[s], axis=-1)
  return total / (n_t * (n_s - 1))


def dino(student_logits: Sequence[jax.Array] | jax.Array, teacher_logits: Sequence[jax.Array] | jax.Array,
         center: jax.Array, *, student_temperature: float = 0.1,
         teacher_temperature: float = 0.04) -> jax.Array:
  r"""DINO self-distillation loss, the mean of `dino_per_example` over the batch; a scalar.

    L = (1/b) sum_b (1/(T (S - 1))) sum_{t, s != t} -sum_k P_t[b, k] log softmax_k(f_s[b] / tau_s),
    P_t = stop_gradient(softmax((g_t - c) / tau_t)).

  This is the official `DINOLoss.forward` without its side effect: update the center with `dino_center`.
  The loss is per-example given the center, so under `shard_map` the mean over devices of this value (or
  of `dino_per_example`) is the global loss.

  Args:
    student_logits: student outputs, shape [S, b, K] or a sequence of S arrays [b, K]; the first T are the
      global crops.
    teacher_logits: teacher outputs on the T global crops, shape [T, b, K] or a sequence of T arrays [b, K].
    center: running center of the teacher outputs, shape [K] or [1, K].
    student_temperature: tau_s.
    teacher_temperature: tau_t.

  Returns:
    The loss, a scalar of dtype float32 (or wider).

  Raises:
    ValueError: as `dino_per_example`.

  References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
    arXiv:2104.14294; facebookresearch/dino main_dino.py `DINOLoss`.
  """
  return jnp.mean(dino_per_example(student_logits, teacher_logits, center,
                                   student_temperature=student_temperature,
                                   teacher_temperature=teacher_temperature))


def dino_center(center: jax.Array, teacher_logits: Sequence[jax.Array] | jax.Array, *,
                momentum: float = 0.9, axis_name: str | None = None) -> jax.Array:
  r"""EMA update of DINO's teacher center with the mean teacher output of the global batch.

    c <- momentum * c + (1 - momentum) * (1/(T B)) sum_{t, b} g_t[b]

  over all teacher crops and all examples on all devices (psum of sums and counts).

  Args:
    center: current center, shape [K] or [1, K].
    teacher_logits: teacher outputs, shape [T, b, K], a sequence of T arrays [b, K], or [n, K] rows
      (per device when `axis_name` is set).
    momentum: EMA momentum of the center (0.9 in DINO).
    axis_name: mesh axis that shards the batch inside `shard_map`; None under plain `jit`.

  Returns:
    The new center, same shape as `center`, dtype float32 (or wider), identical on every device. It is
    differentiable like any pure function; in DINO the teacher outputs carry no gradient anyway and
    `dino` stops the gradient through the center.

  Raises:
    ValueError: if teacher_logits is not [T, b, K], [n, K] or a sequence of [b, K], or its K differs from
      the center's.

  References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
    arXiv:2104.14294; facebookresearch/dino main_dino.py `DINOLoss.update_center`.
  """
  loss = "dino_center"
  if isinstance(teacher_logits, (list, tuple)):
    teacher = _stack_views(loss, "teacher_logits", teacher_logits)
  else:
    check_ndim(loss, (2, 3), teacher_logits=teacher_logits)
    teacher = jnp.asarray(teacher_logits)
  k = teacher.shape[-1]
  if jnp.shape(center) not in ((k,), (1, k)):
    raise shape_error(loss, f"`center` must have shape [K] or [1, K] with K={k}, the last axis of "
                      "`teacher_logits`", center=center, teacher_logits=teacher)
  if isinstance(momentum, numbers.Real) and not 0 <= momentum <= 1:
    raise ValueError(f"{loss}: `momentum` must be in [0, 1]; got momentum={momentum!r}.")
  dtype = jnp.promote_types(_float_dtype(center), _float_dtype(teacher))
  rows = teacher.reshape(-1, k).astype(dtype)
  batch_center = psum(jnp.sum(rows, axis=0), axis_name) / psum(jnp.asarray(rows.shape[0], dtype), axis_name)
  new = momentum * jnp.reshape(center, (k,)).astype(dtype) + (1.0 - momentum) * batch_center
  return new.reshape(jnp.shape(center))
