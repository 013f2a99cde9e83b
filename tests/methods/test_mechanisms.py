"""What makes each method that method, tested on one step of its tiny run."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax.data import views as views_lib
from ssl_jax.losses.metric import batch_hard_triplet, batch_semi_hard_triplet
from ssl_jax.losses.mil import clam_instance_loss
from ssl_jax.methods import common
from ssl_jax.methods.mil import mil
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


def _mil_state(**overrides):
  """(method, params, batch) of a fresh tiny `mil` run: no step is compiled."""
  plan = trainer.preflight(tiny_config("mil", **overrides))
  batch = trainer.load_stream(plan).global_batch(0)
  state = plan.module.init(plan.method, jax.random.PRNGKey(0))
  return plan.method, state.params, batch


@pytest.mark.parametrize("pooling", mil.POOLINGS)
def test_mil_padding_has_no_effect_through_the_whole_model(pooling):
  clam = 0.3 if pooling in mil.ATTENTION_POOLINGS else 0.0
  m, params, batch = _mil_state(**{"mil.pooling": pooling, "mil.clam_weight": clam})
  mask = np.asarray(batch["mask"])
  assert (~mask).any(), "the tiny bags must have padding for this test to mean anything"
  x = np.asarray(mil.normalize(m, jnp.asarray(batch["instances"])))
  garbage = np.where(mask[..., None, None, None], x, np.nan).astype(np.float32)  # NaN in every padded slot
  clean, dirty = mil.forward(m, params, x, mask), mil.forward(m, params, garbage, mask)
  np.testing.assert_array_equal(clean["bag_logits"], dirty["bag_logits"])
  assert np.isfinite(clean["bag_logits"]).all()
  if "attention" in clean:
    np.testing.assert_array_equal(clean["attention"], dirty["attention"])
    assert (np.asarray(clean["attention"])[~mask] == 0).all(), "padded instances get exactly zero weight"
  if pooling in mil.ATTENTION_POOLINGS:
    np.testing.assert_allclose(np.asarray(clean["attention"]).sum(1), 1.0, rtol=1e-5)
  if pooling == "instance_mean":  # logit of the mean instance probability, over the real instances only
    s = np.asarray(clean["scores"], np.float64)
    p = np.array([np.mean(1 / (1 + np.exp(-s[b][mask[b]]))) for b in range(len(s))])
    np.testing.assert_allclose(clean["bag_logits"], np.log(p / (1 - p)), rtol=1e-4, atol=1e-5)
  if pooling == "instance_max":
    np.testing.assert_allclose(clean["bag_logits"], [s[mask[b]].max() for b, s in enumerate(
        np.asarray(clean["scores"]))], rtol=1e-6)

  def total_loss(inputs):  # the whole training loss (with CLAM's instance loss where it applies)
    return mil.loss(m, params, inputs, mask, jnp.asarray(batch["label"]))[0]

  for inputs in (x, garbage):
    grads = np.asarray(jax.grad(total_loss)(jnp.asarray(inputs)))
    assert (grads[~mask] == 0).all(), "padded instances get exactly zero gradient"
    assert np.isfinite(grads).all() and np.abs(grads[mask]).max() > 0
  np.testing.assert_array_equal(total_loss(x), total_loss(garbage))


def test_mil_clam_adds_the_instance_loss_on_the_most_and_least_attended():
  m, params, batch = _mil_state(**{"mil.pooling": "attention", "mil.clam_weight": 0.3, "mil.clam_top_k": 2})
  x, mask, labels = mil.normalize(m, jnp.asarray(batch["instances"])), batch["mask"], batch["label"]
  total, metrics = mil.loss(m, params, x, mask, labels)
  out = mil.forward(m, params, x, mask)
  z = m.instance_classifier.apply({"params": params["instance_classifier"]}, out["embeddings"])
  z = np.asarray(z).reshape(*mask.shape, 2, 2)[np.arange(len(labels)), :, labels]  # the bag class's classifier
  inst = np.mean(clam_instance_loss(out["scores"], z, mask, top_k=2))
  np.testing.assert_allclose(metrics["train/instance_loss"], inst, rtol=1e-5)
  np.testing.assert_allclose(total, 0.7 * metrics["train/bag_loss"] + 0.3 * inst, rtol=1e-5)


def test_mil_augmentation_shifts_or_flips_each_instance_and_dropout_acts_in_training():
  m, params, batch = _mil_state(**{"mil.pooling": "attention", "mil.augment_shift": 2, "mil.augment_flip": 0.5,
                                   "mil.attention_dropout": 0.5})
  inst = jnp.asarray(batch["instances"])
  plain = np.asarray(mil.normalize(m, inst))
  aug = np.asarray(mil.normalize(m, inst, jax.random.PRNGKey(1)))
  zero = (0.0 - np.asarray(m.mean)) / np.asarray(m.std)  # the normalised value of a black pixel
  b, n, h, w = plain.shape[:4]
  for i in range(b):
    for j in range(n):
      if not np.asarray(batch["mask"])[i, j] or np.all(plain[i, j] == zero):
        continue
      # each instance is one of the (2s+1)^2 shifts of itself or of its mirror, zero filled
      candidates = []
      for img in (plain[i, j], plain[i, j][:, ::-1]):
        padded = np.pad(img, ((2, 2), (2, 2), (0, 0)), constant_values=zero.item())
        candidates += [padded[dy:dy + h, dx:dx + w] for dy in range(5) for dx in range(5)]
      assert any(np.allclose(aug[i, j], c, atol=1e-6) for c in candidates), (i, j)
  assert not np.allclose(aug, plain), "the augmentation must change some instances"
  x, mask = jnp.asarray(plain), batch["mask"]
  out = mil.forward(m, params, x, mask)
  np.testing.assert_array_equal(out["bag_logits"], mil.forward(m, params, x, mask)["bag_logits"])
  dropped = mil.forward(m, params, x, mask, dropout_rng=jax.random.PRNGKey(2))
  assert not np.allclose(dropped["scores"], out["scores"]), "dropout acts while training"
  np.testing.assert_allclose(np.asarray(dropped["attention"]).sum(1), 1.0, rtol=1e-5)
  assert (np.asarray(dropped["attention"])[~np.asarray(mask)] == 0).all()


def test_mil_refuses_an_encoder_with_batchnorm_and_bad_poolings():
  config = tiny_config("mil", **{"model.encoder": "convnet", "model.widths": (8, 16)})
  with pytest.raises(ValueError, match="use model.encoder=lenet_mil or mlp"):
    trainer.preflight(config)
  with pytest.raises(ValueError, match="is not a MIL pooling; use one of instance_max"):
    trainer.preflight(tiny_config("mil", **{"mil.pooling": "attn"}))
  with pytest.raises(ValueError, match="CLAM's instance loss ranks instances by attention"):
    trainer.preflight(tiny_config("mil", **{"mil.pooling": "embedding_max", "mil.clam_weight": 0.3}))
  with pytest.raises(ValueError, match="mil.augment_shift must be >= 0"):
    trainer.preflight(tiny_config("mil", **{"mil.augment_flip": 1.5}))


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


def test_siamese_pairs_are_balanced_and_the_loss_is_the_contrastive_formula():
  """The step's loss equals a naive NumPy loop of L = (1-Y) D^2/2 + Y max(0, m-D)^2/2 over its pairs."""
  from ssl_jax.methods.metric import siamese
  plan, before, _, metrics, batch = _first_step("siamese")
  m = plan.method
  state = jax.tree.map(jnp.asarray, before)
  k_view, k_pairs = jax.random.split(common.step_key(state))
  x = views_lib.weak_view(k_view, jnp.asarray(batch["image"]), m.views)
  first, second, y = map(np.asarray, siamese.balanced_pairs(k_pairs, jnp.asarray(batch["label"])))
  labels = batch["label"]
  b = len(labels)
  assert len(y) == 2 * b and y.sum() == b, "as many dissimilar as similar pairs"
  assert np.all((labels[first] == labels[second]) == (y == 0)) and np.all(first != second)
  e = np.asarray(triplet.embed(m, state.params, state.batch_stats, x, train=True)[0], np.float64)
  total = 0.0
  for i, j, yy in zip(first, second, y):
    d = np.sqrt(np.sum((e[i] - e[j]) ** 2))
    total += (1 - yy) * 0.5 * d ** 2 + yy * 0.5 * max(0.0, m.margin - d) ** 2
  np.testing.assert_allclose(metrics["train/loss"], total / len(y), rtol=1e-5)
  assert set(np.unique(labels)) <= {0, 1, 2, 3, 4}, "held-out classes never reach training"


@pytest.mark.parametrize("lam", [0.0, 0.3, 2.0])
def test_gradient_reversal_flips_and_scales_the_gradient_only(lam):
  from ssl_jax.methods.transfer.dann import gradient_reversal
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  w = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  f = lambda x, lam: jnp.sum(w * jnp.tanh(gradient_reversal(x, lam)))
  plain = lambda x: jnp.sum(w * jnp.tanh(x))
  np.testing.assert_array_equal(jax.jit(gradient_reversal)(x, lam), x)  # the forward pass is the identity
  np.testing.assert_allclose(jax.jit(f)(x, lam), plain(x), rtol=1e-6)
  gx, glam = jax.jit(jax.grad(f, argnums=(0, 1)))(x, jnp.float32(lam))
  np.testing.assert_allclose(gx, -lam * jax.grad(plain)(x), rtol=1e-6, atol=1e-7)
  assert float(glam) == 0.0


def test_dann_lambda_and_learning_rate_follow_the_paper():
  from ssl_jax.methods.transfer import dann
  p = np.linspace(0, 1, 11)
  np.testing.assert_allclose(dann.adaptation_weight(p), 2 / (1 + np.exp(-10 * p)) - 1, rtol=1e-6)
  lr = dann.annealed_lr(0.01, 100)
  np.testing.assert_allclose([lr(0), lr(50), lr(100)], [0.01, 0.01 / 6 ** 0.75, 0.01 / 11 ** 0.75], rtol=1e-6)
  plan, _, _, metrics, _ = _first_step("dann")
  assert float(metrics["train/lambda"]) == 0.0 and "train/domain_loss" in metrics, "lambda_0 = 0"
  _, _, after, metrics, _ = _first_step("dann", **{"dann.domain_weight": 0.0})
  assert "domain_loss" not in " ".join(metrics), "source-only trains no domain classifier"


def test_finetune_freezes_the_lower_stages_and_scales_the_pretrained_rate():
  from ssl_jax.methods.transfer import finetune
  sgd = {"optim.name": "sgd", "optim.momentum": 0.0, "optim.weight_decay": 0.0, "optim.warmup_steps": 0}
  _, before, after, _, _ = _first_step("finetune", **{"finetune.train_stages": 1, **sgd})
  enc0, enc1 = before.params["encoder"], after.params["encoder"]
  _close(enc0["conv0_0"], enc1["conv0_0"], rtol=0, atol=0)  # stage 0 of 2 is frozen ...
  _close(before.batch_stats["encoder"]["bn0_0"], after.batch_stats["encoder"]["bn0_0"], rtol=0, atol=0)  # ... its BN too
  assert not np.allclose(enc0["conv1_0"]["kernel"], enc1["conv1_0"]["kernel"]), "the top stage trains"
  deltas = {}
  for scale in (1.0, 0.1):
    _, b, a, _, _ = _first_step("finetune", init_from="pretend", **{"finetune.pretrained_lr_scale": scale, **sgd})
    deltas[scale] = jax.tree.map(lambda x, y: y - x, b.params, a.params)
  # (float32 parameters: a difference of two parameters near 1 is exact only to about 1e-7)
  _close(jax.tree.map(lambda d: 0.1 * d, deltas[1.0]["encoder"]), deltas[0.1]["encoder"], rtol=1e-3, atol=3e-7)
  assert max(float(np.abs(d).max()) for d in jax.tree.leaves(deltas[1.0]["encoder"])) > 1e-4, "the encoder moved"
  _close(deltas[1.0]["classifier"], deltas[0.1]["classifier"])  # the new head keeps the full rate
  labels = finetune.part_labels(before.params, num_stages=2, train_stages=0, pretrained=False)
  assert set(jax.tree.leaves(labels)) == {"head"}, "from scratch every part gets the full rate"
  # LP-FT: during head_only_steps the pretrained encoder (and its BatchNorm statistics) does not move.
  _, b, a, _, _ = _first_step("finetune", init_from="pretend", **{"finetune.head_only_steps": 3, **sgd})
  _close(b.params["encoder"], a.params["encoder"], rtol=0, atol=0)
  _close(b.batch_stats, a.batch_stats, rtol=0, atol=0)
  assert not np.allclose(b.params["classifier"]["dense"]["kernel"], a.params["classifier"]["dense"]["kernel"])


def test_simsiam_stops_the_gradient_of_the_target_branch():
  """D(p1, sg(z2)): the loss moves the predictions, never the projections it is compared with."""
  from ssl_jax.methods.ssl.simsiam import simsiam_loss
  p, z = jax.random.normal(jax.random.key(0), (2, 8, 4))
  g_p, g_z = jax.grad(simsiam_loss, argnums=(0, 1))(p, z)
  assert float(jnp.abs(g_z).max()) == 0.0 and float(jnp.abs(g_p).max()) > 0.0
  pn, zn = p / jnp.linalg.norm(p, axis=1, keepdims=True), z / jnp.linalg.norm(z, axis=1, keepdims=True)
  want = -0.5 * (jnp.mean(jnp.sum(pn[:4] * zn[4:], 1)) + jnp.mean(jnp.sum(pn[4:] * zn[:4], 1)))
  np.testing.assert_allclose(simsiam_loss(p, z), want, rtol=1e-6)


def test_simsiam_predictor_learns_at_the_constant_base_rate():
  """With fixed_predictor_lr, late in the cosine schedule the predictor still moves at optim.lr."""
  from ssl_jax.methods.ssl import simsiam
  config = tiny_config("simsiam", **{"optim.name": "sgd", "optim.momentum": 0.0, "optim.weight_decay": 0.0,
                                     "optim.lr": 1.0, "optim.scale_lr_with_batch": False,
                                     "optim.grad_clip_norm": 0.0})
  tx, schedule = simsiam.optimizer(config)
  params = {"encoder": jnp.ones(3), "projector": jnp.ones(2), "predictor": jnp.ones(2)}
  grads = jax.tree.map(jnp.ones_like, params)
  state = tx.init(params)
  for _ in range(10):  # walk to the end of the 12-step schedule
    updates, state = tx.update(grads, state, params)
  lr_now = float(schedule(9))  # the 10th update uses the schedule at count 9
  assert lr_now < 0.5
  np.testing.assert_allclose(updates["predictor"], -1.0 * np.ones(2), rtol=1e-6)
  np.testing.assert_allclose(updates["encoder"], -lr_now * np.ones(3), rtol=1e-5)


def test_self_training_rounds_start_from_the_last_checkpoint_with_a_frozen_teacher():
  """Round 0 learns from labels alone; the first step of round 1 freezes the network that ended round 0 as
  the teacher, restarts the optimizer and its schedule, and from then on the teacher's labels count."""
  plan = trainer.preflight(tiny_config("self_training", total_steps=6,
                                      **{"self_training.rounds": 2, "self_training.threshold": 0.0}))
  m, stream = plan.method, trainer.load_stream(plan)
  assert m.steps_per_round == 2
  step = jax.jit(functools.partial(plan.module.step, m))
  state = jax.jit(functools.partial(plan.module.init, m))(jax.random.PRNGKey(0))
  lrs, snapshots = [], []
  for k in range(4):
    snapshots.append(jax.device_get(state))
    state, metrics = step(state, stream.global_batch(k))
    metrics = jax.device_get(metrics)
    lrs.append(float(metrics["train/lr"]))
    assert metrics["train/round"] == k // 2
    if k < 2:  # the teacher's round: the unlabelled loss is computed but weighs nothing
      np.testing.assert_allclose(metrics["train/loss"], metrics["train/sup_loss"], rtol=1e-6)
    else:
      np.testing.assert_allclose(metrics["train/loss"], metrics["train/sup_loss"] + metrics["train/unsup_loss"],
                                 rtol=1e-5)
      assert metrics["train/unsup_loss"] > 0
    if k == 2:  # the first step of round 1: the teacher is the network of the end of round 0
      teacher = jax.device_get(state.extra["teacher"])
      _close(teacher["params"], snapshots[2].params, rtol=0, atol=0)
      _close(teacher["batch_stats"], snapshots[2].batch_stats, rtol=0, atol=0)
    if k == 3:  # ... and it stays frozen while the student learns
      _close(jax.device_get(state.extra["teacher"])["params"], snapshots[2].params, rtol=0, atol=0)
  assert lrs[2] == lrs[0] and lrs[3] == lrs[1], f"the schedule restarts each round: {lrs}"


def test_self_training_teacher_labels_clean_images_soft_or_hard():
  from ssl_jax.methods import classifier  # pylint: disable=g-import-not-at-top
  from ssl_jax.methods.semi import self_training  # pylint: disable=g-import-not-at-top
  plan = trainer.preflight(tiny_config("self_training", **{"self_training.threshold": 0.12}))
  m = plan.method
  state = plan.module.init(m, jax.random.PRNGKey(1))
  x = jax.random.uniform(jax.random.PRNGKey(2), (6, *m.net.image_shape))
  teacher = state.extra["teacher"]
  logits, _ = classifier.logits(m.net, teacher["params"], teacher["batch_stats"], x, train=False)
  probs = np.asarray(jax.nn.softmax(logits))
  soft, mask = self_training.teacher_targets(m, teacher, x)
  np.testing.assert_allclose(soft, probs, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(mask, (probs.max(-1) >= 0.12).astype(np.float32))
  hard, _ = self_training.teacher_targets(dataclasses.replace(m, soft_targets=False), teacher, x)
  np.testing.assert_array_equal(hard, np.eye(probs.shape[1])[probs.argmax(-1)])


def test_co_training_each_network_is_taught_only_by_the_other():
  from ssl_jax.methods.semi import co_training  # pylint: disable=g-import-not-at-top
  logits = np.array([[2.0, 0.0, 0.0], [0.1, 0.0, 0.2], [0.0, 9.0, 0.0]], np.float32)
  labels, mask = co_training.cross_pseudo_labels(jnp.asarray(logits), 0.6)
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  np.testing.assert_array_equal(labels, probs.argmax(1))
  np.testing.assert_array_equal(mask, (probs.max(1) >= 0.6).astype(np.float32))
  # The teacher's side gets no gradient through the pseudo labels.
  grad = jax.grad(lambda t: jnp.sum(co_training.cross_pseudo_labels(t, 0.0)[1] * t.sum()))(jnp.asarray(logits))
  np.testing.assert_allclose(grad, np.full_like(logits, 3.0))  # only through t.sum(), times the mask sum 3
  # Nothing confident: each network learns from the labels alone.
  _, before, after, metrics, _ = _first_step("co_training", **{"co_training.threshold": 1.0, "optim.warmup_steps": 0})
  for tag in ("a", "b"):
    np.testing.assert_allclose(metrics[f"train/mask_ratio_{tag}"], 0.0)
  np.testing.assert_allclose(metrics["train/loss"], metrics["train/sup_loss_a"] + metrics["train/sup_loss_b"],
                             rtol=1e-5)
  # Two different networks (own initialisations), both updated.
  flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
  assert not np.allclose(flat(before.params["net_a"]), flat(before.params["net_b"]))
  for name in co_training.NETS:
    assert not np.allclose(flat(before.params[name]), flat(after.params[name]))


def test_co_training_predicts_the_average_of_both_networks():
  from ssl_jax.methods import classifier  # pylint: disable=g-import-not-at-top
  from ssl_jax.methods.semi import co_training  # pylint: disable=g-import-not-at-top
  plan = trainer.preflight(tiny_config("co_training"))
  m = plan.method
  state = plan.module.init(m, jax.random.PRNGKey(0))
  images = (np.random.default_rng(0).random((5, *m.net.image_shape)) * 255).astype(np.uint8)
  out = co_training.predict(m, state, jnp.asarray(images))
  x = views_lib.eval_view(jnp.asarray(images), mean=m.net.mean, std=m.net.std)
  probs = [np.asarray(jax.nn.softmax(classifier.logits(m.net, state.params[n], state.batch_stats[n], x,
                                                       train=False)[0])) for n in co_training.NETS]
  np.testing.assert_allclose(np.exp(out["logits"]), (probs[0] + probs[1]) / 2, rtol=1e-5, atol=1e-6)


def test_label_propagation_equals_a_numpy_reference_and_keeps_the_given_labels():
  """Zhou et al.'s iteration on the kNN graph, written densely in NumPy from the formula, gives the same F;
  the labelled nodes keep their one-hot labels at every iteration."""
  plan = trainer.preflight(tiny_config("label_propagation"))
  m, stream = plan.method, trainer.load_stream(plan)
  assert (m.num_blocks, m.block) == (3, 512)
  step = jax.jit(functools.partial(plan.module.step, m))
  state = jax.jit(functools.partial(plan.module.init, m))(jax.random.PRNGKey(0))
  for s in range(12):
    state, metrics = step(state, stream.global_batch(s))
    if s >= 6:
      assert float(metrics["train/labelled_kept"]) == 1.0
  extra = jax.device_get(state.extra)
  # NumPy: unit features of the normalised pixels (stored in bfloat16), k nearest other nodes, a = max(0, cos)^3.
  train = stream.eval_data["unlabelled_train"]
  n = len(train)
  x = (train.images.reshape(n, -1).astype(np.float32) / 255.0 - np.float32(m.mean[0])) / np.float32(m.std[0])
  f = x / np.linalg.norm(x, axis=1, keepdims=True)
  f = f.astype(jnp.bfloat16).astype(np.float32)
  sims = f @ f.T
  np.fill_diagonal(sims, -np.inf)
  nbrs = np.argsort(-sims, axis=1)[:, :m.k]
  a = np.zeros((n, n), np.float64)
  for i in range(n):
    a[i, nbrs[i]] = np.maximum(sims[i, nbrs[i]], 0.0) ** m.gamma
  w = a + a.T
  d = w.sum(1)
  s_norm = w / np.sqrt(np.outer(d, d))
  y = np.zeros((n, m.num_classes))
  labelled = stream.labelled_indices
  y[labelled, train.labels[labelled]] = 1.0
  f_ref = y.copy()
  for _ in range(6):
    f_ref = m.alpha * s_norm @ f_ref + (1 - m.alpha) * y
    f_ref[labelled] = y[labelled]
  np.testing.assert_array_equal(np.sort(extra["neighbors"][:n], 1), np.sort(nbrs, 1))
  np.testing.assert_allclose(extra["F"][:n], f_ref, rtol=2e-4, atol=1e-6)
  np.testing.assert_array_equal(extra["F"][labelled], y[labelled])
  assert not extra["valid"][n:].any() and not extra["F"][n:].any(), "the padding of the last block is no node"


def test_label_propagation_refuses_bad_settings_in_one_sentence():
  with pytest.raises(ValueError, match="give that run with --config.init_from=WORKDIR"):
    trainer.preflight(tiny_config("label_propagation", **{"label_propagation.features": "encoder"}))
  with pytest.raises(ValueError, match=r"set total_steps to 6 \+ the number of propagation iterations"):
    trainer.preflight(tiny_config("label_propagation", total_steps=6))
  with pytest.raises(ValueError, match="0 < alpha < 1"):
    trainer.preflight(tiny_config("label_propagation", **{"label_propagation.alpha": 1.0}))
