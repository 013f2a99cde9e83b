"""What makes each semi-supervised method that method, on one step of its tiny run, against NumPy
references written from the papers' formulas."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.methods import classifier
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


def _setup(method, at_step=0, state=None, **overrides):
  """(plan, fresh state at step `at_step`, batch of that step, jitted step) of a tiny run on one device.

  `state` (of the same model) is reused rather than initialised again when given.
  """
  plan = trainer.preflight(tiny_config(method, **overrides))
  batch = trainer.load_stream(plan).global_batch(at_step)
  if state is None:
    state = jax.jit(functools.partial(plan.module.init, plan.method))(jax.random.PRNGKey(0))
  state = state.replace(step=jnp.asarray(at_step, jnp.int32))
  return plan, state, batch, jax.jit(functools.partial(plan.module.step, plan.method))


def _run(step_fn, state, batch):
  """(state after, metrics) of one step, on the host."""
  after, metrics = step_fn(state, batch)
  return jax.device_get(after), jax.device_get(metrics)


def _softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _log_softmax(z):
  z = np.asarray(z, np.float64)
  m = z.max(-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def _logits(plan, params, batch_stats, x):
  """Training-mode logits (batch statistics) of the network on x, as the step computes them."""
  out, _ = jax.jit(functools.partial(classifier.logits, plan.method.net, train=True))(params, batch_stats, x)
  return np.asarray(out, np.float64)


# ---------------------------------------------------------------------------------------- ramp-ups


def test_rampups_are_pure_functions_of_the_step():
  for k in (0, 7, 40, 100, 500):
    t = min(k / 100, 1.0)
    np.testing.assert_allclose(classifier.rampup(k, 100, "linear"), t, rtol=1e-6)
    np.testing.assert_allclose(classifier.rampup(k, 100, "sigmoid"), np.exp(-5 * (1 - t) ** 2), rtol=1e-6)
  np.testing.assert_allclose(classifier.rampup(0, 0, "sigmoid"), 1.0)
  with pytest.raises(ValueError, match="Unknown ramp-up shape 'cosine'"):
    classifier.rampup(3, 10, "cosine")


# ------------------------------------------------------------------------------------ pseudo-label


def test_pseudo_label_ramps_up_its_weight_linearly():
  plan = trainer.preflight(tiny_config("pseudo_label"))
  m, total = plan.method, plan.config.total_steps
  for k in (0, 1, 3, total // 2, total):
    np.testing.assert_allclose(m.unsup_weight(k), m.lambda_u * min(k / (0.4 * total), 1.0), rtol=1e-6)


def test_pseudo_label_uses_only_confident_argmax_labels_after_the_rampup():
  """Threshold at the median confidence: half the unlabelled examples are kept, with CE to their argmax."""
  total = tiny_config("pseudo_label").total_steps
  plan, state, batch, _ = _setup("pseudo_label", at_step=total)
  x = plan.module.inputs(plan.method, state, batch)
  b = batch["labelled"]["label"].shape[0]
  logits_u = _logits(plan, state.params, state.batch_stats, x)[b:]
  conf = _softmax(logits_u).max(-1)
  tau = float(np.median(conf))
  plan, state, batch, step_fn = _setup("pseudo_label", at_step=total, state=state,
                                       **{"pseudo_label.threshold": tau})
  _, metrics = _run(step_fn, state, batch)
  mask = conf > tau
  want = np.mean(np.where(mask, -_log_softmax(logits_u)[np.arange(len(mask)), logits_u.argmax(-1)], 0.0))
  assert 0 < mask.mean() < 1
  np.testing.assert_allclose(metrics["train/mask_ratio"], mask.mean(), atol=1e-6)
  np.testing.assert_allclose(metrics["train/unsup_loss"], want, rtol=1e-4)
  np.testing.assert_allclose(metrics["train/unsup_weight"], plan.method.lambda_u)
  np.testing.assert_allclose(metrics["train/loss"], metrics["train/sup_loss"] + plan.method.lambda_u * want,
                             rtol=1e-4)
  # At step 0 the ramp-up weight is 0: the labelled loss alone.
  _, metrics = _run(step_fn, state.replace(step=jnp.zeros((), jnp.int32)), batch)
  np.testing.assert_allclose(metrics["train/unsup_weight"], 0.0)
  np.testing.assert_allclose(metrics["train/loss"], metrics["train/sup_loss"], rtol=1e-6)


# ------------------------------------------------------------------------------------ mean teacher


def test_mean_teacher_teacher_is_the_ema_of_the_student_and_gets_no_gradient():
  total = tiny_config("mean_teacher").total_steps
  plan, state, batch, step_fn = _setup("mean_teacher", at_step=total)
  m = plan.method
  # A teacher that differs from the student (another initialisation), so that copying is not averaging.
  other = plan.module.init(m, jax.random.PRNGKey(1))
  state = state.replace(extra={"ema": {"params": other.params, "batch_stats": state.batch_stats}})
  x, u_teacher = plan.module.inputs(m, state, batch)
  labels = batch["labelled"]["label"]
  teacher = state.extra["ema"]

  # The consistency term is the NumPy MSE between the student's and the teacher's softmax outputs.
  b = labels.shape[0]
  student_u = _logits(plan, state.params, state.batch_stats, x)[b:]
  teacher_u = _logits(plan, teacher["params"], teacher["batch_stats"], u_teacher)
  want = np.mean(np.mean((_softmax(student_u) - _softmax(teacher_u)) ** 2, -1))
  before, (after, metrics) = jax.device_get(state), _run(step_fn, state, batch)
  np.testing.assert_allclose(metrics["train/unsup_loss"], want, rtol=1e-4)
  np.testing.assert_allclose(metrics["train/unsup_weight"], m.lambda_u)

  # No gradient reaches the teacher; the student's does not vanish.
  loss = lambda p, t: plan.module.loss(m, p, t, state.batch_stats, x, u_teacher, labels, m.lambda_u)[0]
  g_student, g_teacher = jax.jit(jax.grad(loss, argnums=(0, 1)))(state.params, teacher)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_teacher))
  assert sum(float(np.abs(g).sum()) for g in jax.tree.leaves(g_student)) > 0

  # After the step the teacher is a theta' + (1 - a) theta, theta the updated student.
  a = m.ema_decay
  want = jax.tree.map(lambda t, s: a * t + (1 - a) * s, before.extra["ema"]["params"], after.params)
  jax.tree.map(lambda got, w: np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6),
               after.extra["ema"]["params"], want)


# ---------------------------------------------------------------------------------------- pi-model


def test_pi_model_two_augmentations_must_agree_with_a_sigmoid_rampup():
  total = tiny_config("pi_model").total_steps
  plan, state, batch, step_fn = _setup("pi_model", at_step=total // 4)
  m = plan.method
  t = (total // 4) / (0.4 * total)
  np.testing.assert_allclose(m.unsup_weight(total // 4), m.lambda_u * np.exp(-5 * (1 - t) ** 2), rtol=1e-6)
  x = plan.module.inputs(m, state, batch)
  b, ub = batch["labelled"]["label"].shape[0], batch["unlabelled"]["image"].shape[0]
  u1, u2 = np.asarray(x[b:b + ub]), np.asarray(x[b + ub:])
  assert u1.shape == u2.shape == (ub, *x.shape[1:]) and not np.allclose(u1, u2), "two different views"
  logits = _logits(plan, state.params, state.batch_stats, x)
  want = np.mean(np.mean((_softmax(logits[b:b + ub]) - _softmax(logits[b + ub:])) ** 2, -1))
  _, metrics = _run(step_fn, state, batch)
  np.testing.assert_allclose(metrics["train/unsup_loss"], want, rtol=1e-4)
  np.testing.assert_allclose(metrics["train/loss"], metrics["train/sup_loss"] + m.unsup_weight(total // 4) * want,
                             rtol=1e-4)
  # Without augmentation the two views are the same image: nothing to agree on.
  plan, state, batch, step_fn = _setup("pi_model", at_step=total, state=state,
                                       **{"pi_model.views.flip_p": 0.0, "pi_model.views.pad_fraction": 0.0})
  _, metrics = _run(step_fn, state, batch)
  np.testing.assert_allclose(metrics["train/unsup_loss"], 0.0, atol=1e-9)


# --------------------------------------------------------------------------------------------- VAT


@pytest.mark.parametrize("eps", [6.0, 0.5])
def test_vat_perturbation_has_norm_eps_per_example_and_is_adversarial(eps):
  plan, state, batch, _ = _setup("vat", **{"vat.eps": eps})
  m = plan.method
  _, u, key = plan.module.inputs(m, state, batch)
  logits_u = jnp.asarray(_logits(plan, state.params, state.batch_stats, u), jnp.float32)
  perturb = lambda method: np.asarray(jax.jit(functools.partial(plan.module.adversarial_perturbation, method))(
      state.params, state.batch_stats, u, logits_u, key), np.float64)
  r_adv = perturb(m)
  assert m.xi == 0 and r_adv.shape == u.shape
  np.testing.assert_allclose(np.sqrt((r_adv ** 2).sum(axis=(1, 2, 3))), eps, rtol=1e-5)
  # The exact Hessian product (xi = 0) is the limit of the paper's finite difference grad D(xi d).
  r_fd = perturb(dataclasses.replace(m, xi=1e-2))
  np.testing.assert_allclose(np.sqrt((r_fd ** 2).sum(axis=(1, 2, 3))), eps, rtol=1e-5)
  cosine = (r_adv * r_fd).sum(axis=(1, 2, 3)) / eps ** 2
  assert np.median(cosine) > 0.98 and cosine.min() > 0.85, cosine  # (ReLU kinks within xi: not all 1)
  # The power iteration finds a direction that moves the prediction more than random ones of the same norm.
  rand = np.random.default_rng(0).normal(size=(4, *u.shape))
  rand *= eps / np.sqrt((rand ** 2).sum(axis=(2, 3, 4), keepdims=True))

  def kl(r):
    p = _logits(plan, state.params, state.batch_stats, u + jnp.asarray(r, jnp.float32))
    return np.mean(np.sum(_softmax(logits_u) * (_log_softmax(logits_u) - _log_softmax(p)), -1))
  assert kl(r_adv) > 2 * max(kl(r) for r in rand), (kl(r_adv), [kl(r) for r in rand])


# --------------------------------------------------------------------------------------------- UDA


def test_uda_tsa_thresholds_follow_the_paper():
  from ssl_jax.methods.semi import uda
  for k in (0, 30, 100):
    t = k / 100
    for schedule, a in (("linear", t), ("log", 1 - np.exp(-5 * t)), ("exp", np.exp(5 * (t - 1)))):
      np.testing.assert_allclose(uda.tsa_threshold(schedule, k, 100, 10), a * 0.9 + 0.1, rtol=1e-6)
    np.testing.assert_allclose(uda.tsa_threshold("none", k, 100, 10), 1.0)


def test_uda_sharpens_weak_targets_masks_unconfident_ones_and_anneals_the_labelled_signal():
  total = 1_000_000  # linear TSA at step 1: eta = 0.1 + 0.9e-6, just above chance
  plan, state, batch, _ = _setup("uda", at_step=1)
  x = plan.module.inputs(plan.method, state, batch)
  b, ub = batch["labelled"]["label"].shape[0], batch["unlabelled"]["image"].shape[0]
  logits = _logits(plan, state.params, state.batch_stats, x)
  weak, strong = logits[b:b + ub], logits[b + ub:]
  beta = float(np.median(_softmax(weak).max(-1)))
  # Labels the model gives more than chance (the argmax) for half the batch, less (the argmin) for the rest.
  probs = _softmax(logits[:b])
  labels = np.where(np.arange(b) % 2 == 0, probs.argmax(-1), probs.argmin(-1)).astype(np.int32)
  batch = {**batch, "labelled": {**batch["labelled"], "label": labels}}
  plan, state, _, step_fn = _setup("uda", at_step=1, state=state, **{"uda.threshold": beta, "uda.tsa": "linear",
                                                        "uda.temperature": 0.4, "total_steps": total})
  _, metrics = _run(step_fn, state, batch)
  eta = 0.1 + 0.9 / total
  np.testing.assert_allclose(metrics["train/tsa_threshold"], eta, rtol=1e-6)
  q = _softmax(weak / 0.4)  # sharpened, with the temperature
  mask = _softmax(weak).max(-1) > beta  # confidence of the unsharpened prediction
  kl = np.sum(q * (np.log(q) - _log_softmax(strong)), -1)
  assert 0 < mask.mean() < 1
  np.testing.assert_allclose(metrics["train/mask_ratio"], mask.mean(), atol=1e-6)
  np.testing.assert_allclose(metrics["train/unsup_loss"], np.mean(np.where(mask, kl, 0.0)), rtol=1e-4)
  p_true = probs[np.arange(b), labels]
  keep = p_true <= eta  # TSA drops the examples already predicted above eta
  np.testing.assert_array_equal(keep, np.arange(b) % 2 == 1)
  np.testing.assert_allclose(metrics["train/tsa_kept"], keep.mean(), atol=1e-6)
  np.testing.assert_allclose(metrics["train/sup_loss"], np.mean(np.where(keep, -np.log(p_true), 0.0)), rtol=1e-4)


# ---------------------------------------------------------------------------------------- MixMatch


def test_mixmatch_mixed_labels_sum_to_one_and_keep_their_own_example_dominant():
  total = tiny_config("mixmatch").total_steps
  plan, state, batch, step_fn = _setup("mixmatch", at_step=total // 5)
  m = plan.method
  mix = jax.jit(functools.partial(plan.module.mix_batch, m))
  mb = jax.device_get(mix(state, batch))
  labels = np.asarray(batch["labelled"]["label"])
  b, ub = len(labels), batch["unlabelled"]["image"].shape[0]
  assert mb.targets_u.shape == (m.num_augmentations * ub, 10) and mb.u.shape[0] == m.num_augmentations * ub
  for targets in (mb.targets_x, mb.targets_u, mb.guess):
    assert np.all(targets >= 0)
    np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-5)
  # lambda' = max(lambda, 1 - lambda) >= 1/2: each mixed target keeps at least half of its own label.
  assert np.all(mb.targets_x >= 0.5 * np.eye(10)[labels] - 1e-6)
  assert np.all(mb.targets_u >= 0.5 * np.tile(mb.guess, (m.num_augmentations, 1)) - 1e-6)
  assert np.any(mb.targets_x.max(-1) < 1 - 1e-3), "some labelled examples are mixed with another label"
  # The guess is the mean prediction sharpened with temperature T: p^(1/T) / sum p^(1/T).
  m1 = jax.device_get(jax.jit(functools.partial(plan.module.mix_batch, dataclasses.replace(m, temperature=1.0)))(
      state, batch))
  want = m1.guess ** (1 / m.temperature)
  np.testing.assert_allclose(mb.guess, want / want.sum(-1, keepdims=True), rtol=1e-4, atol=1e-7)
  # The losses: soft cross-entropy on the mixed labelled part, ramped L2 (mean over classes) on the rest.
  logits = _logits(plan, state.params, state.batch_stats, jnp.concatenate([mb.x, mb.u]))
  _, metrics = _run(step_fn, state, batch)
  want_sup = np.mean(-np.sum(mb.targets_x * _log_softmax(logits[:b]), -1))
  np.testing.assert_allclose(metrics["train/sup_loss"], want_sup, rtol=1e-4)
  np.testing.assert_allclose(metrics["train/unsup_loss"], np.mean((_softmax(logits[b:]) - mb.targets_u) ** 2),
                             rtol=1e-4)
  np.testing.assert_allclose(metrics["train/unsup_weight"], m.lambda_u * (total // 5) / (0.4 * total), rtol=1e-6)


# --------------------------------------------------------------------------------------- FlexMatch


def _flex_reference(selected, num_classes, tau, warmup):
  """USB's FlexMatchThresholdingHook, with a Counter over the learning status, as plain Python."""
  from collections import Counter
  counter = Counter(selected.tolist())
  acc = np.zeros(num_classes)
  if max(counter.values()) < len(selected):  # not every image still unused
    norm = max(counter.values()) if warmup else max(v for k, v in counter.items() if k != -1)
    acc = np.array([counter[c] / norm for c in range(num_classes)])
  return tau * acc / (2 - acc)


@pytest.mark.parametrize("warmup", [True, False])
def test_flexmatch_class_thresholds_are_the_convex_map_of_the_learning_status(warmup):
  from ssl_jax.methods.semi import flexmatch
  rng = np.random.default_rng(0)
  for unused in (0, 100, 990, 1000):
    selected = np.concatenate([np.full(unused, -1), rng.choice(10, 1000 - unused, p=np.arange(1, 11) / 55)])
    got = flexmatch.class_thresholds(jnp.asarray(selected, jnp.int32), num_classes=10, threshold=0.95,
                                     warmup=warmup)
    np.testing.assert_allclose(got, _flex_reference(selected, 10, 0.95, warmup), rtol=1e-6, atol=1e-7)


def test_flexmatch_thresholds_move_with_the_per_class_learning_status():
  plan, state, batch, _ = _setup("flexmatch")
  m = plan.method
  x = plan.module.inputs(m, state, batch)
  b, ub = batch["labelled"]["label"].shape[0], batch["unlabelled"]["image"].shape[0]
  probs = _softmax(_logits(plan, state.params, state.batch_stats, x)[b:b + ub])
  conf, pseudo = probs.max(-1), probs.argmax(-1)
  tau = float(np.median(conf))
  plan, state, batch, step_fn = _setup("flexmatch", state=state, **{"flexmatch.threshold": tau})
  index = np.asarray(batch["unlabelled"]["index"])
  train = trainer.load_stream(plan).eval_data["unlabelled_train"]
  np.testing.assert_array_equal(train.images[index], batch["unlabelled"]["image"])  # the images' own indices
  n = m.num_train
  # Nothing learnt yet: every threshold is 0 and every unlabelled image is used (USB's warm-up start).
  after, metrics = _run(step_fn, state, batch)
  np.testing.assert_allclose(metrics["train/mask_ratio"], 1.0)
  # A status where the classes are learnt unevenly: class c has been predicted confidently for ~c% of images.
  status = np.random.default_rng(1).choice(np.arange(-1, 10), n, p=np.r_[45, np.arange(1, 11)] / 100)
  status[index] = -1
  state = state.replace(extra={**state.extra, "selected": jnp.asarray(status, jnp.int32)})
  after, metrics = _run(step_fn, state, batch)
  thresholds = _flex_reference(status, 10, tau, True)
  assert len(set(np.round(thresholds, 6))) == 10, "one threshold per class, each from its own status"
  mask = conf >= thresholds[pseudo]
  np.testing.assert_allclose(metrics["train/mask_ratio"], mask.mean(), atol=1e-6)
  np.testing.assert_allclose(metrics["train/mean_threshold"], thresholds.mean(), rtol=1e-5)
  # The status of the batch's images becomes their argmax where they were confident (max prob >= tau).
  want = status.copy()
  want[index] = np.where(conf >= tau, pseudo, -1)
  assert 0 < (conf >= tau).mean() < 1
  np.testing.assert_array_equal(after.extra["selected"], want)
