"""Pseudo-Label (Lee 2013, ICML WREPL): the model's own confident predictions are its unlabelled targets.

Each step sees a labelled batch of B and an unlabelled batch of mu B (`streams.LabelledUnlabelled`), both
weakly augmented (flip and translate), in one forward pass:

  L = mean_b CE(f(x_b), y_b) + lambda_u w(k) mean_u [max p(u) >= tau] CE(f(u), argmax p(u)),

the pseudo-label argmax p(u) taken without gradient from the same forward pass (`losses.pseudo_label`),
and w(k) = clip(k / (unsup_warmup K), 0, 1) the linear ramp-up of the unlabelled weight over the first
`unsup_warmup` fraction of the K training steps (a pure function of the step k). Lee's alpha(t) ramps from
0 as well; the confidence threshold tau is USB's convention (tau = 0 is Lee's original, every example kept).
An EMA of the parameters (`ema_decay`) is evaluated beside the online model, as in USB.

Config section `pseudo_label`: `labels`, `label_seed` (the split `<dataset>.<label_seed>@<labels>`),
`unlabelled` (0: every training image is unlabelled data; N: N images outside the labelled split), `mu`,
`threshold`, `lambda_u`, `unsup_warmup` (fraction of total_steps), `ema_decay`, `views` (weak part used).
Defaults are USB's (semilearn/algorithms/pseudolabel, classic CV: uratio 1, p_cutoff 0.95, warm-up 0.4).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.losses.semi_supervised import pseudo_label as pseudo_label_loss
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)


def config() -> ml_collections.ConfigDict:
  """The `pseudo_label` section with USB's defaults."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,
      "mu": 1,
      "threshold": 0.95,
      "lambda_u": 1.0,
      "unsup_warmup": 0.4,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.pseudo_label
  return classifier.semi_stream(s)


@dataclasses.dataclass(frozen=True)
class PseudoLabel:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  threshold: float
  lambda_u: float
  rampup_steps: float
  ema_decay: float

  def unsup_weight(self, step) -> jax.Array:
    """lambda_u w(step): the weight of the unlabelled loss, ramped up linearly."""
    return self.lambda_u * classifier.rampup(step, self.rampup_steps, "linear")


def make(config, info) -> PseudoLabel:
  s = config.pseudo_label
  classifier.check_fraction("pseudo_label", "threshold", s.threshold)
  classifier.check_fraction("pseudo_label", "unsup_warmup", s.unsup_warmup)
  classifier.check_fraction("pseudo_label", "ema_decay", s.ema_decay, upper_open=True)
  classifier.check_mu("pseudo_label", s.mu)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return PseudoLabel(net=classifier.make(config, info), tx=tx, schedule=schedule,
                     views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                     threshold=s.threshold, lambda_u=s.lambda_u,
                     rampup_steps=s.unsup_warmup * config.total_steps, ema_decay=s.ema_decay)


def init(m: PseudoLabel, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def inputs(m: PseudoLabel, state: common.TrainState, batch) -> jax.Array:
  """The step's network input: weak views of the labelled batch, then of the unlabelled batch."""
  k_l, k_u = jax.random.split(common.step_key(state))
  return jnp.concatenate([views_lib.weak_view(k_l, batch["labelled"]["image"], m.views),
                          views_lib.weak_view(k_u, batch["unlabelled"]["image"], m.views)])


def step(m: PseudoLabel, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  x = inputs(m, state, batch)
  labels = batch["labelled"]["label"]
  b = labels.shape[0]
  weight = m.unsup_weight(state.step)

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    l_lab, l_unl = logits[:b], logits[b:]
    sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels).mean()
    unsup, mask = pseudo_label_loss(l_unl, threshold=m.threshold)
    unsup = unsup.mean()
    metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/mask_ratio": mask.mean(),
               "train/unsup_weight": weight, "train/labelled_top1": common.top1(l_lab, labels)}
    return sup + weight * unsup, (metrics, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: PseudoLabel, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
