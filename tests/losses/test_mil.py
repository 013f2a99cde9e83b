"""Tests of MIL pooling: naive loop references, padding invariance, empty bags, gradients, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ssl_jax.losses import mil as M

RNG = np.random.default_rng(0)
SIZES = [3, 1, 5, 0, 2]  # real instances per bag, one empty bag
N = 6  # padded length


def _bags(d: int | None, garbage: float = np.nan):
  """Padded instance values [bags, N(, d)] with `garbage` in padded slots, the mask, and the bags."""
  shape = (len(SIZES), N) if d is None else (len(SIZES), N, d)
  x = RNG.normal(size=shape).astype(np.float32) * 2
  mask = np.zeros((len(SIZES), N), bool)
  for b, s in enumerate(SIZES):
    mask[b, :s] = True
    x[b, s:] = garbage
  return x, mask


def _ref(x, mask, kind, r=1.0):
  """Loop reference from the formulas; empty bag -> 0."""
  out = np.zeros((x.shape[0],) + x.shape[2:], np.float64)
  for b in range(x.shape[0]):
    real = [x[b, i].astype(np.float64) for i in range(x.shape[1]) if mask[b, i]]
    if not real:
      continue
    real = np.stack(real)
    if kind == "max":
      out[b] = real.max(0)
    elif kind == "mean":
      out[b] = real.sum(0) / len(real)
    else:
      acc = np.zeros(real.shape[1:])
      for v in real:
        acc = acc + np.exp(r * v)
      out[b] = np.log(acc / len(real)) / r
  return out


def _ref_attention(h, s, mask):
  w = np.zeros(s.shape, np.float64)
  z = np.zeros((h.shape[0],) + h.shape[2:], np.float64)
  for b in range(s.shape[0]):
    idx = [i for i in range(s.shape[1]) if mask[b, i]]
    if not idx:
      continue
    den = sum(math.exp(s[b, i]) for i in idx)
    for i in idx:
      w[b, i] = math.exp(s[b, i]) / den
      z[b] = z[b] + w[b, i] * h[b, i]
  return z, w


POOLS = {"max": M.mil_max, "mean": M.mil_mean, "lse": M.mil_logsumexp}


@pytest.mark.parametrize("kind", ["max", "mean", "lse"])
@pytest.mark.parametrize("d", [None, 4])
def test_pool_matches_loop_reference_with_nan_padding(kind, d):
  x, mask = _bags(d)
  got = np.asarray(POOLS[kind](x, mask))
  np.testing.assert_allclose(got, _ref(x, mask, kind), rtol=1e-5, atol=1e-6)
  assert got.shape == ((len(SIZES),) if d is None else (len(SIZES), d))
  assert np.all(got[SIZES.index(0)] == 0)


@pytest.mark.parametrize("r", [0.1, 2.0, 10.0])
def test_logsumexp_r_and_limits(r):
  x, mask = _bags(3)
  np.testing.assert_allclose(M.mil_logsumexp(x, mask, r=r), _ref(x, mask, "lse", r), rtol=1e-5,
                             atol=1e-6)


def test_logsumexp_between_mean_and_max_and_limits():
  x, mask = _bags(None, garbage=np.inf)
  mean, mx = _ref(x, mask, "mean"), _ref(x, mask, "max")
  lse = np.asarray(M.mil_logsumexp(x, mask, r=1.0))
  assert np.all(lse >= mean - 1e-5) and np.all(lse <= mx + 1e-5)
  # Small r: LSE = mean + r/2 * var + O(r^2) (second-order cumulant expansion).
  var = np.array([np.var(x[b][mask[b]]) if mask[b].any() else 0.0 for b in range(len(SIZES))])
  np.testing.assert_allclose(M.mil_logsumexp(x, mask, r=1e-2), mean + 0.5e-2 * var, atol=1e-3)
  # log(1/n)/r -> 0 as r grows, so LSE -> max.
  np.testing.assert_allclose(M.mil_logsumexp(x, mask, r=1e3), mx, atol=2e-3)


def test_logsumexp_stable_for_large_values():
  x = np.array([[1e4, 1e4 - 1.0, -1e4]], np.float32)
  mask = np.array([[True, True, False]])
  want = 1e4 + math.log((1 + math.exp(-1)) / 2)
  np.testing.assert_allclose(M.mil_logsumexp(x, mask), [want], rtol=1e-6)


def test_attention_pool_matches_reference_and_weights_exact_zero():
  h, mask = _bags(4)
  s, _ = _bags(None, garbage=np.inf)
  pooled, w = M.attention_pool(h, s, mask)
  z_ref, w_ref = _ref_attention(h, s, mask)
  np.testing.assert_allclose(pooled, z_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-7)
  w = np.asarray(w)
  assert np.all(w[~mask] == 0.0)
  sums = w.sum(1)
  for b, size in enumerate(SIZES):
    assert sums[b] == pytest.approx(1.0 if size else 0.0, abs=1e-6)
  # [bags, n, 1] scores are accepted.
  pooled3, w3 = M.attention_pool(h, s[..., None], mask)
  np.testing.assert_array_equal(pooled3, pooled)
  np.testing.assert_array_equal(w3, w)


def test_attention_pool_large_scores_stable():
  h = np.ones((1, 3, 2), np.float32)
  s = np.array([[1e30, -1e30, 5.0]], np.float32)
  pooled, w = M.attention_pool(h, s, np.array([[True, True, True]]))
  np.testing.assert_allclose(w, [[1.0, 0.0, 0.0]])
  np.testing.assert_allclose(pooled, [[1.0, 1.0]])


def _all_pools(h, s, mask):
  p, w = M.attention_pool(h, s, mask)
  return (M.mil_max(h, mask), M.mil_mean(h, mask), M.mil_logsumexp(h, mask, r=2.0), p, w)


_all_pools_jit = jax.jit(_all_pools)


def test_masked_equals_sliced_and_padding_length_invariant():
  """A bag padded to any length (with garbage) gives what the bare bag gives."""
  h = RNG.normal(size=(1, 3, 4)).astype(np.float32)
  s = RNG.normal(size=(1, 3)).astype(np.float32)
  bare = _all_pools_jit(h, s, np.ones((1, 3), bool))
  for pad, garbage in [(2, np.nan), (5, np.inf), (5, -np.inf)]:
    hp = np.concatenate([h, np.full((1, pad, 4), garbage, np.float32)], 1)
    sp = np.concatenate([s, np.full((1, pad), garbage, np.float32)], 1)
    mp = np.arange(3 + pad)[None] < 3
    padded = _all_pools_jit(hp, sp, mp)
    for a, b in zip(bare[:4], padded[:4]):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(padded[4][:, :3], bare[4], rtol=1e-6)
    assert np.all(np.asarray(padded[4])[:, 3:] == 0)


def test_gradients_wrt_padding_exactly_zero_and_finite():
  h, mask = _bags(4, garbage=np.nan)
  s, _ = _bags(None, garbage=np.inf)
  r = jnp.float32(1.5)

  def total(h, s, r):
    p, w = M.attention_pool(h, s, mask)
    return (jnp.sum(M.mil_max(h, mask)) + jnp.sum(M.mil_mean(h, mask) ** 2)
            + jnp.sum(M.mil_logsumexp(h, mask, r=r)) + jnp.sum(p ** 2) + jnp.sum(w * w))

  gh, gs, gr = jax.jit(jax.grad(total, argnums=(0, 1, 2)))(h, s, r)
  gh, gs = np.asarray(gh), np.asarray(gs)
  assert np.all(gh[~mask] == 0.0) and np.all(gs[~mask] == 0.0)
  assert np.all(np.isfinite(gh)) and np.all(np.isfinite(gs)) and np.isfinite(gr)
  # Real instances of non-empty bags do get gradient.
  assert np.all(np.abs(gh[mask]).sum(-1) > 0)


def test_check_grads_real_instances():
  x = RNG.normal(size=(3, 4, 2))
  s = RNG.normal(size=(3, 4))
  mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)

  def f(v, ss):  # every pooling at once: one compile, one numerical check
    p, w = M.attention_pool(v, ss, mask)
    return (M.mil_mean(v, mask), M.mil_logsumexp(v, mask, r=1.7), M.mil_max(v, mask), p, w)

  with jax.enable_x64(True):
    check_grads(jax.jit(f), (jnp.asarray(x), jnp.asarray(s)), order=1, modes=("fwd", "rev"))


def test_bfloat16_inputs():
  x, mask = _bags(4, garbage=np.nan)
  s, _ = _bags(None, garbage=np.nan)
  xb, sb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(s, jnp.bfloat16)
  pooled, w = M.attention_pool(xb, sb, mask)
  assert pooled.dtype == jnp.bfloat16 and w.dtype == jnp.bfloat16
  xr, sr = np.asarray(xb, np.float32), np.asarray(sb, np.float32)
  z_ref, w_ref = _ref_attention(xr, sr, mask)
  np.testing.assert_allclose(np.asarray(pooled, np.float32), z_ref, rtol=2e-2, atol=2e-2)
  np.testing.assert_allclose(np.asarray(w, np.float32), w_ref, rtol=2e-2, atol=1e-2)
  for kind in POOLS:
    out = POOLS[kind](xb, mask)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), _ref(xr, mask, kind), rtol=2e-2,
                               atol=2e-2)


def test_integer_mask_accepted():
  x, mask = _bags(None)
  np.testing.assert_array_equal(M.mil_mean(x, mask.astype(np.int32)), M.mil_mean(x, mask))


def test_errors_name_shapes():
  x = np.zeros((2, 3, 4), np.float32)
  with pytest.raises(ValueError, match=r"mil_max: `mask` must have shape .*mask\(2, 4\)"):
    M.mil_max(x, np.ones((2, 4), bool))
  with pytest.raises(ValueError, match=r"mil_mean: `instance_values` must have shape"):
    M.mil_mean(np.zeros((3,)), np.ones((3,), bool))
  with pytest.raises(ValueError, match=r"`r` must be > 0; got r=0"):
    M.mil_logsumexp(x, np.ones((2, 3), bool), r=0.0)
  with pytest.raises(ValueError, match=r"attention_pool: `scores` must have shape .*scores\(2, 4\)"):
    M.attention_pool(x, np.zeros((2, 4)), np.ones((2, 3), bool))
  with pytest.raises(ValueError, match=r"attention_pool: `mask` must have shape"):
    M.attention_pool(x, np.zeros((2, 3)), np.ones((3, 2), bool))


def _clam_ref(scores, logits, mask, k):
  """CLAM's inst_eval written as a loop: top-k real instances -> class 1, bottom-k -> class 0, mean CE."""
  out = np.zeros(len(scores))
  for b in range(len(scores)):
    real = [i for i in range(scores.shape[1]) if mask[b, i]]
    if not real:
      continue
    order = sorted(real, key=lambda i: -scores[b, i])
    picks = [(i, 1) for i in order[:k]] + [(i, 0) for i in order[::-1][:k]]
    terms = []
    for i, cls in picks:
      z = logits[b, i].astype(np.float64)
      terms.append(-(z[cls] - np.log(np.exp(z).sum())))
    out[b] = np.mean(terms)
  return out


@pytest.mark.parametrize("k", [1, 2])
def test_clam_instance_loss_matches_loop_reference_and_ignores_padding(k):
  scores, mask = _bags(None, garbage=np.inf)  # padding with +inf scores must never be picked as the top
  logits = RNG.normal(size=(*mask.shape, 2)).astype(np.float32)
  logits[~mask] = np.nan
  got = np.asarray(M.clam_instance_loss(scores, logits, mask, top_k=k))
  np.testing.assert_allclose(got, _clam_ref(scores, logits, mask, k), rtol=1e-5, atol=1e-6)
  assert got[SIZES.index(0)] == 0.0, "an empty bag has loss 0"
  grads = jax.grad(lambda z: M.clam_instance_loss(scores, z, mask, top_k=k).sum())(jnp.asarray(logits))
  assert np.isfinite(np.asarray(grads)).all() and (np.asarray(grads)[~mask] == 0).all()


def test_clam_instance_loss_errors():
  scores, mask = _bags(None)
  with pytest.raises(ValueError, match=r"`instance_logits` \[bags, n, 2\]"):
    M.clam_instance_loss(scores, np.zeros((*mask.shape, 3)), mask)
  with pytest.raises(ValueError, match="top_k"):
    M.clam_instance_loss(scores, np.zeros((*mask.shape, 2)), mask, top_k=N + 1)
