"""The labelled-only baseline of semi-supervised learning: the same network on the labelled split alone.

Cross-entropy on weak views (flip and translate) of the labelled batch, with the same EMA model as
FixMatch, on the same class-balanced split `<dataset>.<label_seed>@<labels>`: the number every
semi-supervised method must beat. `labels=0` trains on every label (the fully supervised upper bound).

Config section `supervised`: `labels`, `label_seed`, `ema_decay`, `views` (only the weak part is used).
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)


def config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.supervised
  return streams.LabelledUnlabelled(num_labels=s.labels, split_seed=s.label_seed, mu=0)


@dataclasses.dataclass(frozen=True)
class Supervised:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  ema_decay: float


def make(config, info) -> Supervised:
  s = config.supervised
  classifier.check_fraction("supervised", "ema_decay", s.ema_decay, upper_open=True)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return Supervised(net=classifier.make(config, info), tx=tx, schedule=schedule,
                    views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                    ema_decay=s.ema_decay)


def init(m: Supervised, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def step(m: Supervised, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B]}."""
  x = views_lib.weak_view(common.step_key(state), batch["labelled"]["image"], m.views)
  labels = batch["labelled"]["label"]

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, ({"train/labelled_top1": common.top1(logits, labels)}, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: Supervised, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
