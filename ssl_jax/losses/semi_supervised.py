"""Semi-supervised losses on unlabeled data: pseudo-labels, FixMatch, Pi-model/Mean Teacher, UDA,
MixMatch (with its `sharpen` and `mixup`).

Pure functions with keyword-only hyperparameters; every loss is per example and the
confidence-masked ones also return their float mask, so the caller chooses the reduction (FixMatch
and UDA divide by the unlabeled batch size, i.e. `jnp.mean(loss)`, not by `sum(mask)`). Targets
built from the model's own predictions are wrapped in `stop_gradient` here. Logits are upcast to
float32 at least, and all log-probabilities come from `log_softmax`, so the losses stay finite for
temperatures like 0.01 and for bfloat16 inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssl_jax.losses import _utils as U


def _float(x: jax.Array) -> jax.Array:
  """`x` as a floating array of at least float32 precision."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_logits(loss: str, **arrays) -> None:
  """Raise unless every array is floating, of shape [b, C]."""
  U.check_ndim(loss, 2, **arrays)
  for name, x in arrays.items():
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
      raise ValueError(f"{loss}: `{name}` must be a floating array of shape [b, C], not "
                       f"{jnp.result_type(x)} of shape {tuple(jnp.shape(x))}; pass logits or "
                       f"probabilities in float, not integer class ids.")


def _argmax_last(x: jax.Array, x_max: jax.Array) -> jax.Array:
  """`jnp.argmax(x, axis=-1)` given `x_max = jnp.max(x, axis=-1)`, as a min-reduction.

  On XLA:CPU `jnp.argmax` is a slow variadic (value, index) reduce (about 2 ms for [448, 1000]); the
  smallest column index where x equals its row max is the same index (first maximum on ties) in a
  fraction of that. A row containing NaN gives the index of its first NaN, as `jnp.argmax` does (its max
  is NaN, which equals nothing, so NaN entries are matched explicitly).
  """
  cols = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
  hit = (x == x_max[..., None]) | jnp.isnan(x)
  return jnp.min(jnp.where(hit, cols, x.shape[-1]), axis=-1)


def _confident_hard_target(logits: jax.Array, threshold: float) -> tuple[jax.Array, jax.Array]:
  """(argmax class, float mask max-prob > threshold) of `logits`, without gradient.

  A row with a NaN logit gets mask 0 (its max-prob is NaN, and NaN > threshold is False) and the index
  of its first NaN as target, as `jnp.argmax` gives.
  """
  logits = jax.lax.stop_gradient(_float(logits))
  row_max = jnp.max(logits, axis=-1)
  max_prob = jnp.exp(row_max - jax.nn.logsumexp(logits, axis=-1))
  return _argmax_last(logits, row_max), (max_prob > threshold).astype(logits.dtype)


def _hard_cross_entropy(logits: jax.Array, target: jax.Array) -> jax.Array:
  """-log softmax(logits)[target] = logsumexp(logits) - logits[target] per row.

  The target logit is picked with a one-hot `where` and a sum rather than `take_along_axis`, whose
  gradient is a scatter (slow on XLA:CPU); here the gradient is elementwise.
  """
  logits = _float(logits)
  cols = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
  picked = jnp.sum(jnp.where(cols == target[:, None], logits, 0.0), axis=-1)
  return jax.nn.logsumexp(logits, axis=-1) - picked


def _soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """-sum_c targets_c log softmax(logits)_c per row, with 0 * log 0 = 0."""
  log_probs = jax.nn.log_softmax(_float(logits), axis=-1)
  return -jnp.sum(jnp.where(targets > 0, targets * log_probs, 0.0), axis=-1)


def pseudo_label(logits: jax.Array, *, threshold: float = 0.95) -> tuple[jax.Array, jax.Array]:
  """Pseudo-label loss: cross-entropy against the model's own confident argmax; one per example.

    y^_i = argmax_c p_ic (no gradient),  m_i = [max_c p_ic > threshold],
    L_i = -m_i log softmax(logits_i)[y^_i],  p_i = softmax(logits_i).
  Lee's original pseudo-label is `threshold=0` (every example kept); the confidence threshold is the
  modern convention (USB, FixMatch).

  Args:
    logits: model outputs on unlabeled examples, shape [b, C], floating.
    threshold: confidence above which an example's pseudo-label is used.
  Returns:
    (loss, mask): masked losses of shape [b] and the float mask of shape [b]; the caller takes
    `jnp.mean(loss)` (and may log `jnp.mean(mask)` as the fraction of pseudo-labeled examples).
    A row of `logits` containing NaN gets mask 0, but its loss is NaN (the NaN is not hidden).
  References: Lee 2013, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method
    for Deep Neural Networks", ICML WREPL.
  """
  _check_logits("pseudo_label", logits=logits)
  target, mask = _confident_hard_target(logits, threshold)
  return _hard_cross_entropy(logits, target) * mask, mask


def fixmatch(weak_logits: jax.Array, strong_logits: jax.Array, *,
             threshold: float = 0.95) -> tuple[jax.Array, jax.Array]:
  """FixMatch unlabeled loss: the weak view's confident argmax is the strong view's hard target.

    y^_i = argmax_c softmax(weak_i)_c (no gradient),  m_i = [max_c softmax(weak_i)_c > threshold],
    L_i = -m_i log softmax(strong_i)[y^_i].

  Args:
    weak_logits: logits of the weakly augmented views, shape [b, C], floating (no gradient flows).
    strong_logits: logits of the strongly augmented views, shape [b, C], floating.
    threshold: confidence above which the pseudo-label is used (tau in the paper).
  Returns:
    (loss, mask): masked losses of shape [b] and the float mask of shape [b]. FixMatch's unlabeled
    term is `lambda_u * jnp.mean(loss)` (divided by the whole unlabeled batch, not by sum(mask)).
    A row of `weak_logits` containing NaN gets mask 0, and (for finite strong logits) loss 0 and no
    gradient.
  References: Sohn et al. 2020, arXiv:2001.07685.
  """
  name = "fixmatch"
  _check_logits(name, weak_logits=weak_logits, strong_logits=strong_logits)
  U.check_same_shape(name, weak_logits=weak_logits, strong_logits=strong_logits)
  target, mask = _confident_hard_target(weak_logits, threshold)
  return _hard_cross_entropy(strong_logits, target) * mask, mask


def consistency_mse(logits_a: jax.Array, logits_b: jax.Array) -> jax.Array:
  """Pi-model / Mean Teacher consistency: mean squared difference of softmax outputs; per example.

    L_i = 1/C sum_c (softmax(a_i)_c - softmax(b_i)_c)^2.
  We take the mean over the C classes, like Laine & Aila's and Tarvainen & Valpola's code (sum / C);
  multiply by C for the sum convention. The gradient flows into both arguments: the Pi-model passes
  two stochastic views of the student; Mean Teacher passes `jax.lax.stop_gradient(teacher_logits)`
  (the EMA teacher gets no gradient) as `logits_b`.

  Args:
    logits_a, logits_b: logits of two predictions of the same examples, shape [b, C], floating.
  Returns:
    Losses of shape [b]; the caller takes the mean and applies its ramp-up weight.
  References: Laine & Aila 2017, arXiv:1610.02242; Tarvainen & Valpola 2017, arXiv:1703.01780.
  """
  name = "consistency_mse"
  _check_logits(name, logits_a=logits_a, logits_b=logits_b)
  U.check_same_shape(name, logits_a=logits_a, logits_b=logits_b)
  pa = jax.nn.softmax(_float(logits_a), axis=-1)
  pb = jax.nn.softmax(_float(logits_b), axis=-1)
  return jnp.mean(jnp.square(pa - pb), axis=-1)


def uda(weak_logits: jax.Array, strong_logits: jax.Array, *, temperature: float = 0.4,
        threshold: float = 0.8) -> tuple[jax.Array, jax.Array]:
  """UDA consistency: KL from the sharpened weak prediction to the strong one; per example.

    q_i = softmax(weak_i / temperature) (no gradient),  m_i = [max_c softmax(weak_i)_c > threshold],
    L_i = m_i KL(q_i || softmax(strong_i)) = m_i sum_c q_ic (log q_ic - log softmax(strong_i)_c).
  The confidence mask uses the *unsharpened* weak prediction, as the UDA code does.

  Args:
    weak_logits: logits of the original / weakly augmented examples, shape [b, C] (no gradient
      flows).
    strong_logits: logits of the strongly (RandAugment) augmented examples, shape [b, C].
    temperature: softmax temperature of the target (< 1 sharpens).
    threshold: confidence above which an example contributes.
  Returns:
    (loss, mask): masked losses of shape [b] and the float mask of shape [b]; UDA's unlabeled term
    is `lambda_u * jnp.mean(loss)`.
  References: Xie et al. 2019, arXiv:1904.12848.
  """
  name = "uda"
  _check_logits(name, weak_logits=weak_logits, strong_logits=strong_logits)
  U.check_same_shape(name, weak_logits=weak_logits, strong_logits=strong_logits)
  weak = jax.lax.stop_gradient(_float(weak_logits))
  log_q = jax.nn.log_softmax(weak / temperature, axis=-1)
  q = jnp.exp(log_q)
  mask = (jnp.exp(jnp.max(jax.nn.log_softmax(weak, axis=-1), axis=-1)) > threshold)
  mask = mask.astype(weak.dtype)
  log_p = jax.nn.log_softmax(_float(strong_logits), axis=-1)
  kl = jnp.sum(jnp.where(q > 0, q * (log_q - log_p), 0.0), axis=-1)
  return kl * mask, mask


def sharpen(probs: jax.Array, *, temperature: float) -> jax.Array:
  """Temperature sharpening of a distribution, computed in log space: p^(1/T) / sum_c p_c^(1/T).

  Args:
    probs: probabilities, shape [..., C] (last axis sums to 1; zeros allowed), floating.
    temperature: T > 0; T < 1 sharpens, T -> 0 approaches one-hot.
  Returns:
    Sharpened probabilities, same shape (float32 at least).
  References: Berthelot et al. 2019, arXiv:1905.02249 (Eq. 7).
  """
  if not jnp.issubdtype(jnp.result_type(probs), jnp.floating) or jnp.ndim(probs) < 1:
    raise ValueError(f"sharpen: `probs` must be a floating array of shape [..., C], got "
                     f"{jnp.result_type(probs)} of shape {tuple(jnp.shape(probs))}.")
  p = _float(probs)
  log_p = jnp.log(jnp.maximum(p, jnp.finfo(p.dtype).tiny))
  return jax.nn.softmax(log_p / temperature, axis=-1)


def _mix(lam: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
  """lam * a + (1 - lam) * b with a per-example lam of shape [n], in a's floating dtype."""
  dtype = a.dtype if jnp.issubdtype(a.dtype, jnp.floating) else jnp.float32
  lam = lam.astype(dtype).reshape((-1,) + (1,) * (a.ndim - 1))
  return lam * a.astype(dtype) + (1 - lam) * b.astype(dtype)


def _mixmatch_lambda(key: jax.Array, n: int, alpha: float) -> jax.Array:
  """lam' = max(lam, 1 - lam), lam ~ Beta(alpha, alpha), one per example (shape [n], float32)."""
  lam = jax.random.beta(key, alpha, alpha, (n,), dtype=jnp.float32)
  return jnp.maximum(lam, 1.0 - lam)


def mixup(key: jax.Array, x: jax.Array, y: jax.Array, *,
          alpha: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """MixMatch's MixUp: mix each example with a random partner, keeping it the dominant one.

    lam_i ~ Beta(alpha, alpha),  lam'_i = max(lam_i, 1 - lam_i) >= 1/2,  j = perm(i),
    x'_i = lam'_i x_i + (1 - lam'_i) x_j,  y'_i = lam'_i y_i + (1 - lam'_i) y_j.
  One lambda per example (shape [b]), as in MixMatch's reference implementations; the partner comes
  from a random permutation of the batch. Deterministic given `key`.

  Args:
    key: PRNG key.
    x: inputs, shape [b, ...]; floating inputs keep their dtype, integer ones (uint8 images) mix
      in float32.
    y: soft labels, shape [b, K], floating.
    alpha: Beta concentration (> 0); MixMatch uses 0.75.
  Returns:
    (x_mixed [b, ...], y_mixed [b, K], lam [b] float32).
  References: Zhang et al. 2018, arXiv:1710.09412; Berthelot et al. 2019, arXiv:1905.02249.
  """
  name = "mixup"
  if jnp.ndim(x) < 1 or jnp.ndim(y) != 2 or jnp.shape(x)[0] != jnp.shape(y)[0]:
    raise U.shape_error(name, "`x` must be [b, ...] and `y` [b, K] soft labels with the same b",
                        x=x, y=y)
  if not jnp.issubdtype(jnp.result_type(y), jnp.floating):
    raise ValueError(f"{name}: `y` must be floating soft labels of shape [b, K], not "
                     f"{jnp.result_type(y)} of shape {tuple(jnp.shape(y))}; one-hot integer labels "
                     f"first with `jax.nn.one_hot(labels, K)`.")
  x, y = jnp.asarray(x), jnp.asarray(y)
  key_lam, key_perm = jax.random.split(key)
  b = x.shape[0]
  lam = _mixmatch_lambda(key_lam, b, alpha)
  perm = jax.random.permutation(key_perm, b)
  return _mix(lam, x, x[perm]), _mix(lam, y, y[perm]), lam


class MixMatchBatch(NamedTuple):
  """What `mixmatch` returns: mixed inputs and targets for the labeled and unlabeled terms.

  Attributes:
    x: mixed labeled inputs, shape [bx, ...].
    targets_x: their soft targets, shape [bx, C].
    u: mixed unlabeled inputs, shape [K * bu, ...], view-major (row k * bu + i is view k of
      unlabeled example i before mixing).
    targets_u: their soft targets, shape [K * bu, C].
    guess: the sharpened guessed label of each unlabeled example, shape [bu, C] (for logging).
  """
  x: jax.Array
  targets_x: jax.Array
  u: jax.Array
  targets_u: jax.Array
  guess: jax.Array


def mixmatch(key: jax.Array, x_labeled: jax.Array, y_labeled: jax.Array,
             x_unlabeled_views: jax.Array, *, guess_logits: jax.Array, temperature: float = 0.5,
             alpha: float = 0.75) -> MixMatchBatch:
  """MixMatch's label guessing, sharpening and MixUp, as a pure function of a batch.

    q_i = Sharpen(1/K sum_k softmax(guess_logits[k, i]), T)   (no gradient),
    X = (x_labeled, y_labeled),  U = (x_unlabeled_views[k, i], q_i) for all k, i,
    W = Shuffle(X ++ U),  X' = MixUp(X, W[:bx]),  U' = MixUp(U, W[bx:]),
  where MixUp uses a per-example lam' = max(lam, 1 - lam), lam ~ Beta(alpha, alpha).

  The model call stays outside: a method first runs the model on the K unlabeled views to get
  `guess_logits`, then calls this, then runs the model on the mixed inputs and applies
  `mixmatch_loss`:

    logits_g = model(params, x_unlabeled_views.reshape(K * bu, ...)).reshape(K, bu, C)
    mb = mixmatch(key, x, labels, x_unlabeled_views, guess_logits=logits_g)
    logits = model(params, jnp.concatenate([mb.x, mb.u]))   # one call keeps BatchNorm consistent
    loss_x, loss_u = mixmatch_loss(logits[:bx], mb.targets_x, logits[bx:], mb.targets_u,
                                   lambda_u=75.0 * rampup(step))
    loss = jnp.mean(loss_x) + jnp.mean(loss_u)

  Args:
    key: PRNG key (for the shuffle and the MixUp coefficients).
    x_labeled: labeled inputs, shape [bx, ...].
    y_labeled: integer class ids of shape [bx], or soft / one-hot labels of shape [bx, C].
    x_unlabeled_views: K augmentations of each unlabeled input, shape [K, bu, ...] (same trailing
      shape as `x_labeled`).
    guess_logits: model logits on those views, shape [K, bu, C] (treated as constants).
    temperature: sharpening temperature T of the guessed labels.
    alpha: Beta concentration of MixUp.
  Returns:
    A `MixMatchBatch(x, targets_x, u, targets_u, guess)`; see its fields for the shapes.
  References: Berthelot et al. 2019, arXiv:1905.02249 (Algorithm 1).
  """
  name = "mixmatch"
  x_labeled, x_unlabeled_views = jnp.asarray(x_labeled), jnp.asarray(x_unlabeled_views)
  if (jnp.ndim(guess_logits) != 3 or x_unlabeled_views.ndim < 2
      or x_unlabeled_views.shape[:2] != jnp.shape(guess_logits)[:2]
      or x_unlabeled_views.shape[2:] != x_labeled.shape[1:]):
    raise U.shape_error(name, "`x_unlabeled_views` must be [K, bu, ...] with the trailing shape of "
                        "`x_labeled` [bx, ...], and `guess_logits` [K, bu, C]",
                        x_labeled=x_labeled, x_unlabeled_views=x_unlabeled_views,
                        guess_logits=guess_logits)
  if not jnp.issubdtype(jnp.result_type(guess_logits), jnp.floating):
    raise ValueError(f"{name}: `guess_logits` must be floating logits, not "
                     f"{jnp.result_type(guess_logits)}.")
  k, bu, num_classes = jnp.shape(guess_logits)
  bx = x_labeled.shape[0]
  y_dtype = jnp.result_type(y_labeled)
  if jnp.issubdtype(y_dtype, jnp.integer) and jnp.shape(y_labeled) == (bx,):
    y = jax.nn.one_hot(y_labeled, num_classes, dtype=jnp.float32)
  elif jnp.issubdtype(y_dtype, jnp.floating) and jnp.shape(y_labeled) == (bx, num_classes):
    y = _float(y_labeled)
  else:
    raise ValueError(f"{name}: `y_labeled` must be integer class ids of shape ({bx},) or floating "
                     f"soft labels of shape ({bx}, {num_classes}); got {y_dtype} of shape "
                     f"{tuple(jnp.shape(y_labeled))}.")

  probs = jax.nn.softmax(jax.lax.stop_gradient(_float(guess_logits)), axis=-1)
  guess = sharpen(jnp.mean(probs, axis=0), temperature=temperature)
  u = x_unlabeled_views.reshape((k * bu,) + x_unlabeled_views.shape[2:])
  targets_u = jnp.tile(guess, (k, 1)).astype(y.dtype)

  dtype = jnp.result_type(x_labeled, u)
  all_x = jnp.concatenate([x_labeled.astype(dtype), u.astype(dtype)])
  all_y = jnp.concatenate([y, targets_u])
  key_lam, key_perm = jax.random.split(key)
  n = bx + k * bu
  lam = _mixmatch_lambda(key_lam, n, alpha)
  perm = jax.random.permutation(key_perm, n)
  mixed_x = _mix(lam, all_x, all_x[perm])
  mixed_y = _mix(lam, all_y, all_y[perm])
  return MixMatchBatch(x=mixed_x[:bx], targets_x=mixed_y[:bx], u=mixed_x[bx:],
                       targets_u=mixed_y[bx:], guess=guess)


def mixmatch_loss(logits_x: jax.Array, targets_x: jax.Array, logits_u: jax.Array,
                  targets_u: jax.Array, *, lambda_u: float = 75.0) -> tuple[jax.Array, jax.Array]:
  """MixMatch's two loss terms on the mixed batch; per example.

    L_x,i = -sum_c t_ic log softmax(logits_x,i)_c,
    L_u,j = lambda_u * 1/C sum_c (softmax(logits_u,j)_c - t_jc)^2.
  Targets are constants (`stop_gradient`). The total is `mean(L_x) + mean(L_u)`; MixMatch ramps
  `lambda_u` linearly from 0 over the first 16k steps (pass the ramped value; it may be traced).

  Args:
    logits_x: logits of the mixed labeled inputs, shape [bx, C].
    targets_x: their soft targets, shape [bx, C] (`MixMatchBatch.targets_x`).
    logits_u: logits of the mixed unlabeled inputs, shape [bu', C].
    targets_u: their soft targets, shape [bu', C] (`MixMatchBatch.targets_u`).
    lambda_u: weight of the unlabeled term.
  Returns:
    (loss_x [bx], loss_u [bu']).
  References: Berthelot et al. 2019, arXiv:1905.02249 (Eqs. 3-5).
  """
  name = "mixmatch_loss"
  _check_logits(name, logits_x=logits_x, targets_x=targets_x, logits_u=logits_u,
                targets_u=targets_u)
  U.check_same_shape(name, logits_x=logits_x, targets_x=targets_x)
  U.check_same_shape(name, logits_u=logits_u, targets_u=targets_u)
  tx = jax.lax.stop_gradient(_float(targets_x))
  tu = jax.lax.stop_gradient(_float(targets_u))
  loss_x = _soft_cross_entropy(logits_x, tx)
  loss_u = lambda_u * jnp.mean(jnp.square(jax.nn.softmax(_float(logits_u), axis=-1) - tu), axis=-1)
  return loss_x, loss_u
