"""FlexMatch (Zhang et al. 2021, arXiv:2110.08263): FixMatch with per-class thresholds from each class's
learning status (Curriculum Pseudo Labelling).

The learning status of class c is the number of unlabelled images whose latest confident prediction
(max probability >= tau on a weak view) was c,

  sigma(c) = #{n : s_n = c},  s_n in {-1 (never confident), 0..C-1}   (`state.extra["selected"]`, [N]),

normalised as beta(c) = sigma(c) / max(max_c' sigma(c'), N - sum_c' sigma(c')) with the threshold warm-up
(`thresh_warmup`: the still unused images count as a class, so thresholds start low and rise as the data
get used), or sigma(c) / max_c' sigma(c') without it. The threshold of class c is

  T(c) = tau M(beta(c)),  M(x) = x / (2 - x)   (the convex mapping),

and the unlabelled loss is FixMatch's with it: mean_u [max p(weak(u)) >= T(argmax p(weak(u)))]
CE(f(strong(u)), argmax p(weak(u))), weighted by lambda_u, the pseudo-label without gradient. After the
update, s_n of every image of the batch predicted with max probability >= tau becomes its argmax, so the
thresholds of step k come from the predictions up to step k - 1 (as USB's `FlexMatchThresholdingHook`).
The stream gives the unlabelled images' indices (`LabelledUnlabelled(with_indices=True)`). An EMA of the
parameters (`ema_decay`) is evaluated beside the online model.

Config section `flexmatch`: `labels`, `label_seed`, `unlabelled` (0: every training image is unlabelled data;
N: N images outside the labelled split), `mu`, `threshold` (tau), `thresh_warmup`, `lambda_u`, `ema_decay`,
`views`. Defaults are USB's (semilearn/algorithms/flexmatch, classic CV: uratio 7, p_cutoff 0.95, hard labels,
thresh_warmup True, lambda_u 1).
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
  """The `flexmatch` section with USB's defaults."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,
      "mu": 7,
      "threshold": 0.95,
      "thresh_warmup": True,
      "lambda_u": 1.0,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.flexmatch
  return classifier.semi_stream(s, with_indices=True)


@dataclasses.dataclass(frozen=True)
class FlexMatch:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  threshold: float
  thresh_warmup: bool
  lambda_u: float
  num_train: int
  num_classes: int
  ema_decay: float


def make(config, info) -> FlexMatch:
  s = config.flexmatch
  classifier.check_fraction("flexmatch", "threshold", s.threshold)
  classifier.check_fraction("flexmatch", "ema_decay", s.ema_decay, upper_open=True)
  classifier.check_mu("flexmatch", s.mu)
  if not info.train_examples:
    raise ValueError(f"flexmatch keeps a learning status per training image and needs the size of the training "
                     f"set, which is unknown for {config.data.name!r}; use a dataset of known size.")
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return FlexMatch(net=classifier.make(config, info), tx=tx, schedule=schedule,
                   views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                   threshold=s.threshold, thresh_warmup=bool(s.thresh_warmup), lambda_u=s.lambda_u,
                   num_train=int(info.train_examples), num_classes=int(info.num_classes),
                   ema_decay=s.ema_decay)


def init(m: FlexMatch, rng: jax.Array, pretrained=None) -> common.TrainState:
  state = classifier.init_state(m.net, m.tx, rng, pretrained)
  return state.replace(extra={**state.extra, "selected": jnp.full((m.num_train,), -1, jnp.int32)})


def class_thresholds(selected: jax.Array, *, num_classes: int, threshold: float, warmup: bool) -> jax.Array:
  """T(c) = tau M(beta(c)), M(x) = x / (2 - x), of each class c [C] from the learning status `selected` [N]."""
  counts = jnp.zeros((num_classes + 1,), jnp.float32).at[selected + 1].add(1.0)  # [unused, sigma(0..C-1)]
  sigma = counts[1:]
  norm = jnp.max(counts) if warmup else jnp.max(sigma)
  beta = sigma / jnp.maximum(norm, 1.0)
  return threshold * beta / (2.0 - beta)


def inputs(m: FlexMatch, state: common.TrainState, batch) -> jax.Array:
  """The step's network input: weak labelled views, weak unlabelled views, strong unlabelled views."""
  k_l, k_u = jax.random.split(common.step_key(state))
  u_weak, u_strong = views_lib.weak_strong_views(k_u, batch["unlabelled"]["image"], m.views)
  return jnp.concatenate([views_lib.weak_view(k_l, batch["labelled"]["image"], m.views), u_weak, u_strong])


def step(m: FlexMatch, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image", "index"} [mu B]}."""
  x = inputs(m, state, batch)
  labels = batch["labelled"]["label"]
  b = labels.shape[0]
  ub = (x.shape[0] - b) // 2
  selected = state.extra["selected"]
  thresholds = class_thresholds(selected, num_classes=m.num_classes, threshold=m.threshold,
                                warmup=m.thresh_warmup)

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    l_lab, l_weak, l_strong = logits[:b], logits[b:b + ub], logits[b + ub:]
    probs = jax.nn.softmax(jax.lax.stop_gradient(l_weak), axis=-1)
    confidence, pseudo = jnp.max(probs, axis=-1), jnp.argmax(probs, axis=-1)
    mask = (confidence >= thresholds[pseudo]).astype(jnp.float32)
    sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels).mean()
    ce, _ = fixmatch_loss(jax.lax.stop_gradient(l_weak), l_strong, threshold=0.0)  # every example: CE to argmax
    unsup = jnp.mean(ce * mask)
    metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/mask_ratio": mask.mean(),
               "train/mean_threshold": thresholds.mean(), "train/labelled_top1": common.top1(l_lab, labels)}
    return sup + m.lambda_u * unsup, (metrics, stats, (confidence, pseudo))  # for the learning status

  state, metrics, (confidence, pseudo) = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule,
                                                              with_outputs=True)
  index = batch["unlabelled"]["index"]
  confident = confidence >= m.threshold
  selected = selected.at[index].set(jnp.where(confident, pseudo.astype(jnp.int32), selected[index]))
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay), "selected": selected}), metrics


def predict(m: FlexMatch, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
