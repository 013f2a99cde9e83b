"""Mean Teacher (Tarvainen & Valpola 2017, arXiv:1703.01780): the student matches an EMA of itself.

The teacher is the exponential moving average of the student's parameters, theta'_k = a theta'_{k-1} +
(1 - a) theta_k (`state.extra["ema"]`, the same EMA model the `accuracy` suite evaluates, BatchNorm
statistics copied from the student), and gets no gradient. Each step sees a labelled batch of B and an
unlabelled batch of mu B; the student and the teacher see two different weak augmentations (flip and
translate) of each unlabelled image:

  L = mean_b CE(f_theta(x_b), y_b) + lambda_u w(k) mean_u 1/C ||softmax f_theta(u') - softmax f_theta'(u'')||^2

(`losses.consistency_mse` with `stop_gradient` on the teacher's logits; the teacher runs in training mode,
on its batch's statistics, which are discarded), w(k) the ramp-up of the consistency weight over the first
`unsup_warmup` fraction of training: "sigmoid" exp(-5 (1 - t)^2) as the paper, or "linear" as USB.

Config section `mean_teacher`: `labels`, `label_seed`, `unlabelled` (0: every training image is unlabelled
data; N: N images outside the labelled split), `mu`, `lambda_u`, `unsup_warmup`, `rampup` ("sigmoid" |
"linear"), `ema_decay` (the teacher's a), `views` (weak part used). Defaults are USB's
(semilearn/algorithms/meanteacher, classic CV: uratio 1, lambda_u 50, warm-up 0.4, EMA 0.999) with the paper's
sigmoid ramp-up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.losses.semi_supervised import consistency_mse
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)


def config() -> ml_collections.ConfigDict:
  """The `mean_teacher` section with USB's defaults and the paper's ramp-up."""
  return classifier.consistency_config(lambda_u=50.0)


def stream(config) -> streams.LabelledUnlabelled:
  return classifier.semi_stream(config.mean_teacher)


def make(config, info) -> classifier.Consistency:
  return classifier.make_consistency(config, info, "mean_teacher")


def init(m: classifier.Consistency, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def inputs(m: classifier.Consistency, state: common.TrainState, batch) -> tuple[jax.Array, jax.Array]:
  """(student input: weak labelled views then weak unlabelled views; the teacher's own weak views)."""
  k_l, k_s, k_t = jax.random.split(common.step_key(state), 3)
  images = batch["unlabelled"]["image"]
  x = jnp.concatenate([views_lib.weak_view(k_l, batch["labelled"]["image"], m.views),
                       views_lib.weak_view(k_s, images, m.views)])
  return x, views_lib.weak_view(k_t, images, m.views)


def loss(m: classifier.Consistency, params, teacher, batch_stats, x, u_teacher, labels, weight):
  """(total loss, (metrics, student BatchNorm statistics)); `teacher` is {"params", "batch_stats"}."""
  b = labels.shape[0]
  logits, stats = classifier.logits(m.net, params, batch_stats, x, train=True)
  t_logits, _ = classifier.logits(m.net, teacher["params"], teacher["batch_stats"], u_teacher, train=True)
  l_lab, l_unl = logits[:b], logits[b:]
  sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels).mean()
  unsup = consistency_mse(l_unl, jax.lax.stop_gradient(t_logits)).mean()
  metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/unsup_weight": weight,
             "train/labelled_top1": common.top1(l_lab, labels)}
  return sup + weight * unsup, (metrics, stats)


def step(m: classifier.Consistency, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  x, u_teacher = inputs(m, state, batch)
  weight = m.unsup_weight(state.step)
  loss_fn = lambda p: loss(m, p, state.extra["ema"], state.batch_stats, x, u_teacher,
                           batch["labelled"]["label"], weight)
  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: classifier.Consistency, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
