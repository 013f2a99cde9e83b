"""FixMatch (Sohn et al. 2020, arXiv:2001.07685): confident predictions on weak views teach strong views.

Each step sees a labelled batch of B and an unlabelled batch of mu B (`streams.LabelledUnlabelled`):

  L = mean_b CE(f(weak(x_b)), y_b) + lambda_u mean_u [max p(weak(u)) >= tau] CE(f(strong(u)), argmax p(weak(u)))

with the pseudo-label computed without gradient. All three batches go through the network in one forward
pass (one BatchNorm over them, as the authors' code). The strong view is RandAugment-style with cutout
(`views.WeakStrongViews`). An EMA of the parameters (`ema_decay`) is kept and evaluated beside the online
model (`ema_test_top1`), as FixMatch reports.

Config section `fixmatch`: `labels` (size of the class-balanced labelled split; the data are named
`<dataset>.<label_seed>@<labels>`), `label_seed`, `unlabelled` (0: every training image is unlabelled data,
as the paper; N: N images outside the labelled split), `mu`, `threshold`, `lambda_u`, `ema_decay`, `views`.
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
from ssl_jax.losses.semi_supervised import fixmatch as fixmatch_loss
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)


def config() -> ml_collections.ConfigDict:
  """The `fixmatch` section with the paper's defaults."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,
      "mu": 7,
      "threshold": 0.95,
      "lambda_u": 1.0,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.fixmatch
  return classifier.semi_stream(s)


@dataclasses.dataclass(frozen=True)
class FixMatch:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  threshold: float
  lambda_u: float
  ema_decay: float


def make(config, info) -> FixMatch:
  s = config.fixmatch
  classifier.check_fraction("fixmatch", "threshold", s.threshold)
  classifier.check_mu("fixmatch", s.mu)
  classifier.check_fraction("fixmatch", "ema_decay", s.ema_decay, upper_open=True)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return FixMatch(net=classifier.make(config, info), tx=tx, schedule=schedule,
                  views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                  threshold=s.threshold, lambda_u=s.lambda_u, ema_decay=s.ema_decay)


def init(m: FixMatch, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def step(m: FixMatch, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  k_l, k_u = jax.random.split(common.step_key(state))
  x_l = views_lib.weak_view(k_l, batch["labelled"]["image"], m.views)
  u_weak, u_strong = views_lib.weak_strong_views(k_u, batch["unlabelled"]["image"], m.views)
  b, ub = x_l.shape[0], u_weak.shape[0]
  x = jnp.concatenate([x_l, u_weak, u_strong])
  labels = batch["labelled"]["label"]

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    l_lab, l_weak, l_strong = logits[:b], logits[b:b + ub], logits[b + ub:]
    sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels).mean()
    unsup, mask = fixmatch_loss(jax.lax.stop_gradient(l_weak), l_strong, threshold=m.threshold)
    unsup = unsup.mean()
    metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/mask_ratio": mask.mean(),
               "train/labelled_top1": common.top1(l_lab, labels)}
    return sup + m.lambda_u * unsup, (metrics, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: FixMatch, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
