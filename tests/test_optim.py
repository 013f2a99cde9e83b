"""Optimizers and schedules."""

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


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
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
