"""Tests of the semi-supervised losses against naive NumPy references written from the papers."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from ssl_jax.losses import semi_supervised as S


# ----------------------------------------------------------------------------- naive references
def np_softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max())
  return e / e.sum()


def ref_masked_ce(target_logits, pred_logits, threshold):
  loss, mask = [], []
  for t, s in zip(target_logits, pred_logits):
    p = np_softmax(t)
    m = float(p.max() > threshold)
    c = int(np.argmax(t))
    log_q = np.asarray(s, np.float64) - np.max(s)
    log_q = log_q - np.log(np.sum(np.exp(log_q)))
    loss.append(-m * log_q[c])
    mask.append(m)
  return np.array(loss), np.array(mask)


def ref_consistency(a, b):
  return np.array([np.mean((np_softmax(u) - np_softmax(v)) ** 2) for u, v in zip(a, b)])


def ref_uda(weak, strong, temperature, threshold):
  loss, mask = [], []
  for w, s in zip(weak, strong):
    q = np_softmax(np.asarray(w, np.float64) / temperature)
    p = np_softmax(s)
    m = float(np_softmax(w).max() > threshold)
    kl = sum(q[c] * (np.log(q[c]) - np.log(p[c])) for c in range(len(q)) if q[c] > 0)
    loss.append(m * kl)
    mask.append(m)
  return np.array(loss), np.array(mask)


def ref_sharpen(p, temperature):
  out = []
  for row in np.asarray(p, np.float64):
    powered = [v ** (1 / temperature) for v in row]
    out.append([v / sum(powered) for v in powered])
  return np.array(out)


def _logits(seed, b=8, c=5, scale=3.0):
  return (scale * np.random.default_rng(seed).normal(size=(b, c))).astype(np.float32)


pseudo_label = jax.jit(S.pseudo_label)
fixmatch = jax.jit(S.fixmatch)
consistency_mse = jax.jit(S.consistency_mse)
uda = jax.jit(S.uda)
sharpen = jax.jit(S.sharpen)
mixmatch_loss = jax.jit(S.mixmatch_loss)


# ----------------------------------------------------------------------------- pseudo-labels
def test_pseudo_label_and_fixmatch_match_reference():
  weak, strong = _logits(0), _logits(1)
  for threshold in (0.0, 0.5, 0.8):
    loss, mask = pseudo_label(weak, threshold=threshold)
    want_loss, want_mask = ref_masked_ce(weak, weak, threshold)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, atol=1e-6)
    loss, mask = fixmatch(weak, strong, threshold=threshold)
    want_loss, want_mask = ref_masked_ce(weak, strong, threshold)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, atol=1e-6)
  assert 0 < np.sum(want_mask) < len(want_mask)  # the threshold of 0.8 keeps some, drops some


def test_hard_target_is_argmax_with_ties_infs_and_nans():
  x = np.random.default_rng(5).normal(size=(16, 7)).astype(np.float32)
  x[:4, 2] = x[:4].max(1) + 1.0
  x[:4, 5] = x[:4, 2]                   # ties: the first maximum wins
  x[4] = -np.inf                        # all -inf: index 0
  x[5, [1, 6]] = np.inf                 # two +inf: the first
  x[6, 3] = np.nan                      # a NaN: its index, as jnp.argmax
  x[7, [1, 4]] = [np.inf, np.nan]
  x[8] = np.nan
  target, mask = jax.jit(S._confident_hard_target, static_argnums=1)(jnp.asarray(x), 0.0)
  np.testing.assert_array_equal(target, np.argmax(x, axis=-1))
  np.testing.assert_array_equal(target, jnp.argmax(x, axis=-1))
  np.testing.assert_array_equal(mask[6:9], 0.0)  # a row with NaN is never confident
  # FixMatch: a NaN weak row is masked out and leaves the strong view's loss and gradient at 0.
  strong = np.random.default_rng(6).normal(size=x.shape).astype(np.float32)
  loss, grad = jax.value_and_grad(lambda s: jnp.sum(S.fixmatch(x[6:9], s, threshold=0.0)[0]))(strong[6:9])
  assert float(loss) == 0.0
  np.testing.assert_array_equal(grad, 0.0)


def test_pseudo_label_targets_get_no_gradient():
  logits = _logits(2)
  loss, mask = pseudo_label(logits, threshold=0.5)
  g = jax.grad(lambda z: jnp.sum(S.pseudo_label(z, threshold=0.5)[0]))(logits)
  onehot = jax.nn.one_hot(np.argmax(logits, -1), logits.shape[1])
  want = (jax.nn.softmax(logits) - onehot) * mask[:, None]  # CE gradient with a constant target
  np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)
  weak, strong = _logits(3), _logits(4)
  gw, gs = jax.grad(lambda w, s: jnp.sum(S.fixmatch(w, s, threshold=0.5)[0]), argnums=(0, 1))(
      weak, strong)
  np.testing.assert_array_equal(gw, 0.0)
  assert np.any(gs != 0)


# ----------------------------------------------------------------------------- consistency
def test_consistency_mse_reference_and_grads():
  a, b = _logits(5), _logits(6)
  np.testing.assert_allclose(consistency_mse(a, b), ref_consistency(a, b), rtol=1e-5, atol=1e-7)
  with jax.enable_x64(True):
    jax.test_util.check_grads(jax.jit(S.consistency_mse), (a[:3].astype(np.float64),
                                                           b[:3].astype(np.float64)),
                              order=2, modes=("rev",))
  # Mean Teacher: a stop-gradient teacher leaves the gradient only on the student.
  g_student, g_teacher = jax.grad(
      lambda s, t: jnp.sum(S.consistency_mse(s, jax.lax.stop_gradient(t))), argnums=(0, 1))(a, b)
  np.testing.assert_array_equal(g_teacher, 0.0)
  assert np.any(g_student != 0)


def test_uda_reference_grads_and_extremes():
  weak, strong = _logits(7), _logits(8)
  for temperature, threshold in ((0.4, 0.8), (1.0, 0.0), (0.01, 0.5)):
    loss, mask = uda(weak, strong, temperature=temperature, threshold=threshold)
    want_loss, want_mask = ref_uda(weak, strong, temperature, threshold)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, atol=1e-5)
  # Huge logits at a tiny temperature: finite loss and gradient (log_softmax everywhere).
  big_w, big_s = 100 * weak, 100 * strong
  loss, _ = uda(big_w, big_s, temperature=0.01, threshold=0.0)
  gw, gs = jax.grad(lambda w, s: jnp.sum(S.uda(w, s, temperature=0.01, threshold=0.0)[0]),
                    argnums=(0, 1))(big_w, big_s)
  assert np.all(np.isfinite(loss)) and np.all(np.isfinite(gs))
  np.testing.assert_array_equal(gw, 0.0)
  with jax.enable_x64(True):
    jax.test_util.check_grads(
        jax.jit(lambda s: S.uda(weak[:3].astype(np.float64), s, temperature=0.4, threshold=0.0)[0]),
        (strong[:3].astype(np.float64),), order=1, modes=("rev",))


def test_bfloat16_inputs():
  weak, strong = _logits(9), _logits(10)
  wb, sb = jnp.asarray(weak, jnp.bfloat16), jnp.asarray(strong, jnp.bfloat16)
  wf, sf = wb.astype(jnp.float32), sb.astype(jnp.float32)
  for fn in (lambda w, s: fixmatch(w, s, threshold=0.5),
             lambda w, s: uda(w, s, temperature=0.01, threshold=0.3),
             lambda w, s: (consistency_mse(w, s),),
             lambda w, s: (pseudo_label(w, threshold=0.5)[0],)):
    got, want = fn(wb, sb), fn(wf, sf)
    for g, w in zip(got, want):
      assert g.dtype == jnp.float32 and np.all(np.isfinite(g))
      np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- sharpen / mixup
def test_sharpen():
  p = np.asarray(jax.nn.softmax(_logits(11)))
  for t in (0.5, 1.0, 2.0):
    np.testing.assert_allclose(sharpen(p, temperature=t), ref_sharpen(p, t), rtol=1e-5, atol=1e-7)
  # T = 0.01 with zeros and ties: finite, normalized, one-hot up to ties.
  q = np.array([[0.2, 0.5, 0.3, 0.0], [0.5, 0.5, 0.0, 0.0]], np.float32)
  s = sharpen(q, temperature=0.01)
  assert np.all(np.isfinite(s))
  np.testing.assert_allclose(s, [[0, 1, 0, 0], [0.5, 0.5, 0, 0]], atol=1e-6)
  g = jax.grad(lambda x: jnp.sum(S.sharpen(x, temperature=0.5)[:, 0]))(jnp.asarray(q))
  assert np.all(np.isfinite(g))


def test_mixup_properties():
  # One batch shape throughout: jax.random.beta compiles once per shape, and that dominates.
  rng = np.random.default_rng(12)
  b = 2048
  x = rng.normal(size=(b, 3)).astype(np.float32)
  y = np.asarray(jax.nn.softmax(rng.normal(size=(b, 4))), np.float32)
  key = jax.random.key(0)
  xm, ym, lam = S.mixup(key, x, y, alpha=0.75)
  assert xm.shape == x.shape and ym.shape == y.shape and lam.shape == (b,)
  assert np.all(lam >= 0.5) and np.all(lam <= 1.0)
  # Every output is lam_i * own + (1 - lam_i) * partner, the same lam and partner for inputs and
  # labels, partners from a permutation (checked on rows mixed enough to identify their partner).
  lam_np = np.asarray(lam)[:, None]
  partners = _partners(xm, x, lam)
  np.testing.assert_allclose(xm, lam_np * x + (1 - lam_np) * x[partners], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ym, lam_np * y + (1 - lam_np) * y[partners], rtol=1e-5, atol=1e-5)
  identifiable = lam_np[:, 0] < 0.99
  assert np.sum(identifiable) > b // 2
  assert len(set(partners[identifiable].tolist())) == np.sum(identifiable)
  np.testing.assert_allclose(np.sum(ym, -1), 1.0, rtol=1e-5)
  # Deterministic given the key; another key gives another mix.
  np.testing.assert_array_equal(S.mixup(key, x, y, alpha=0.75)[0], xm)
  assert not np.allclose(S.mixup(jax.random.key(1), x, y, alpha=0.75)[2], lam)
  # E[max(L, 1 - L)] for L ~ Beta(a, a), against a large NumPy sample of the same rule (5 sigma).
  sample = np.random.default_rng(0).beta(0.75, 0.75, size=400000)
  np.testing.assert_allclose(np.mean(lam), np.mean(np.maximum(sample, 1 - sample)), atol=0.015)
  # Integer images mix in float32.
  xi, _, _ = S.mixup(key, (x > 0).astype(np.uint8), y, alpha=0.75)
  assert xi.dtype == jnp.float32


def _partners(xm, x, lam):
  """The partner j of each row i, from x'_i = lam_i x_i + (1 - lam_i) x_j (lam_i < 1)."""
  b = x.shape[0]
  flat, mixed = np.asarray(x).reshape(b, -1), np.asarray(xm).reshape(b, -1)
  lam = np.asarray(lam, np.float64)[:, None, None]
  cand = lam * flat[:, None] + (1 - lam) * flat[None]  # [i, j, d]
  return np.argmin(((cand - mixed[:, None]) ** 2).sum(-1), axis=1)


# ----------------------------------------------------------------------------- MixMatch
def test_mixmatch():
  rng = np.random.default_rng(13)
  bx, bu, k, c = 6, 5, 2, 4
  d = 8
  x = rng.normal(size=(bx, d)).astype(np.float32)
  labels = rng.integers(0, c, size=bx).astype(np.int32)
  views = rng.normal(size=(k, bu, d)).astype(np.float32)
  guess_logits = rng.normal(size=(k, bu, c)).astype(np.float32)
  key = jax.random.key(3)
  mb = S.mixmatch(key, x, labels, views, guess_logits=guess_logits, temperature=0.5, alpha=0.75)
  assert mb.x.shape == (bx, d) and mb.targets_x.shape == (bx, c)
  assert mb.u.shape == (k * bu, d) and mb.targets_u.shape == (k * bu, c)
  # Label guess: average of the K softmaxes, sharpened (explicit loops).
  for i in range(bu):
    avg = sum(np_softmax(guess_logits[j, i]) for j in range(k)) / k
    np.testing.assert_allclose(mb.guess[i], ref_sharpen(avg[None], 0.5)[0], rtol=1e-5, atol=1e-7)
  # Each mixed row is lam * own + (1 - lam) * partner from W = X ++ U, lam >= 1/2, inputs and
  # targets with the same lam and partner; partners are distinct where lam < 0.99 identifies them.
  all_x = np.concatenate([x, views.reshape(k * bu, d)])
  all_y = np.concatenate([np.eye(c)[labels], np.tile(np.asarray(mb.guess), (k, 1))])
  mixed_x = np.concatenate([mb.x, mb.u])
  mixed_y = np.concatenate([mb.targets_x, mb.targets_u])
  partners = []
  for i in range(len(all_x)):
    fits = []
    for j in range(len(all_x)):
      if j == i:
        lam = 1.0
      else:
        diff = all_x[i] - all_x[j]
        lam = np.dot(mixed_x[i] - all_x[j], diff) / np.dot(diff, diff)
      fits.append((np.sum((lam * all_x[i] + (1 - lam) * all_x[j] - mixed_x[i]) ** 2), j, lam))
    err, j, lam = min(fits)
    assert err < 1e-8 and lam >= 0.5 - 1e-5
    np.testing.assert_allclose(mixed_y[i], lam * all_y[i] + (1 - lam) * all_y[j], atol=1e-5)
    if lam < 0.99:
      partners.append(j)
  assert len(partners) > len(all_x) // 2 and len(set(partners)) == len(partners)
  # Soft labels give the same result as their integer ids; deterministic given the key.
  mb_soft = S.mixmatch(key, x, np.eye(c, dtype=np.float32)[labels], views,
                     guess_logits=guess_logits, temperature=0.5, alpha=0.75)
  jax.tree.map(np.testing.assert_array_equal, mb_soft, mb)


def test_mixmatch_loss():
  rng = np.random.default_rng(14)
  lx, lu = _logits(15, b=4), _logits(16, b=6)
  tx = np.asarray(jax.nn.softmax(rng.normal(size=(4, 5))), np.float32)
  tu = np.asarray(jax.nn.softmax(rng.normal(size=(6, 5))), np.float32)
  loss_x, loss_u = mixmatch_loss(lx, tx, lu, tu, lambda_u=75.0)
  want_x = [-sum(tx[i, c] * np.log(np_softmax(lx[i])[c]) for c in range(5)) for i in range(4)]
  want_u = [75.0 * np.mean((np_softmax(lu[i]) - tu[i]) ** 2) for i in range(6)]
  np.testing.assert_allclose(loss_x, want_x, rtol=1e-5)
  np.testing.assert_allclose(loss_u, want_u, rtol=1e-5)
  grads = jax.grad(lambda *a: sum(jnp.sum(t) for t in S.mixmatch_loss(*a)), argnums=(0, 1, 2, 3))(
      lx, tx, lu, tu)
  np.testing.assert_array_equal(grads[1], 0.0)
  np.testing.assert_array_equal(grads[3], 0.0)
  # One-hot targets with a -inf logit elsewhere stay finite (0 log 0 = 0).
  lx_inf = lx.copy()
  lx_inf[:, 0] = -np.inf
  onehot = np.eye(5, dtype=np.float32)[[1, 2, 3, 4]]
  assert np.all(np.isfinite(mixmatch_loss(lx_inf, onehot, lu, tu)[0]))


# ----------------------------------------------------------------------------- bad input
def test_errors():
  z = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match=r"pseudo_label: `logits` must have 2 dimensions"):
    S.pseudo_label(jnp.zeros(4))
  with pytest.raises(ValueError, match=r"fixmatch: .*same shape.*strong_logits\(5, 3\)"):
    S.fixmatch(z, jnp.zeros((5, 3)))
  with pytest.raises(ValueError, match=r"consistency_mse: `logits_a` must be a floating array"):
    S.consistency_mse(z.astype(jnp.int32), z)
  with pytest.raises(ValueError, match=r"uda: .*same shape"):
    S.uda(z, jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match=r"sharpen: `probs` must be a floating array"):
    S.sharpen(jnp.zeros(3, jnp.int32), temperature=0.5)
  with pytest.raises(ValueError, match=r"mixup: `y` must be floating soft labels.*int32"):
    S.mixup(jax.random.key(0), z, jnp.zeros((4, 2), jnp.int32), alpha=0.75)
  with pytest.raises(ValueError, match=r"mixup: .*same b.*y\(3, 2\)"):
    S.mixup(jax.random.key(0), z, jnp.zeros((3, 2)), alpha=0.75)
  views, guess = jnp.zeros((2, 5, 3)), jnp.zeros((2, 5, 4))
  with pytest.raises(ValueError, match=r"mixmatch: `y_labeled` must be integer class ids of shape"
                                       r" \(4,\).*float32 of shape \(4,\)"):
    S.mixmatch(jax.random.key(0), z, jnp.zeros(4), views, guess_logits=guess)
  with pytest.raises(ValueError, match=r"mixmatch: `x_unlabeled_views` must be \[K, bu, \.\.\.\]"):
    S.mixmatch(jax.random.key(0), z, jnp.zeros(4, jnp.int32), views, guess_logits=guess[:, :3])
  with pytest.raises(ValueError, match=r"mixmatch_loss: .*same shape.*targets_u\(6, 2\)"):
    S.mixmatch_loss(z, z, jnp.zeros((6, 3)), jnp.zeros((6, 2)))
