"""Tests of the attention-MIL models: formula, shapes, masking, jit, errors."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.losses.mil import attention_pool
from ssl_jax.models.mil import AttentionMIL, GatedAttention

KEY = jax.random.key(0)


@pytest.mark.parametrize("gated", [True, False])
def test_gated_attention_formula(gated):
  h = jax.random.normal(KEY, (2, 5, 7))
  mod = GatedAttention(hidden_dim=4, gated=gated)
  params = mod.init(KEY, h)["params"]
  assert set(params) == ({"V", "U", "w"} if gated else {"V", "w"})
  assert "bias" not in params["w"]
  s = mod.apply({"params": params}, h)
  assert s.shape == (2, 5)
  a = np.tanh(h @ params["V"]["kernel"] + params["V"]["bias"])
  if gated:
    a = a * (1 / (1 + np.exp(-(h @ params["U"]["kernel"] + params["U"]["bias"]))))
  np.testing.assert_allclose(s, (a @ params["w"]["kernel"])[..., 0], rtol=1e-5, atol=1e-6)


class _Encoder(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(6)(x.reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def model_and_params():
  model = AttentionMIL(num_classes=3, hidden=(8,), attention_dim=5)
  x = jnp.zeros((2, 4, 3, 3))
  params = model.init(KEY, x, jnp.ones((2, 4), bool))
  return model, params, jax.jit(model.apply)


def test_attention_mil_shapes_and_weights(model_and_params):
  model, params, apply = model_and_params
  x = jax.random.normal(KEY, (2, 4, 3, 3))
  mask = jnp.array([[True, True, True, False], [True, False, False, False]])
  logits, w = apply(params, x, mask)
  assert logits.shape == (2, 3) and w.shape == (2, 4)
  w = np.asarray(w)
  assert np.all(w[~np.asarray(mask)] == 0.0)
  np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(w[1, 0], 1.0)


def test_attention_mil_padding_invariant_with_nan_garbage(model_and_params):
  model, params, apply = model_and_params
  x = np.asarray(jax.random.normal(KEY, (1, 4, 3, 3)))
  mask = np.array([[True, True, False, False]])
  xg = x.copy()
  xg[0, 2:] = np.nan
  l1, w1 = apply(params, x, mask)
  l2, w2 = apply(params, xg, mask)
  np.testing.assert_array_equal(l1, l2)
  np.testing.assert_array_equal(w1, w2)
  # Same bag unpadded, a different padded length with the same parameters.
  l3, w3 = apply(params, x[:, :2], mask[:, :2])
  np.testing.assert_allclose(l1, l3, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(w1[:, :2], w3, rtol=1e-6)

  def loss(p, x):
    logits, _ = model.apply(p, x, mask)
    return jnp.sum(logits ** 2)

  gp, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xg)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(gp))
  gx = np.asarray(gx)
  assert np.all(gx[0, 2:] == 0.0) and np.all(np.isfinite(gx))


def test_attention_mil_empty_bag_gives_bias(model_and_params):
  model, params, apply = model_and_params
  x = jnp.full((1, 4, 3, 3), jnp.nan)
  logits, w = apply(params, x, jnp.zeros((1, 4), bool))
  np.testing.assert_allclose(logits[0], params["params"]["classifier"]["bias"])
  assert np.all(np.asarray(w) == 0)


def test_attention_mil_custom_encoder_matches_manual_pipeline():
  model = AttentionMIL(num_classes=1, encoder=_Encoder(), attention_dim=4, gated=False)
  x = jax.random.normal(KEY, (3, 5, 2, 2))
  mask = jnp.arange(5)[None] < jnp.array([[5], [2], [1]])
  params = model.init(KEY, x, mask)
  logits, w = jax.jit(model.apply)(params, x, mask)
  assert logits.shape == (3, 1)
  p = params["params"]
  h = _Encoder().apply({"params": p["encoder"]}, x.reshape(15, 2, 2)).reshape(3, 5, 6)
  s = GatedAttention(4, False).apply({"params": p["attention"]}, h)
  z, w_ref = attention_pool(h, s, mask)
  ref = z @ p["classifier"]["kernel"] + p["classifier"]["bias"]
  np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(w, w_ref, rtol=1e-6)


def test_attention_mil_errors(model_and_params):
  model, params, _ = model_and_params
  with pytest.raises(ValueError, match=r"AttentionMIL: `mask` must have shape .*mask\(2, 3\)"):
    model.apply(params, jnp.zeros((2, 4, 3, 3)), jnp.ones((2, 3), bool))
  with pytest.raises(ValueError, match=r"`instances` must have shape"):
    model.apply(params, jnp.zeros((2, 4)), jnp.ones((2, 4), bool))
