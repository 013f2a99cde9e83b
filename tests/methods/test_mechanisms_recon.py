"""What makes each pretext, masked-modelling and auto-encoder method that method, on one step of its tiny run."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


def _first_step(method, **overrides):
  """(plan, state before, state after, metrics, batch) of step 0 of a tiny run on one device."""
  plan = trainer.preflight(tiny_config(method, **overrides))
  batch = trainer.load_stream(plan).global_batch(0)
  state = jax.jit(functools.partial(plan.module.init, plan.method))(jax.random.PRNGKey(0))
  before = jax.device_get(state)
  after, metrics = jax.jit(functools.partial(plan.module.step, plan.method))(state, batch)
  return plan, before, jax.device_get(after), jax.device_get(metrics), batch


def _close(a, b, **kw):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **{"rtol": 1e-5, "atol": 1e-6, **kw}), a, b)


# ------------------------------------------------------------------------------------------ rotnet


def test_rotnet_feeds_all_four_rotations_with_their_labels():
  from ssl_jax.methods.ssl import rotnet
  plan = trainer.preflight(tiny_config("rotnet", **{"rotnet.augment": False}))
  images = trainer.load_stream(plan).global_batch(0)["image"][:5]
  x, labels = rotnet.rotated_batch(plan.method, jax.random.PRNGKey(0), images)
  m = plan.method
  norm = (images.astype(np.float32) / 255.0 - np.asarray(m.mean)) / np.asarray(m.std)
  assert x.shape == (20, *images.shape[1:])
  np.testing.assert_array_equal(labels, np.tile(np.arange(4), 5))
  for i in range(5):
    for k in range(4):  # k quarter turns counter-clockwise, written out: rot90 = flipud(transpose)
      want = norm[i]
      for _ in range(k):
        want = np.flip(np.transpose(want, (1, 0, 2)), axis=0)
      np.testing.assert_allclose(x[4 * i + k], want, rtol=1e-6, atol=1e-6)
  # The loss is the 4-way cross-entropy of the head on exactly those inputs.
  plan, before, _, metrics, batch = _first_step("rotnet", **{"rotnet.augment": False, "eval.online_probe": False})
  x, labels = rotnet.rotated_batch(plan.method, None, batch["image"])
  feats, _ = m.encoder.apply({"params": before.params["encoder"], "batch_stats": before.batch_stats["encoder"]},
                             x, train=True, mutable=["batch_stats"])
  logits = m.head.apply({"params": before.params["head"]}, feats, train=True)
  want = np.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  np.testing.assert_allclose(metrics["train/loss"], want, rtol=1e-5)
