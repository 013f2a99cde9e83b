"""Tests of Barlow Twins and VICReg against naive float64 loops, gradients, bfloat16 and sharding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from ssl_jax.losses import redundancy as R

# Jitted once per module (hyperparameters are traced, so one compilation per shape and dtype).
BARLOW = jax.jit(R.barlow_twins)
VICREG = jax.jit(R.vicreg)
VICREG_TERMS = jax.jit(R.vicreg_terms)


def _views(n, d, seed=0, noise=0.5, scale=1.0):
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=(n, d)) * scale + rng.normal(size=(1, d))
  z2 = z1 + noise * rng.normal(size=(n, d)) * scale
  return z1.astype(np.float32), z2.astype(np.float32)


# ---------------------------------------------------------------- naive references (float64, loops)

def _barlow_ref(z1, z2, lambd, eps):
  """Barlow Twins from the paper's formula, BatchNorm1d(affine=False) in training mode (biased var)."""
  z1, z2 = np.float64(z1), np.float64(z2)
  n, d = z1.shape

  def bn(z):
    out = np.empty_like(z)
    for i in range(d):
      mu = sum(z[k, i] for k in range(n)) / n
      var = sum((z[k, i] - mu) ** 2 for k in range(n)) / n
      for k in range(n):
        out[k, i] = (z[k, i] - mu) / np.sqrt(var + eps)
    return out

  a, b = bn(z1), bn(z2)
  loss = 0.0
  for i in range(d):
    for j in range(d):
      c = sum(a[k, i] * b[k, j] for k in range(n)) / n
      loss += (1.0 - c) ** 2 if i == j else lambd * c ** 2
  return loss


def _vicreg_ref(x, y, sim, std_c, cov_c, eps):
  """VICReg as facebookresearch/vicreg main_vicreg.py computes it, written with loops."""
  x, y = np.float64(x), np.float64(y)
  n, d = x.shape
  inv = sum((x[k, i] - y[k, i]) ** 2 for k in range(n) for i in range(d)) / (n * d)

  def terms(z):
    mu = [sum(z[k, i] for k in range(n)) / n for i in range(d)]
    cov = np.zeros((d, d))
    for i in range(d):
      for j in range(d):
        cov[i, j] = sum((z[k, i] - mu[i]) * (z[k, j] - mu[j]) for k in range(n)) / (n - 1)
    std_loss = sum(max(0.0, 1.0 - np.sqrt(cov[i, i] + eps)) for i in range(d)) / d
    cov_loss = sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return std_loss, cov_loss

  sx, cx = terms(x)
  sy, cy = terms(y)
  var, cov = (sx + sy) / 2, cx + cy
  return sim * inv + std_c * var + cov_c * cov, dict(invariance=inv, variance=var, covariance=cov)


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("n,d,lambd,eps,scale", [(16, 8, 5e-3, 1e-5, 1.0), (10, 5, 0.1, 1e-3, 3.0)])
def test_barlow_twins_matches_naive_loops(n, d, lambd, eps, scale):
  z1, z2 = _views(n, d, seed=n, scale=scale)
  got = BARLOW(jnp.asarray(z1), jnp.asarray(z2), lambda_=lambd, eps=eps)
  assert got.shape == () and got.dtype == jnp.float32
  np.testing.assert_allclose(got, _barlow_ref(z1, z2, lambd, eps), rtol=2e-5, atol=1e-6)


def test_barlow_twins_identical_views_is_near_zero_when_lambda_zero():
  z, _ = _views(64, 4, seed=3)
  # With lambda=0 and z1 == z2, C_ii = var/(var+eps) ~ 1, so the loss is ~0; a different view is not.
  assert float(BARLOW(z, z, lambda_=0.0)) < 1e-6
  assert float(BARLOW(z, -z, lambda_=0.0)) == pytest.approx(4 * 4.0, rel=1e-4)


@pytest.mark.parametrize("n,d,coeffs,eps", [(16, 6, (25.0, 25.0, 1.0), 1e-4), (9, 4, (1.0, 3.0, 0.5), 1e-2)])
def test_vicreg_matches_naive_loops(n, d, coeffs, eps):
  # Small scale so that some std hinges are active and the relu matters.
  z1, z2 = _views(n, d, seed=n + 1, scale=0.6)
  want, want_terms = _vicreg_ref(z1, z2, *coeffs, eps)
  got = VICREG(jnp.asarray(z1), jnp.asarray(z2), sim_coeff=coeffs[0], std_coeff=coeffs[1],
               cov_coeff=coeffs[2], eps=eps)
  assert got.shape == () and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=2e-5)
  assert want_terms["variance"] > 0  # the hinge is exercised
  terms = VICREG_TERMS(jnp.asarray(z1), jnp.asarray(z2), eps=eps)
  assert set(terms) == {"invariance", "variance", "covariance"}
  for k, v in want_terms.items():
    np.testing.assert_allclose(terms[k], v, rtol=2e-5, atol=1e-7, err_msg=k)


# ---------------------------------------------------------------- gradients

def test_gradients_match_finite_differences():
  with jax.enable_x64(True):
    z1, z2 = (jnp.asarray(np.float64(z)) for z in _views(6, 3, seed=7, scale=0.7))
    assert z1.dtype == jnp.float64
    barlow = jax.jit(lambda a, b: R.barlow_twins(a, b, lambda_=0.1))
    vicreg = jax.jit(R.vicreg)
    check_grads(barlow, (z1, z2), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)
    check_grads(vicreg, (z1, z2), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_gram_custom_derivative_equals_autodiff_of_matmul():
  rng = np.random.default_rng(3)
  x, dx = (jnp.asarray(rng.normal(size=(7, 4)), jnp.float32) for _ in range(2))
  ct = jnp.asarray(rng.normal(size=(4, 4)), jnp.float32)  # not symmetric: both transposes matter
  plain = lambda a: a.T @ a
  np.testing.assert_allclose(R._gram(x), plain(x), rtol=1e-6)
  np.testing.assert_allclose(jax.vjp(R._gram, x)[1](ct)[0], jax.vjp(plain, x)[1](ct)[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jax.jvp(R._gram, (x,), (dx,))[1], jax.jvp(plain, (x,), (dx,))[1], rtol=1e-5,
                             atol=1e-6)


# ---------------------------------------------------------------- low precision

@pytest.mark.parametrize("fn", [BARLOW, VICREG], ids=["barlow_twins", "vicreg"])
def test_bfloat16_inputs_are_finite_and_close_to_float32(fn):
  z1, z2 = _views(64, 32, seed=11, scale=20.0)
  z1 = z1 + 100.0  # a large mean: cancellation would show in low precision
  lo = fn(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2 + 100.0, jnp.bfloat16))
  assert lo.dtype == jnp.float32 and np.isfinite(float(lo))
  # Internally float32: same as upcasting the rounded inputs first.
  rounded = [jnp.asarray(z, jnp.bfloat16).astype(jnp.float32) for z in (z1, z2 + 100.0)]
  np.testing.assert_allclose(lo, fn(*rounded), rtol=1e-6)
  np.testing.assert_allclose(lo, fn(jnp.asarray(z1), jnp.asarray(z2 + 100.0)), rtol=5e-2)
  g = jax.jit(jax.grad(fn))(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16))
  assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.float32(g)))


# ---------------------------------------------------------------- sharding

@pytest.mark.parametrize("name", ["barlow_twins", "vicreg"])
def test_sharded_equals_single_device_value_and_grad(name):
  fn = {"barlow_twins": lambda a, b, **k: R.barlow_twins(a, b, lambda_=0.05, **k), "vicreg": R.vicreg}[name]
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  z1, z2 = (jnp.asarray(z) for z in _views(24, 6, seed=5, scale=0.8))  # 3 rows per device
  sharded = jax.shard_map(lambda a, b: fn(a, b, axis_name="data"), mesh=mesh,
                          in_specs=(P("data"), P("data")), out_specs=P())
  v1, g1 = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(z1, z2)
  v8, g8 = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1)))(z1, z2)
  np.testing.assert_allclose(v8, v1, rtol=1e-5)
  scale = max(float(jnp.max(jnp.abs(g))) for g in g1)
  for a, b in zip(g8, g1):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)
  # A per-device loss (no axis_name) would differ: the test can tell.
  local = jax.shard_map(lambda a, b: jax.lax.pmean(fn(a, b), "data"), mesh=mesh,
                        in_specs=(P("data"), P("data")), out_specs=P())
  assert abs(float(jax.jit(local)(z1, z2)) - float(v1)) > 1e-3 * abs(float(v1))


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("fn", [R.barlow_twins, R.vicreg, R.vicreg_terms],
                         ids=["barlow_twins", "vicreg", "vicreg_terms"])
def test_bad_shapes_raise(fn):
  with pytest.raises(ValueError, match=r"same shape.*z1\(4, 3\), z2\(4, 5\)"):
    fn(jnp.zeros((4, 3)), jnp.zeros((4, 5)))
  with pytest.raises(ValueError, match=r"`z1` must have 2 dimensions.*z1\(4, 3, 2\)"):
    fn(jnp.zeros((4, 3, 2)), jnp.zeros((4, 3, 2)))


def test_vicreg_needs_two_rows():
  with pytest.raises(ValueError, match=r"vicreg: .*at least 2 rows.*z1\(1, 3\)"):
    R.vicreg(jnp.zeros((1, 3)), jnp.zeros((1, 3)))


# ---------------------------------------------------------------- KoLeo

def _koleo_ref(x, eps=1e-8):
  """KoLeo from its formula with loops, float64: -(1/n) sum_i log(min_{j != i} ||x_i^ - x_j^|| + eps)."""
  x = np.float64(x)
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  n = len(x)
  total = 0.0
  for i in range(n):
    nearest = min(np.sqrt(sum((x[i, k] - x[j, k]) ** 2 for k in range(x.shape[1]))) for j in range(n) if j != i)
    total += np.log(nearest + eps)
  return -total / n


def test_koleo_equals_the_formula_and_grows_as_the_rows_crowd():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(12, 5)).astype(np.float32) * rng.uniform(0.1, 10, size=(12, 1)).astype(np.float32)
  np.testing.assert_allclose(jax.jit(R.koleo)(jnp.asarray(x)), _koleo_ref(x), rtol=1e-5)
  # Scale-free (rows are normalised), and rows bunched around one direction score higher (less spread).
  np.testing.assert_allclose(R.koleo(jnp.asarray(3.0 * x)), R.koleo(jnp.asarray(x)), rtol=1e-5)
  crowded = x + 5.0 * np.linalg.norm(x, axis=1, keepdims=True)
  assert float(R.koleo(jnp.asarray(crowded))) > float(R.koleo(jnp.asarray(x))) + 1.0
  # A duplicated row: distance 0, a finite loss with a finite gradient.
  dup = np.concatenate([x[:1], x], 0)
  value, grad = jax.value_and_grad(R.koleo)(jnp.asarray(dup))
  np.testing.assert_allclose(value, _koleo_ref(dup), rtol=1e-5)
  assert np.all(np.isfinite(grad))


def test_koleo_gradient_matches_finite_differences_and_pushes_neighbours_apart():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(9, 4)), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  check_grads(lambda a: R.koleo(a), (x,), order=1, modes=("rev",), atol=2e-2, rtol=2e-2, eps=1e-3)
  # A small step down the gradient widens the smallest nearest-neighbour distance of the batch.
  def min_dist(a):
    a = np.float64(a) / np.linalg.norm(np.float64(a), axis=1, keepdims=True)
    d = np.linalg.norm(a[:, None] - a[None], axis=-1) + np.eye(len(a)) * 9
    return d.min()
  g = jax.grad(R.koleo)(x)
  assert min_dist(x - 1e-2 * g) > min_dist(x)


def test_koleo_sharded_equals_single_device_value_and_grad():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  x = jnp.asarray(np.random.default_rng(2).normal(size=(24, 6)), jnp.float32)  # 3 rows per device
  sharded = jax.shard_map(lambda a: R.koleo(a, axis_name="data"), mesh=mesh, in_specs=P("data"), out_specs=P())
  v1, g1 = jax.jit(jax.value_and_grad(R.koleo))(x)
  v8, g8 = jax.jit(jax.value_and_grad(sharded))(x)
  np.testing.assert_allclose(v8, v1, rtol=1e-5)
  np.testing.assert_allclose(g8, g1, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(g1))))
  # Neighbours searched on each device alone would be farther: the test can tell.
  local = jax.shard_map(lambda a: jax.lax.pmean(R.koleo(a), "data"), mesh=mesh, in_specs=P("data"), out_specs=P())
  assert float(jax.jit(local)(x)) < float(v1) - 1e-2


def test_koleo_refuses_bad_input():
  with pytest.raises(ValueError, match=r"koleo: `x` must have 2 dimensions.*x\(4, 3, 2\)"):
    R.koleo(jnp.zeros((4, 3, 2)))
  with pytest.raises(ValueError, match=r"koleo: `x` needs at least 2 rows.*x\(1, 3\)"):
    R.koleo(jnp.zeros((1, 3)))
  with pytest.raises(ValueError, match=r"koleo: `eps` must be >= 0"):
    R.koleo(jnp.ones((4, 3)), eps=-1.0)
