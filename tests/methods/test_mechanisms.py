"""What makes each method that method, tested on one step of its tiny run."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax.data import views as views_lib
from ssl_jax.losses.metric import batch_hard_triplet, batch_semi_hard_triplet
from ssl_jax.methods import common
from ssl_jax.methods.mil import gated_attention_mil
from ssl_jax.methods.metric import triplet
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


def test_ema_schedule_is_byols_cosine():
  tau = common.cosine_ema_schedule(0.99, 100)
  for k in (0, 13, 50, 77, 100):
    want = 1 - (1 - 0.99) * (np.cos(np.pi * k / 100) + 1) / 2
    np.testing.assert_allclose(tau(k), want, rtol=1e-6)
  np.testing.assert_allclose(common.cosine_ema_schedule(0.9, 10, final=0.95)(10), 0.95, rtol=1e-6)
  with pytest.raises(ValueError, match="base <= final"):
    common.cosine_ema_schedule(0.99, 10, final=0.9)


def test_byol_target_is_the_ema_of_the_online_network():
  plan, before, after, metrics, _ = _first_step("byol")
  tau = float(plan.method.tau(0))
  np.testing.assert_allclose(metrics["train/tau"], tau)
  np.testing.assert_allclose(tau, 0.99)
  want = jax.tree.map(lambda t, o: tau * t + (1 - tau) * o, before.extra["target"]["params"],
                      {k: after.params[k] for k in ("encoder", "projector")})
  _close(after.extra["target"]["params"], want)
  assert "predictor" in after.params and "predictor" not in after.extra["target"]["params"]
  # The target is not the online network: the step moved the online weights, the target only by 1 - tau.
  enc = lambda s: s["encoder"]["conv0_0"]["kernel"]
  online_move = np.abs(enc(after.params) - enc(before.params)).max()
  target_move = np.abs(enc(after.extra["target"]["params"]) - enc(before.extra["target"]["params"])).max()
  np.testing.assert_allclose(target_move, (1 - tau) * online_move, rtol=1e-3)


def test_online_probe_never_moves_the_encoder():
  """Labels reach only the probe: the encoder's update is the same with and without it."""
  _, _, with_probe, m_with, _ = _first_step("simclr", **{"eval.online_probe": True})
  _, _, without, m_without, _ = _first_step("simclr", **{"eval.online_probe": False})
  assert "train/probe_top1" in m_with and "train/probe_top1" not in m_without
  _close(with_probe.params["encoder"], without.params["encoder"], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(m_with["train/loss"], m_without["train/loss"], rtol=1e-6)


@pytest.mark.parametrize("threshold,mask_ratio", [(1.0, 0.0), (0.0, 1.0)])
def test_fixmatch_pseudo_labels_only_above_the_threshold(threshold, mask_ratio):
  _, _, _, metrics, _ = _first_step("fixmatch", **{"fixmatch.threshold": threshold})
  np.testing.assert_allclose(metrics["train/mask_ratio"], mask_ratio)
  if mask_ratio == 0.0:  # nothing confident: only the labelled loss is left
    np.testing.assert_allclose(metrics["train/unsup_loss"], 0.0)
    np.testing.assert_allclose(metrics["train/loss"], metrics["train/sup_loss"], rtol=1e-6)
  else:
    assert metrics["train/unsup_loss"] > 0


@pytest.mark.parametrize("method", ["fixmatch", "supervised"])
def test_the_evaluated_ema_model_averages_the_parameters(method):
  plan, before, after, _, _ = _first_step(method)
  decay = plan.method.ema_decay
  _close(after.extra["ema"]["params"],
         jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, before.extra["ema"]["params"], after.params))
  _close(after.extra["ema"]["batch_stats"], after.batch_stats)


def test_supervised_baseline_sees_only_the_labelled_split():
  plan = trainer.preflight(tiny_config("supervised"))
  stream = trainer.load_stream(plan)
  assert set(stream.groups) == {"labelled"} and stream.name == "digits.0@50"
  labelled = set(stream.labelled_indices.tolist())
  fixmatch_plan = trainer.preflight(tiny_config("fixmatch"))
  assert set(trainer.load_stream(fixmatch_plan).labelled_indices.tolist()) == labelled, "the same split"


def test_mil_padding_has_no_effect_through_the_whole_model():
  plan, before, _, _, batch = _first_step("gated_attention_mil")
  m, params = plan.method, before.params
  mask = jnp.asarray(batch["mask"])
  clean = jnp.asarray(batch["instances"])
  garbage = jnp.where(mask[..., None, None, None], clean,
                      jax.random.randint(jax.random.key(1), clean.shape, 0, 256).astype(jnp.uint8))
  logits_clean, weights = gated_attention_mil.bag_logits(m, params, clean, mask)
  logits_garbage, _ = gated_attention_mil.bag_logits(m, params, garbage, mask)
  np.testing.assert_array_equal(logits_clean, logits_garbage)
  assert (np.asarray(weights)[~np.asarray(mask)] == 0).all()
  np.testing.assert_allclose(np.asarray(weights).sum(1), 1.0, rtol=1e-5)

  def loss(x):  # gradient of the bag loss with respect to the (float) instances
    params_x = params
    bags, n = mask.shape
    h = m.encoder.apply({"params": params_x["encoder"]}, x.reshape(bags * n, *x.shape[2:]), train=True)
    from ssl_jax.losses.mil import attention_pool
    h = h.reshape(bags, n, -1)
    pooled, _ = attention_pool(h, m.attention.apply({"params": params_x["attention"]}, h), mask)
    return m.classifier.apply({"params": params_x["classifier"]}, pooled).sum()

  grads = jax.grad(loss)(clean.astype(jnp.float32) / 255.0)
  assert (np.asarray(grads)[~np.asarray(mask)] == 0).all(), "padded instances get exactly zero gradient"


def test_mil_refuses_an_encoder_with_batchnorm():
  config = tiny_config("gated_attention_mil", **{"model.encoder": "convnet", "model.widths": (8, 16)})
  with pytest.raises(ValueError, match="use model.encoder=lenet_mil or mlp"):
    trainer.preflight(config)


@pytest.mark.parametrize("mining,loss_fn", [("batch_hard", batch_hard_triplet),
                                            ("batch_semi_hard", batch_semi_hard_triplet)])
def test_triplet_mines_in_the_pk_batch(mining, loss_fn):
  plan, before, _, metrics, batch = _first_step("triplet", **{"triplet.mining": mining})
  m = plan.method
  state = jax.tree.map(jnp.asarray, before)
  x = views_lib.weak_view(common.step_key(state), jnp.asarray(batch["image"]), m.views)
  e, _ = triplet.embed(m, state.params, state.batch_stats, x, train=True)
  losses, valid = loss_fn(e, jnp.asarray(batch["label"]), margin=m.margin)
  np.testing.assert_allclose(metrics["train/loss"], losses.sum() / valid.sum(), rtol=1e-5)
  assert set(np.unique(batch["label"])) <= {0, 1, 2, 3, 4}, "held-out classes never reach training"


def test_gradient_step_reports_and_applies_the_update():
  params = {"w": jnp.array([1.0, -2.0])}
  state = common.TrainState(step=jnp.array(3), params=params, batch_stats={}, opt_state=optax.sgd(0.1).init(params),
                            rng=jax.random.PRNGKey(0))
  new, metrics = common.gradient_step(state, lambda p: (jnp.sum(p["w"] ** 2), ({}, {})), tx=optax.sgd(0.1),
                                      schedule=optax.constant_schedule(0.1))
  np.testing.assert_allclose(new.params["w"], [0.8, -1.6])
  assert int(new.step) == 4
  np.testing.assert_allclose(metrics["train/loss"], 5.0)
  np.testing.assert_allclose(metrics["train/l2_grads"], np.sqrt(4 + 16))
  np.testing.assert_allclose(metrics["train/lr"], 0.1)
