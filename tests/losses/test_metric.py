"""Tests of the metric-learning losses against naive loop references, optax, and under shard_map."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from ssl_jax.losses import metric as M


# ----------------------------------------------------------------------------- naive references
def _dist(u, v, squared=False):
  d2 = float(np.sum((np.asarray(u, np.float64) - np.asarray(v, np.float64)) ** 2))
  return d2 if squared else np.sqrt(d2)


def ref_contrastive(x1, x2, y, margin):
  out = []
  for i in range(len(x1)):
    d = _dist(x1[i], x2[i])
    out.append((1 - y[i]) * 0.5 * d ** 2 + y[i] * 0.5 * max(0.0, margin - d) ** 2)
  return np.array(out)


def ref_triplet(a, p, n, margin, deg, eps):
  out = []
  for i in range(len(a)):
    dp = (np.sum(np.abs(a[i] - p[i]) ** deg) + eps) ** (1 / deg)
    dn = (np.sum(np.abs(a[i] - n[i]) ** deg) + eps) ** (1 / deg)
    out.append(max(0.0, margin + dp - dn))
  return np.array(out)


def ref_batch_hard(x, labels, margin, squared):
  """Explicit loops over anchors, positives and negatives (Hermans et al. 2017)."""
  losses, valid = [], []
  for a in range(len(x)):
    d_pos = [_dist(x[a], x[p], squared) for p in range(len(x)) if p != a and labels[p] == labels[a]]
    d_neg = [_dist(x[a], x[n], squared) for n in range(len(x)) if labels[n] != labels[a]]
    ok = bool(d_pos) and bool(d_neg)
    valid.append(ok)
    losses.append(max(0.0, margin + max(d_pos) - min(d_neg)) if ok else 0.0)
  return np.array(losses), np.array(valid)


def ref_semi_hard(x, labels, margin, squared):
  """Explicit loops: semi-hard negative per (anchor, positive), farthest negative as fallback."""
  losses, valid = [], []
  for a in range(len(x)):
    pos = [p for p in range(len(x)) if p != a and labels[p] == labels[a]]
    neg = [n for n in range(len(x)) if labels[n] != labels[a]]
    if not pos or not neg:
      losses.append(0.0)
      valid.append(False)
      continue
    pair = []
    for p in pos:
      d_ap = _dist(x[a], x[p], squared)
      farther = [_dist(x[a], x[n], squared) for n in neg if _dist(x[a], x[n], squared) > d_ap]
      d_an = min(farther) if farther else max(_dist(x[a], x[n], squared) for n in neg)
      pair.append(max(0.0, margin + d_ap - d_an))
    losses.append(np.mean(pair))
    valid.append(True)
  return np.array(losses), np.array(valid)


def tfa_semihard_scalar(x, labels, margin):
  """NumPy transliteration of TF-Addons `triplet_semihard_loss` (tiled masked min/max), default
  distance_metric="L_2", which uses squared pairwise distances."""
  x = np.asarray(x, np.float64)
  b = len(x)
  pdist = np.maximum(np.sum(x ** 2, 1)[:, None] + np.sum(x ** 2, 1)[None] - 2 * x @ x.T, 0.0)
  pdist *= 1 - np.eye(b)
  adjacency = labels[:, None] == labels[None, :]
  adjacency_not = ~adjacency
  tile = np.tile(pdist, (b, 1))
  mask = np.tile(adjacency_not, (b, 1)) & (tile > pdist.T.reshape(-1, 1))
  mask_final = (mask.sum(1, keepdims=True) > 0).reshape(b, b).T
  axis_max = tile.max(1, keepdims=True)
  neg_outside = ((tile - axis_max) * mask).min(1, keepdims=True) + axis_max
  neg_outside = neg_outside.reshape(b, b).T
  axis_min = pdist.min(1, keepdims=True)
  neg_inside = ((pdist - axis_min) * adjacency_not).max(1, keepdims=True) + axis_min
  neg_inside = np.tile(neg_inside, (1, b))
  semi = np.where(mask_final, neg_outside, neg_inside)
  loss_mat = margin + pdist - semi
  mask_pos = adjacency.astype(np.float64) - np.eye(b)
  return np.sum(np.maximum(loss_mat * mask_pos, 0.0)) / np.sum(mask_pos)


def _data(seed, b=12, d=5, classes=3):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(b, d)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  labels = rng.integers(0, classes, size=b).astype(np.int32)
  return x, labels


# Jitted once (margin traced, the rest static) and shared by the tests, to keep them fast.
_STATIC = ("squared", "axis_name")
MINERS = {
    "hard": (jax.jit(M.batch_hard_triplet, static_argnames=_STATIC), ref_batch_hard),
    "semi_hard": (jax.jit(M.batch_semi_hard_triplet, static_argnames=_STATIC), ref_semi_hard),
}


# ----------------------------------------------------------------------------- contrastive_margin
def test_contrastive_margin_matches_reference():
  rng = np.random.default_rng(0)
  x1 = rng.normal(size=(10, 4)).astype(np.float32)
  x2 = (x1 + 0.4 * rng.normal(size=(10, 4))).astype(np.float32)
  y = rng.integers(0, 2, size=10)
  for margin in (0.5, 2.0):
    got = M.contrastive_margin(x1, x2, y, margin=margin)
    assert got.shape == (10,)
    np.testing.assert_allclose(got, ref_contrastive(x1, x2, y, margin), rtol=1e-5, atol=1e-6)
  # Bool labels and float labels mean the same.
  np.testing.assert_allclose(M.contrastive_margin(x1, x2, y.astype(bool)),
                             M.contrastive_margin(x1, x2, y.astype(np.float32)), rtol=1e-6)


def test_contrastive_margin_gradient_finite_at_zero_distance():
  x = jnp.ones((3, 4))
  for y in (jnp.zeros(3), jnp.ones(3)):
    g1, g2 = jax.grad(lambda a, b: jnp.sum(M.contrastive_margin(a, b, y)), argnums=(0, 1))(x, x)
    assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
  # Dissimilar coincident pair: loss m^2 / 2.
  np.testing.assert_allclose(M.contrastive_margin(x, x, jnp.ones(3), margin=2.0), 2.0)
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 5, 3))
    y = np.array([0, 1, 0, 1, 1])
    f = jax.jit(lambda u, v: M.contrastive_margin(u, v, y, margin=3.0))
    jax.test_util.check_grads(f, (a, b), order=2, modes=("rev",))


# ----------------------------------------------------------------------------- triplet_margin
def test_triplet_margin_matches_optax_and_reference():
  rng = np.random.default_rng(2)
  a, p, n = (rng.normal(size=(9, 6)).astype(np.float32) for _ in range(3))
  for margin in (0.2, 1.0, 5.0):
    got = M.triplet_margin(a, p, n, margin=margin)
    np.testing.assert_allclose(got, optax.losses.triplet_margin_loss(a, p, n, margin=margin),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, ref_triplet(a, p, n, margin, 2, 1e-6), rtol=1e-5, atol=1e-6)
  # Odd degree: a true p-norm (optax omits |.|, so it is not compared here).
  np.testing.assert_allclose(M.triplet_margin(a, p, n, p=1, eps=1e-3),
                             ref_triplet(a, p, n, 1.0, 1, 1e-3), rtol=1e-5, atol=1e-6)
  # Optax's doc example.
  np.testing.assert_allclose(M.triplet_margin(jnp.array([[0., 0.], [1., 1.]]),
                                              jnp.array([[.1, .1], [1.1, 1.1]]),
                                              jnp.array([[1., 0.], [0., 1.]])), [0.1414, 0.1414],
                             atol=1e-4)


def test_triplet_margin_grads_and_bfloat16():
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    a, p, n = rng.normal(size=(3, 4, 3))
    f = jax.jit(lambda *t: M.triplet_margin(*t, margin=4.0))
    jax.test_util.check_grads(f, (a, p, n), order=1, modes=("fwd", "rev"))
  a = jnp.ones((2, 3))
  g = jax.grad(lambda u: jnp.sum(M.triplet_margin(u, u, u + 1.0)))(a)
  assert np.all(np.isfinite(g))
  x = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.bfloat16)
  got = M.triplet_margin(*x)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, M.triplet_margin(*x.astype(jnp.float32)), rtol=1e-6)


# ----------------------------------------------------------------------------- mining losses
@pytest.mark.parametrize("kind", ["hard", "semi_hard"])
@pytest.mark.parametrize("squared", [False, True])
def test_mining_matches_loop_reference(kind, squared):
  fn, ref = MINERS[kind]
  for seed, b, classes, margin in ((0, 12, 3, 1.0), (1, 9, 4, 0.3), (2, 16, 2, 0.1)):
    x, labels = _data(seed, b=b, classes=classes)
    losses, valid = fn(x, labels, margin=margin, squared=squared)
    want_l, want_v = ref(x, labels, margin, squared)
    assert losses.shape == (b,) and valid.shape == (b,) and valid.dtype == jnp.bool_
    np.testing.assert_array_equal(valid, want_v)
    np.testing.assert_allclose(losses, want_l, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("kind", ["hard", "semi_hard"])
def test_mining_masks_anchors_without_positive_or_negative(kind):
  fn, ref = MINERS[kind]
  x, _ = _data(4, b=6)
  labels = np.array([0, 0, 1, 2, 2, 2], np.int32)  # anchor 2 has no positive
  losses, valid = fn(x, labels)
  np.testing.assert_array_equal(valid, [True, True, False, True, True, True])
  assert losses[2] == 0.0
  np.testing.assert_allclose(losses, ref(x, labels, 1.0, False)[0], rtol=1e-5, atol=2e-6)
  losses, valid = fn(x, np.zeros(6, np.int32))  # no negatives anywhere
  assert not np.any(valid) and np.all(losses == 0.0)
  g = jax.jit(jax.grad(lambda e: jnp.sum(fn(e, np.zeros(6, np.int32))[0])))(jnp.asarray(x))
  np.testing.assert_array_equal(g, 0.0)


def test_semi_hard_matches_tf_addons_transliteration():
  for seed in range(3):
    x, labels = _data(10 + seed, b=14, classes=3)
    losses, _ = MINERS["semi_hard"][0](x, labels, margin=0.5, squared=True)
    num_pos = np.array([np.sum((labels == labels[a])) - 1 for a in range(len(labels))])
    pair_mean = np.sum(np.asarray(losses) * num_pos) / np.sum(num_pos)  # TF-Addons' reduction
    np.testing.assert_allclose(pair_mean, tfa_semihard_scalar(x, labels, 0.5), rtol=1e-5)


@pytest.mark.parametrize("kind", ["hard", "semi_hard"])
def test_mining_grads(kind):
  fn, _ = MINERS[kind]
  with jax.enable_x64(True):
    x, labels = _data(5, b=8, d=3, classes=2)
    x = x.astype(np.float64)
    jax.test_util.check_grads(jax.jit(lambda e: fn(e, labels, margin=2.0)[0]), (x,), order=1,
                              modes=("fwd", "rev"), eps=1e-5)
  # Duplicated rows (zero distances, ties): gradients stay finite.
  dup = jnp.asarray(np.concatenate([x[:4], x[:4]]), jnp.float32)
  g = jax.jit(jax.grad(lambda e: jnp.sum(fn(e, np.array([0, 1, 0, 1, 0, 1, 1, 0]))[0])))(dup)
  assert np.all(np.isfinite(g))


@pytest.mark.parametrize("kind", ["hard", "semi_hard"])
def test_mining_bfloat16(kind):
  fn, _ = MINERS[kind]
  x, labels = _data(6)
  xb = jnp.asarray(x, jnp.bfloat16)
  losses, valid = fn(xb, labels)
  assert losses.dtype == jnp.float32
  want, want_v = fn(xb.astype(jnp.float32), labels)
  np.testing.assert_allclose(losses, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(valid, want_v)


@pytest.mark.parametrize("kind", ["hard", "semi_hard"])
def test_mining_sharded_equals_single_device(kind):
  fn, _ = MINERS[kind]
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  x, labels = _data(7, b=32, d=6, classes=5)
  labels[5] = 9  # a class with one member: its anchor is masked on every layout
  sharded = jax.shard_map(functools.partial(fn, margin=0.7, axis_name="data"), mesh=mesh,
                          in_specs=(P("data"), P("data")), out_specs=(P("data"), P("data")))
  single = functools.partial(fn, margin=0.7)

  def reduced(loss_fn):
    def f(e):
      losses, valid = loss_fn(e, labels)
      return jnp.sum(losses) / jnp.maximum(jnp.sum(valid), 1)
    return jax.jit(jax.value_and_grad(f))

  l_sh, v_sh = jax.jit(sharded)(x, labels)
  l_1, v_1 = jax.jit(single)(x, labels)
  np.testing.assert_array_equal(v_sh, v_1)
  assert not v_1[5]
  np.testing.assert_allclose(l_sh, l_1, rtol=1e-5, atol=1e-6)
  (val_sh, g_sh), (val_1, g_1) = reduced(sharded)(x), reduced(single)(x)
  np.testing.assert_allclose(val_sh, val_1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g_sh, g_1, rtol=1e-5, atol=1e-6)
  assert np.any(np.abs(g_1) > 0)


# ----------------------------------------------------------------------------- bad input
def test_errors():
  x = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match=r"contrastive_margin: `y` must have shape \[b\]"):
    M.contrastive_margin(x, x, jnp.zeros(5))
  with pytest.raises(ValueError, match=r"contrastive_margin: .*same shape.*x2\(4, 2\)"):
    M.contrastive_margin(x, jnp.zeros((4, 2)), jnp.zeros(4))
  with pytest.raises(ValueError, match=r"triplet_margin: .*same shape"):
    M.triplet_margin(x, x, jnp.zeros((3, 3)))
  with pytest.raises(ValueError, match=r"triplet_margin: `anchor` must be a floating array"):
    M.triplet_margin(x.astype(jnp.int32), x.astype(jnp.int32), x.astype(jnp.int32))
  with pytest.raises(ValueError, match=r"batch_hard_triplet: `labels` must be integer class ids, "
                                       r"not float32"):
    M.batch_hard_triplet(x, jnp.zeros(4))
  with pytest.raises(ValueError, match=r"batch_semi_hard_triplet: `labels` must have shape \[b\]"
                                       r".*labels\(4, 3\)"):
    M.batch_semi_hard_triplet(x, jnp.zeros((4, 3), jnp.int32))
  with pytest.raises(ValueError, match=r"batch_semi_hard_triplet: `embeddings` must have 2"):
    M.batch_semi_hard_triplet(jnp.zeros(4), jnp.zeros(4, jnp.int32))
