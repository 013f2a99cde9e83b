"""Pi-model (Laine & Aila 2017, arXiv:1610.02242): two stochastic augmentations must agree.

Each step sees a labelled batch of B and an unlabelled batch of mu B; every unlabelled image gets two
independent weak augmentations (flip and translate), and all of it goes through the network in one
forward pass (one BatchNorm over the batch):

  L = mean_b CE(f(x_b), y_b) + lambda_u w(k) mean_u 1/C ||softmax f(u') - softmax f(u'')||^2

(`losses.consistency_mse`). As USB does, the second view's prediction is the target (`stop_gradient`);
the paper lets the gradient flow into both. w(k) ramps the weight up over the first `unsup_warmup`
fraction of training: "sigmoid" exp(-5 (1 - t)^2) as the paper, or "linear" as USB. An EMA of the
parameters (`ema_decay`) is evaluated beside the online model.

Config section `pi_model`: `labels`, `label_seed`, `unlabelled` (0: every training image is unlabelled data;
N: N images outside the labelled split), `mu`, `lambda_u`, `unsup_warmup`, `rampup` ("sigmoid" | "linear"),
`ema_decay`, `views` (weak part used). Defaults are USB's (semilearn/algorithms/ pimodel, classic CV: uratio
1, lambda_u 10, warm-up 0.4) with the paper's sigmoid ramp-up.
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
  """The `pi_model` section with USB's defaults and the paper's ramp-up."""
  return classifier.consistency_config(lambda_u=10.0)


def stream(config) -> streams.LabelledUnlabelled:
  return classifier.semi_stream(config.pi_model)


def make(config, info) -> classifier.Consistency:
  return classifier.make_consistency(config, info, "pi_model")


def init(m: classifier.Consistency, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def inputs(m: classifier.Consistency, state: common.TrainState, batch) -> jax.Array:
  """The step's network input: weak labelled views, then two independent weak views of the unlabelled."""
  k_l, k_1, k_2 = jax.random.split(common.step_key(state), 3)
  images = batch["unlabelled"]["image"]
  return jnp.concatenate([views_lib.weak_view(k_l, batch["labelled"]["image"], m.views),
                          views_lib.weak_view(k_1, images, m.views), views_lib.weak_view(k_2, images, m.views)])


def step(m: classifier.Consistency, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  x = inputs(m, state, batch)
  labels = batch["labelled"]["label"]
  b = labels.shape[0]
  ub = (x.shape[0] - b) // 2
  weight = m.unsup_weight(state.step)

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    l_lab, l_1, l_2 = logits[:b], logits[b:b + ub], logits[b + ub:]
    sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels).mean()
    unsup = consistency_mse(l_1, jax.lax.stop_gradient(l_2)).mean()
    metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/unsup_weight": weight,
               "train/labelled_top1": common.top1(l_lab, labels)}
    return sup + weight * unsup, (metrics, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: classifier.Consistency, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
