"""Online probe: loss/accuracy values, no gradient reaches the features, sharded == global."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssl_jax.evaluation.online_probe import OnlineProbe, probe_loss_and_accuracy


def _batch(b=16, c=5, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(b, c)), jnp.float32), jnp.asarray(rng.integers(0, c, b))


def test_loss_and_accuracy_values():
  logits, labels = _batch()
  loss, top1 = probe_loss_and_accuracy(logits, labels)
  lg = np.asarray(logits, np.float64)
  log_probs = lg - np.log(np.sum(np.exp(lg), axis=1, keepdims=True))
  want = -np.mean([log_probs[i, y] for i, y in enumerate(np.asarray(labels))])
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(top1, np.mean(lg.argmax(1) == np.asarray(labels)), rtol=1e-6)
  assert loss.shape == () and top1.shape == ()


def test_gradient_does_not_reach_features_or_encoder():
  probe = OnlineProbe(num_classes=5)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(16, 8)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 5, 16))
  params = {"encoder": jnp.asarray(rng.normal(size=(8, 6)), jnp.float32),
            "probe": probe.init(jax.random.key(0), jnp.zeros((1, 6)))["params"]}

  def ssl_loss(p):
    return jnp.mean(jnp.tanh(x @ p["encoder"]) ** 2)

  def total_loss(p):
    feats = jnp.tanh(x @ p["encoder"])
    logits = probe.apply({"params": p["probe"]}, feats)
    return ssl_loss(p) + probe_loss_and_accuracy(logits, labels)[0]

  feats = jnp.tanh(x @ params["encoder"])
  g_feats = jax.grad(lambda f: probe_loss_and_accuracy(
      probe.apply({"params": params["probe"]}, f), labels)[0])(feats)
  np.testing.assert_array_equal(g_feats, np.zeros_like(feats))

  grads = jax.grad(total_loss)(params)
  # The encoder sees only the self-supervised loss; the probe is trained.
  np.testing.assert_array_equal(grads["encoder"], jax.grad(ssl_loss)(params)["encoder"])
  assert float(jnp.abs(grads["probe"]["head"]["kernel"]).max()) > 1e-3


def test_sharded_equals_global():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  logits, labels = _batch(b=32)
  sharded = jax.jit(jax.shard_map(lambda l, y: probe_loss_and_accuracy(l, y, axis_name="data"), mesh=mesh,
                                  in_specs=(P("data"), P("data")), out_specs=P()))(logits, labels)
  for got, want in zip(sharded, probe_loss_and_accuracy(logits, labels)):
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_input_raises():
  logits, labels = _batch()
  with pytest.raises(ValueError, match=r"one class id per row.*logits\(16, 5\), labels\(15,\)"):
    probe_loss_and_accuracy(logits, labels[:15])
  with pytest.raises(ValueError, match="must have 2 dimensions"):
    probe_loss_and_accuracy(logits[0], labels)
