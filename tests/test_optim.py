"""Optimizers and schedules."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssl_jax import optim
from ssl_jax.train.config import base_config
from ssl_jax.errors import UserError


def test_warmup_cosine_schedule():
  o = base_config().optim
  o.lr, o.scale_lr_with_batch, o.warmup_steps, o.end_lr_factor = 0.3, True, 10, 0.0
  s = optim.make_schedule(o, batch_size=512, total_steps=110)
  peak = 0.3 * 512 / 256
  np.testing.assert_allclose(s(0), 0.0)
  np.testing.assert_allclose(s(5), peak / 2, rtol=1e-6)
  np.testing.assert_allclose(s(10), peak, rtol=1e-6)
  np.testing.assert_allclose(s(60), peak / 2, rtol=1e-5)  # halfway through the cosine
  np.testing.assert_allclose(s(110), 0.0, atol=1e-7)


def test_decay_mask_skips_biases_and_scales():
  params = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)}, "bn": {"scale": jnp.ones(4)}}
  mask = optim.decay_mask(params)
  assert mask == {"dense": {"kernel": True, "bias": False}, "bn": {"scale": False}}


@pytest.mark.parametrize("name", [n for n in optim.OPTIMIZERS if n != "adam"])
def test_each_optimizer_updates_and_decays_only_kernels(name):
  o = base_config().optim
  o.name, o.weight_decay, o.warmup_steps, o.lr = name, 0.1, 0, 0.1
  tx, _ = optim.make_optimizer(o, batch_size=256, total_steps=10)
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
  zero = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
  updates, _ = tx.update(zero, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  assert float(jnp.max(new["kernel"])) < 1.0  # decayed with zero gradient
  np.testing.assert_array_equal(new["bias"], params["bias"])  # not decayed


def test_unknown_optimizer():
  o = base_config().optim
  o.name = "adam2"
  with pytest.raises(UserError, match="Unknown optimizer optim.name='adam2'"):
    optim.make_optimizer(o, batch_size=256, total_steps=10)


def _torch_adam_reference(params, grads, *, lr, b1, b2, eps, wd):
  """PyTorch's Adam(weight_decay=wd) (torch/optim/adam.py, single-tensor path), written out in NumPy.

  For t = 1, 2, ...:  g = grad + wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  """
  p = {k: np.array(v, np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v2 = {k: np.zeros_like(v) for k, v in p.items()}
  out = []
  for t, grad in enumerate(grads, start=1):
    for k in p:
      g = np.array(grad[k], np.float64) + wd * p[k]
      m[k] = b1 * m[k] + (1 - b1) * g
      v2[k] = b2 * v2[k] + (1 - b2) * g * g
      denom = np.sqrt(v2[k]) / np.sqrt(1 - b2 ** t) + eps
      p[k] = p[k] - (lr / (1 - b1 ** t)) * m[k] / denom
    out.append({k: v.copy() for k, v in p.items()})
  return out


@pytest.mark.parametrize("wd", [0.0, 1e-4, 0.3])
def test_adam_is_pytorch_adam_with_coupled_l2(wd):
  o = base_config().optim
  o.name, o.lr, o.weight_decay, o.scale_lr_with_batch = "adam", 0.01, wd, False
  o.warmup_steps, o.end_lr_factor, o.b1, o.b2 = 0, 1.0, 0.8, 0.95
  tx, _ = optim.make_optimizer(o, batch_size=16, total_steps=10)
  rng = np.random.default_rng(0)
  params = {"kernel": rng.normal(size=(3, 4)).astype(np.float32), "bias": rng.normal(size=4).astype(np.float32)}
  # The last two gradients are zero: then only the L2 term moves the weights, at Adam's normalised rate.
  grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()} for _ in range(4)]
  grads += [{k: np.zeros_like(v) for k, v in params.items()} for _ in range(2)]
  expected = _torch_adam_reference(params, grads, lr=0.01, b1=0.8, b2=0.95, eps=1e-8, wd=wd)
  p = {k: jnp.asarray(v) for k, v in params.items()}
  state = tx.init(p)
  for g, want in zip(grads, expected):
    updates, state = tx.update({k: jnp.asarray(v) for k, v in g.items()}, state, p)
    p = optax.apply_updates(p, updates)
    for k in p:
      np.testing.assert_allclose(np.asarray(p[k]), want[k], rtol=1e-5, atol=1e-6)


def test_adam_decays_every_parameter_like_pytorch_and_adamw_barely():
  """With zero data gradient, coupled L2 moves each weight by ~lr (Adam normalises wd * w); AdamW by lr * wd * w."""
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
  zero = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
  moved = {}
  for name in ("adam", "adamw"):
    o = base_config().optim
    o.name, o.lr, o.weight_decay, o.scale_lr_with_batch, o.warmup_steps = name, 5e-4, 1e-4, False, 0
    o.end_lr_factor = 1.0
    tx, _ = optim.make_optimizer(o, batch_size=16, total_steps=10)
    updates, _ = tx.update(zero, tx.init(params), params)
    moved[name] = jax.tree.map(lambda u: float(jnp.max(jnp.abs(u))), updates)
  np.testing.assert_allclose(moved["adam"]["kernel"], 5e-4, rtol=1e-3)
  np.testing.assert_allclose(moved["adam"]["bias"], 5e-4, rtol=1e-3)  # biases too, as torch does
  np.testing.assert_allclose(moved["adamw"]["kernel"], 5e-8, rtol=1e-3)
  assert moved["adamw"]["bias"] == 0.0
