"""Tests of reconstruction losses: VAE ELBO, KL, contractive penalty, MAE loss and its helpers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ssl_jax.losses import reconstruction as R

RNG = np.random.default_rng(0)
KEY = jax.random.key(0)


def _kl_ref(mean, logvar):
  out = np.zeros(mean.shape[0])
  for b in range(mean.shape[0]):
    for mu, lv in zip(mean[b].ravel().astype(np.float64), logvar[b].ravel().astype(np.float64)):
      # KL(N(mu, s^2) || N(0, 1)) = log(1/s) + (s^2 + mu^2)/2 - 1/2
      out[b] += -0.5 * lv + (math.exp(lv) + mu * mu) / 2 - 0.5
  return out


def test_gaussian_kl_closed_form_and_zero_at_prior():
  mean = RNG.normal(size=(4, 3, 2)).astype(np.float32)
  logvar = RNG.normal(size=(4, 3, 2)).astype(np.float32)
  np.testing.assert_allclose(R.gaussian_kl(mean, logvar), _kl_ref(mean, logvar), rtol=1e-5)
  assert np.all(np.asarray(R.gaussian_kl(np.zeros((2, 5)), np.zeros((2, 5)))) == 0)


def test_gaussian_kl_tiny_logvar_precise_and_extremes_finite():
  lv = np.array([[1e-4, -1e-4]], np.float32)
  # exp(lv) - 1 - lv = lv^2/2 + lv^3/6: cancels catastrophically without expm1.
  want = 0.5 * sum(v * v / 2 + v ** 3 / 6 for v in lv[0].astype(np.float64))
  np.testing.assert_allclose(R.gaussian_kl(np.zeros_like(lv), lv), [want], rtol=1e-3)
  lv = np.array([[-80.0, 60.0]], np.float32)
  kl = R.gaussian_kl(np.zeros_like(lv), lv)
  np.testing.assert_allclose(kl, _kl_ref(np.zeros_like(lv), lv), rtol=1e-6)
  g = jax.grad(lambda v: jnp.sum(R.gaussian_kl(jnp.zeros_like(v), v)))(jnp.asarray(lv))
  assert np.all(np.isfinite(g))


def _bce_ref(logits, x):
  out = np.zeros(x.shape[0])
  for b in range(x.shape[0]):
    for l, t in zip(logits[b].ravel().astype(np.float64), x[b].ravel().astype(np.float64)):
      p = 1 / (1 + math.exp(-l))
      out[b] += -(t * math.log(p) + (1 - t) * math.log(1 - p))
  return out


def test_vae_elbo_bernoulli_and_gaussian_reference():
  x = RNG.uniform(size=(3, 4, 4, 1)).astype(np.float32)
  logits = RNG.normal(size=(3, 4, 4, 1)).astype(np.float32)
  mean = RNG.normal(size=(3, 5)).astype(np.float32)
  logvar = RNG.normal(size=(3, 5)).astype(np.float32) * 0.5
  kl = _kl_ref(mean, logvar)
  got = R.vae_elbo(logits, x, mean, logvar, beta=0.5)
  np.testing.assert_allclose(got, _bce_ref(logits, x) + 0.5 * kl, rtol=1e-5)
  sigma = 0.3
  got = R.vae_elbo(logits, x, mean, logvar, likelihood="gaussian", sigma=sigma)
  nll = np.zeros(3)
  for b in range(3):
    for m, t in zip(logits[b].ravel().astype(np.float64), x[b].ravel().astype(np.float64)):
      nll[b] -= math.log(math.exp(-(t - m) ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi)))
  np.testing.assert_allclose(got, nll + kl, rtol=1e-5)


def test_vae_elbo_bernoulli_large_logits_stable():
  logits = np.array([[100.0, -100.0, 1e4, -1e4]], np.float32)
  x = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
  z = np.zeros((1, 2), np.float32)
  got = R.vae_elbo(logits, x, z, z)
  np.testing.assert_allclose(got, [2e4], rtol=1e-6)  # first two terms ~ exp(-100)
  g = jax.grad(lambda l: jnp.sum(R.vae_elbo(l, x, z, z)))(jnp.asarray(logits))
  np.testing.assert_allclose(g, [[0.0, 0.0, 1.0, -1.0]], atol=1e-6)
  # bfloat16 inputs: computed in float32.
  got = R.vae_elbo(jnp.asarray(logits, jnp.bfloat16), x, z, z)
  assert got.dtype == jnp.float32 and np.all(np.isfinite(got))


def test_vae_elbo_check_grads_and_reparameterize():
  x = RNG.uniform(size=(2, 3))
  with jax.enable_x64(True):
    args = (jnp.asarray(RNG.normal(size=(2, 3))), jnp.asarray(RNG.normal(size=(2, 2))),
            jnp.asarray(RNG.normal(size=(2, 2))))
    f = jax.jit(lambda l, m, v: R.vae_elbo(l, x, m, v, beta=2.0))
    check_grads(f, args, order=1, modes=("fwd", "rev"))
  mean, logvar = jnp.array([[1.0, -2.0]]), jnp.array([[0.5, -1.0]])
  z = R.reparameterize(KEY, mean, logvar)
  eps = jax.random.normal(KEY, (1, 2))
  np.testing.assert_allclose(z, mean + jnp.exp(0.5 * logvar) * eps, rtol=1e-6)
  gm, gv = jax.grad(lambda m, v: jnp.sum(R.reparameterize(KEY, m, v)), argnums=(0, 1))(mean, logvar)
  np.testing.assert_allclose(gm, 1.0)
  np.testing.assert_allclose(gv, 0.5 * jnp.exp(0.5 * logvar) * eps, rtol=1e-6)
  big = R.reparameterize(KEY, jnp.zeros((20000,)), jnp.full((20000,), math.log(4.0)))
  assert abs(float(jnp.std(big)) - 2.0) < 0.05


@pytest.mark.parametrize("d_in,d_h", [(6, 3), (3, 6)])  # rev and fwd under "auto"
def test_contractive_penalty_sigmoid_closed_form(d_in, d_h):
  w = RNG.normal(size=(d_h, d_in)).astype(np.float32)
  c = RNG.normal(size=(d_h,)).astype(np.float32)
  x = RNG.normal(size=(4, d_in)).astype(np.float32)
  encode = lambda xi: jax.nn.sigmoid(w @ xi + c)
  h = 1 / (1 + np.exp(-(x.astype(np.float64) @ w.T + c)))
  want = ((h * (1 - h)) ** 2 * (w.astype(np.float64) ** 2).sum(1)).sum(1)
  for mode in ("auto", "rev", "fwd"):
    np.testing.assert_allclose(R.contractive_penalty(encode, x, mode=mode), want, rtol=1e-5)


def test_contractive_penalty_differentiable_in_params_and_image_inputs():
  x = RNG.normal(size=(3, 2, 2, 1)).astype(np.float32)

  @jax.jit
  def loss(w):
    return jnp.mean(R.contractive_penalty(lambda xi: jnp.tanh(w @ xi.reshape(-1)), x))

  w = jnp.asarray(RNG.normal(size=(5, 4)).astype(np.float32))
  # Closed form for tanh: sum_j (1 - h_j^2)^2 ||W_j||^2.
  h = np.tanh(x.reshape(3, 4) @ np.asarray(w).T)
  np.testing.assert_allclose(loss(w), np.mean(((1 - h ** 2) ** 2 * (np.asarray(w) ** 2).sum(1)).sum(1)),
                             rtol=1e-5)
  g = jax.grad(loss)(w)
  eps = 1e-2
  d = jnp.zeros_like(w).at[1, 2].set(eps)
  np.testing.assert_allclose(g[1, 2], (loss(w + d) - loss(w - d)) / (2 * eps), rtol=2e-2)


def test_patchify_layout_and_roundtrip():
  img = RNG.normal(size=(2, 4, 6, 3)).astype(np.float32)
  p = 2
  got = np.asarray(R.patchify(img, p))
  assert got.shape == (2, 6, 12)
  for b in range(2):
    for k in range(6):
      r, c = divmod(k, 3)
      for u in range(p):
        for v in range(p):
          for ch in range(3):
            assert got[b, k, (u * p + v) * 3 + ch] == img[b, r * p + u, c * p + v, ch]
  np.testing.assert_array_equal(R.unpatchify(got, p, image_size=(4, 6)), img)
  sq = RNG.normal(size=(1, 4, 4, 2)).astype(np.float32)
  np.testing.assert_array_equal(R.unpatchify(R.patchify(sq, 2), 2), sq)


def test_random_masking():
  mask, ids_restore = R.random_masking(KEY, 3, 16, mask_ratio=0.75)
  mask, ids_restore = np.asarray(mask), np.asarray(ids_restore)
  assert mask.shape == (3, 16) and mask.dtype == np.float32
  np.testing.assert_array_equal(mask.sum(1), [12, 12, 12])
  for b in range(3):
    assert sorted(ids_restore[b]) == list(range(16))
    ids_keep = np.argsort(ids_restore[b])[:4]
    assert np.all(mask[b, ids_keep] == 0)
  m2, _ = R.random_masking(jax.random.key(1), 3, 16, mask_ratio=0.75)
  assert not np.array_equal(mask, m2)
  assert np.asarray(R.random_masking(KEY, 2, 196)[0]).sum(1).tolist() == [147, 147]


def _mae_ref(pred, target, mask, norm, eps=1e-6):
  out = np.zeros(pred.shape[0])
  for b in range(pred.shape[0]):
    num = den = 0.0
    for n in range(pred.shape[1]):
      t = target[b, n].astype(np.float64)
      if norm:
        t = (t - t.mean()) / math.sqrt(t.var(ddof=1) + eps)
      loss = np.mean((pred[b, n].astype(np.float64) - t) ** 2)
      num += loss * mask[b, n]
      den += mask[b, n]
    out[b] = num / den
  return out


@pytest.mark.parametrize("norm", [True, False])
def test_masked_reconstruction_reference(norm):
  pred = RNG.normal(size=(3, 8, 12)).astype(np.float32)
  target = RNG.uniform(size=(3, 8, 12)).astype(np.float32)
  mask = np.asarray(R.random_masking(KEY, 3, 8, mask_ratio=0.5)[0])
  got = R.masked_reconstruction(pred, target, mask, normalize_target=norm)
  np.testing.assert_allclose(got, _mae_ref(pred, target, mask, norm), rtol=1e-5)
  # Equal masked counts per example: the mean equals the official batch-level average.
  assert float(jnp.mean(got)) == pytest.approx(
      float(np.sum(_mae_ref(pred, target, mask, norm) * mask.sum(1)) / mask.sum()), rel=1e-5)


def test_masked_reconstruction_visible_patches_ignored():
  pred = RNG.normal(size=(2, 4, 6)).astype(np.float32)
  target = RNG.uniform(size=(2, 4, 6)).astype(np.float32)
  mask = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], np.float32)
  garbage = pred.copy()
  garbage[mask == 0] = np.nan
  a = R.masked_reconstruction(pred, target, mask)
  b = R.masked_reconstruction(garbage, target, mask)
  np.testing.assert_array_equal(a, b)
  assert float(b[1]) == 0.0
  # Masked equals sliced.
  np.testing.assert_allclose(a[0], R.masked_reconstruction(pred[:1, ::2], target[:1, ::2],
                                                          np.ones((1, 2)))[0], rtol=1e-6)
  g = jax.grad(lambda p: jnp.sum(R.masked_reconstruction(p, target, mask)))(jnp.asarray(garbage))
  g = np.asarray(g)
  assert np.all(g[mask == 0] == 0) and np.all(np.isfinite(g))


def test_errors_name_shapes():
  z = np.zeros((2, 3))
  with pytest.raises(ValueError, match=r"gaussian_kl: .*mean\(2, 3\), logvar\(2, 4\)"):
    R.gaussian_kl(z, np.zeros((2, 4)))
  with pytest.raises(ValueError, match=r"vae_elbo: `recon` must have the same shape"):
    R.vae_elbo(np.zeros((2, 4)), z, z, z)
  with pytest.raises(ValueError, match=r"vae_elbo: `mean` must have shape .*batch size"):
    R.vae_elbo(z, z, np.zeros((3, 2)), np.zeros((3, 2)))
  with pytest.raises(ValueError, match=r"`likelihood` must be 'bernoulli' or 'gaussian'"):
    R.vae_elbo(z, z, z, z, likelihood="poisson")
  with pytest.raises(ValueError, match=r"`sigma` must be > 0"):
    R.vae_elbo(z, z, z, z, likelihood="gaussian", sigma=0.0)
  with pytest.raises(ValueError, match=r"patchify: .*divisible by `patch_size`.*images\(1, 5, 4, 3\)"):
    R.patchify(np.zeros((1, 5, 4, 3)), 2)
  with pytest.raises(ValueError, match=r"masked_reconstruction: .*mask\(2, 5\)"):
    R.masked_reconstruction(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)), np.zeros((2, 5)))
  with pytest.raises(ValueError, match=r"patch_dim >= 2"):
    R.masked_reconstruction(np.zeros((2, 4, 1)), np.zeros((2, 4, 1)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match=r"`mode` must be"):
    R.contractive_penalty(jnp.tanh, z, mode="both")
  with pytest.raises(ValueError, match=r"`mask_ratio` must be in \[0, 1\)"):
    R.random_masking(KEY, 2, 4, mask_ratio=1.0)
