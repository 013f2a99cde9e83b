"""Multiple-instance learning (MIL) pooling on padded bags.

A batch of bags of different sizes is stored padded: instance values of shape
`[bags, max_instances, ...]` and a boolean `mask` of shape `[bags, max_instances]`, True for a real
instance and False for padding. Every operator here selects the real instances with `jnp.where` on
its inputs (never by multiplying with the mask), so padded slots get exactly zero weight and exactly
zero gradient, and NaN or inf garbage in them changes neither values nor gradients: a bag padded to
any length gives the same result as the same bag unpadded.

A bag with no real instance pools to 0 (and gets all-zero attention weights); no NaN is produced.

Computation is done in float32 at least; pooled values are returned in the dtype of the instance
values (float32 for integer inputs), so the operators drop into bfloat16 models.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.losses._utils import shape_error


def _compute_dtype(x: jax.Array):
  return jnp.promote_types(x.dtype, jnp.float32)


def _out_dtype(x: jax.Array):
  return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32


def _check_bags(fn: str, values_name: str, values: jax.Array, mask: jax.Array) -> jax.Array:
  """Validate `values` [bags, n, ...] against `mask` [bags, n]; return the mask as bool."""
  if jnp.ndim(values) < 2:
    raise shape_error(fn, f"`{values_name}` must have shape [bags, max_instances, ...] (at least 2 "
                      "dimensions)", **{values_name: values, "mask": mask})
  if jnp.ndim(mask) != 2 or tuple(jnp.shape(mask)) != tuple(jnp.shape(values)[:2]):
    raise shape_error(fn, f"`mask` must have shape [bags, max_instances] equal to the first two "
                      f"dimensions of `{values_name}`", **{values_name: values, "mask": mask})
  return jnp.asarray(mask).astype(bool)


def _expand(a: jax.Array, ndim: int) -> jax.Array:
  """Append unit dimensions to `a` ([bags] or [bags, n]) so it broadcasts against rank `ndim`."""
  return a.reshape(a.shape + (1,) * (ndim - a.ndim))


def mil_max(instance_values: jax.Array, mask: jax.Array) -> jax.Array:
  """Max pooling over the real instances of each bag (the standard MIL assumption).

    y_b = max_{i: mask[b, i]} x_{b, i}      (elementwise over trailing feature dimensions)

  The gradient flows to the maximising real instance(s) only (split evenly on ties, as `jnp.max`).

  Args:
    instance_values: instance scores [bags, n] or features [bags, n, ...]; padded slots may hold
      anything, including NaN or inf.
    mask: boolean [bags, n], True for a real instance.
  Returns:
    Pooled values of shape [bags, ...] (instance_values.shape without axis 1); 0 for an empty bag.
  References: Dietterich et al. 1997, "Solving the multiple instance problem with axis-parallel
    rectangles"; Ilse et al. 2018, arXiv:1802.04712.
  """
  x = jnp.asarray(instance_values)
  m = _check_bags("mil_max", "instance_values", x, mask)
  dt = _compute_dtype(x)
  me = _expand(m, x.ndim)
  xf = jnp.where(me, x.astype(dt), jnp.finfo(dt).min)
  pooled = jnp.max(xf, axis=1)
  nonempty = _expand(jnp.any(m, axis=1), pooled.ndim)
  return jnp.where(nonempty, pooled, 0).astype(_out_dtype(x))


def mil_mean(instance_values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean pooling over the real instances of each bag.

    y_b = (1 / n_b) sum_{i: mask[b, i]} x_{b, i},   n_b = number of real instances of bag b.

  Args:
    instance_values: instance scores [bags, n] or features [bags, n, ...]; padded slots may hold
      anything, including NaN or inf.
    mask: boolean [bags, n], True for a real instance.
  Returns:
    Pooled values of shape [bags, ...]; 0 for an empty bag.
  References: Ilse et al. 2018, arXiv:1802.04712 (mean as one of the permutation-invariant poolings).
  """
  x = jnp.asarray(instance_values)
  m = _check_bags("mil_mean", "instance_values", x, mask)
  dt = _compute_dtype(x)
  me = _expand(m, x.ndim)
  total = jnp.sum(jnp.where(me, x.astype(dt), 0), axis=1)
  count = jnp.sum(m, axis=1).astype(dt)
  count = _expand(jnp.maximum(count, 1), total.ndim)
  return (total / count).astype(_out_dtype(x))


def mil_logsumexp(instance_values: jax.Array, mask: jax.Array, *, r: float = 1.0) -> jax.Array:
  """Log-sum-exp (LSE) pooling over the real instances of each bag, a smooth max.

    y_b = (1/r) log( (1/n_b) sum_{i: mask[b, i]} exp(r x_{b, i}) )

  computed with the max subtracted, so it is finite for any finite inputs. It lies between the mean
  (r -> 0) and the max (r -> inf) of the bag and its gradient is the softmax of r x over the real
  instances.

  Args:
    instance_values: instance scores [bags, n] or features [bags, n, ...]; padded slots may hold
      anything, including NaN or inf.
    mask: boolean [bags, n], True for a real instance.
    r: sharpness, > 0.
  Returns:
    Pooled values of shape [bags, ...]; 0 for an empty bag.
  References: Ramon & De Raedt 2000, "Multi instance neural networks"; Ilse et al. 2018,
    arXiv:1802.04712.
  """
  x = jnp.asarray(instance_values)
  m = _check_bags("mil_logsumexp", "instance_values", x, mask)
  if isinstance(r, (int, float)) and not r > 0:
    raise ValueError(f"mil_logsumexp: `r` must be > 0; got r={r}.")
  dt = _compute_dtype(x)
  me = _expand(m, x.ndim)
  # Zero the padding before scaling, so that not even a gradient w.r.t. `r` sees it.
  z = jnp.where(me, r * jnp.where(me, x.astype(dt), 0), jnp.finfo(dt).min)
  zmax = jax.lax.stop_gradient(jnp.max(z, axis=1, keepdims=True))
  e = jnp.where(me, jnp.exp(z - zmax), 0)
  s = jnp.sum(e, axis=1)
  count = jnp.sum(m, axis=1).astype(dt)
  nonempty = _expand(count > 0, s.ndim)
  count = _expand(jnp.maximum(count, 1), s.ndim)
  # s >= 1 for a non-empty bag (the max contributes exp(0)); guard log(0) so no inf*0 in the gradient.
  s = jnp.where(nonempty, s, 1)
  lse = (jnp.log(s) + jnp.squeeze(zmax, 1) - jnp.log(count)) / r
  return jnp.where(nonempty, lse, 0).astype(_out_dtype(x))


def attention_pool(features: jax.Array, scores: jax.Array,
                   mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Attention-based MIL pooling: a softmax over the real instances of each bag weights the features.

    a_{b, i} = exp(s_{b, i}) / sum_{j: mask[b, j]} exp(s_{b, j})   for real i,   a_{b, i} = 0 else
    z_b = sum_i a_{b, i} h_{b, i}

  Padded slots of `scores` and `features` are replaced (with `jnp.where`) before use, so their
  weights are exactly 0 and their gradients exactly 0 whatever they hold.

  Args:
    features: instance embeddings h, [bags, n, d] (or [bags, n, ...]; [bags, n] pools scalars).
    scores: attention logits s, [bags, n] or [bags, n, 1], e.g. from `ssl_jax.models.mil.GatedAttention`.
    mask: boolean [bags, n], True for a real instance.
  Returns:
    (pooled, weights): pooled of shape [bags, d] (features.shape without axis 1) in the features'
    dtype, and weights of shape [bags, n] (rows sum to 1 over real instances) in the scores' dtype
    (float32 for integer scores). An empty bag gets all-zero weights and a zero pooled vector.
  References: Ilse, Tomczak & Welling 2018, "Attention-based Deep Multiple Instance Learning",
    arXiv:1802.04712.
  """
  h = jnp.asarray(features)
  s = jnp.asarray(scores)
  m = _check_bags("attention_pool", "features", h, mask)
  if s.ndim == 3 and s.shape[-1] == 1:
    s = s[..., 0]
  if tuple(s.shape) != tuple(m.shape):
    raise shape_error("attention_pool", "`scores` must have shape [bags, n] or [bags, n, 1] matching "
                      "`mask` and the first two dimensions of `features`", features=h, scores=scores,
                      mask=mask)
  sdt = _compute_dtype(s)
  sm = jnp.where(m, s.astype(sdt), jnp.finfo(sdt).min)
  smax = jax.lax.stop_gradient(jnp.max(sm, axis=1, keepdims=True))
  e = jnp.where(m, jnp.exp(sm - smax), 0)
  denom = jnp.sum(e, axis=1, keepdims=True)
  weights = e / jnp.where(denom > 0, denom, 1)  # denom >= 1 for a non-empty bag
  hdt = jnp.promote_types(_compute_dtype(h), sdt)
  me = _expand(m, h.ndim)
  hz = jnp.where(me, h.astype(hdt), 0)
  pooled = jnp.sum(_expand(weights, h.ndim).astype(hdt) * hz, axis=1)
  return pooled.astype(_out_dtype(h)), weights.astype(_out_dtype(s))


def clam_instance_loss(scores: jax.Array, instance_logits: jax.Array, mask: jax.Array, *,
                       top_k: int = 1) -> jax.Array:
  """CLAM's instance-level clustering loss: the most attended instances are positives, the least negatives.

  In bag b, let T_b be the `top_k` real instances of highest score s_{b, i} and B_b the `top_k` of lowest
  score; with two logits per instance (from the instance classifier of the bag's class),

    l_b = -1 / (|T_b| + |B_b|) ( sum_{i in T_b} log softmax(z_{b, i})_1 + sum_{i in B_b} log softmax(z_{b, i})_0 )

  The ranking is not differentiated (only indices are taken); the gradient reaches the instance logits
  of the selected instances only. Padded slots are never selected while the bag has enough real
  instances; a bag with fewer than `top_k` real instances uses the ones it has (a bag with fewer than
  2 `top_k` has instances in both sets), and an empty bag has loss 0.

  Args:
    scores: attention scores s (before or after the softmax: the ranking is the same), [bags, n].
    instance_logits: z, [bags, n, 2] (class 0: not like the bag's key instances, class 1: like them).
    mask: boolean [bags, n], True for a real instance.
    top_k: instances taken at each end of the ranking (CLAM's `k_sample`).
  Returns:
    Losses of shape [bags]; the caller takes the mean.
  References: Lu et al. 2021, "Data-efficient and weakly supervised computational pathology on
    whole-slide images", Nature Biomedical Engineering 5:555, arXiv:2004.09666 (CLAM's `inst_eval`).
  """
  s = jnp.asarray(scores)
  z = jnp.asarray(instance_logits)
  m = _check_bags("clam_instance_loss", "scores", s, mask)
  if s.ndim != 2 or z.shape != (*s.shape, 2):
    raise shape_error("clam_instance_loss", "`scores` must be [bags, n] and `instance_logits` [bags, n, 2]",
                      scores=s, instance_logits=z, mask=mask)
  if not 1 <= top_k <= s.shape[1]:
    raise ValueError(f"clam_instance_loss: `top_k` must be in [1, n={s.shape[1]}]; got top_k={top_k}.")
  sf = jax.lax.stop_gradient(s.astype(_compute_dtype(s)))
  low = jnp.finfo(sf.dtype).min
  _, top = jax.lax.top_k(jnp.where(m, sf, low), top_k)
  _, bottom = jax.lax.top_k(jnp.where(m, -sf, low), top_k)
  logp = jax.nn.log_softmax(jnp.where(m[..., None], z.astype(jnp.float32), 0), axis=-1)
  take = lambda idx, cls: (jnp.take_along_axis(logp[..., cls], idx, axis=1),
                           jnp.take_along_axis(m, idx, axis=1))
  (lp_top, ok_top), (lp_bot, ok_bot) = take(top, 1), take(bottom, 0)
  total = jnp.sum(jnp.where(ok_top, lp_top, 0), 1) + jnp.sum(jnp.where(ok_bot, lp_bot, 0), 1)
  count = jnp.sum(ok_top, 1) + jnp.sum(ok_bot, 1)
  return -total / jnp.maximum(count, 1)
