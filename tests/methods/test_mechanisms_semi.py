"""What makes each semi-supervised method that method, on one step of its tiny run, against NumPy
references written from the papers' formulas."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.methods import classifier
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


def _setup(method, at_step=0, **overrides):
  """(plan, fresh state at step `at_step`, batch of that step, jitted step) of a tiny run on one device."""
  plan = trainer.preflight(tiny_config(method, **overrides))
  batch = trainer.load_stream(plan).global_batch(at_step)
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
  plan, state, batch, step_fn = _setup("pseudo_label", at_step=total, **{"pseudo_label.threshold": tau})
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
  plan, state, batch, step_fn = _setup("pi_model", at_step=total, **{"pi_model.views.flip_p": 0.0,
                                                                      "pi_model.views.pad_fraction": 0.0})
  _, metrics = _run(step_fn, state, batch)
  np.testing.assert_allclose(metrics["train/unsup_loss"], 0.0, atol=1e-9)
