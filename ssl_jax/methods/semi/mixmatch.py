"""MixMatch (Berthelot et al. 2019, arXiv:1905.02249): guessed, sharpened labels and MixUp across the
labelled and unlabelled batches.

Each step sees a labelled batch X of B and an unlabelled batch of mu B. Every unlabelled image gets K weak
augmentations (flip and translate); its label guess is the sharpened mean prediction over them (no
gradient), q = Sharpen(1/K sum_k softmax f(u_k), T), Sharpen(p)_c = p_c^(1/T) / sum_j p_j^(1/T). The
labelled views with their one-hot labels and the K unlabelled views with q are shuffled together into W,
and each example is mixed with a partner from W, keeping itself dominant:

  lambda ~ Beta(alpha, alpha),  lambda' = max(lambda, 1 - lambda),
  x' = lambda' x + (1 - lambda') x_w,  p' = lambda' p + (1 - lambda') p_w   (one lambda' per example),
  L = mean_X' CE(p', f(x')) + lambda_u w(k) mean_U' 1/C ||p' - softmax f(u')||^2

(`losses.mixmatch` builds the mixed batch, `losses.mixmatch_loss` the two terms), w(k) the linear ramp-up
over the first `unsup_warmup` fraction of training. The guessing pass runs in training mode on the
unlabelled views' statistics, which are discarded; the mixed batch goes through the network in one pass,
whose BatchNorm statistics are kept. An EMA of the parameters (`ema_decay`) is evaluated beside the online
model.

Config section `mixmatch`: `labels`, `label_seed`, `unlabelled` (0: every training image is unlabelled data;
N: N images outside the labelled split), `mu`, `num_augmentations` (K), `temperature` (T), `alpha`,
`lambda_u`, `unsup_warmup`, `ema_decay`, `views` (weak part used). Defaults are USB's CIFAR-10 ones
(semilearn/algorithms/mixmatch, config/classic_cv/mixmatch: uratio 1, K 2, T 0.5, alpha 0.5, lambda_u 100,
warm-up 0.4); the paper's are alpha 0.75, lambda_u 75 and a ramp-up over 16k of 1M steps.
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
from ssl_jax.losses.semi_supervised import MixMatchBatch, mixmatch as mixmatch_batch, mixmatch_loss
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)


def config() -> ml_collections.ConfigDict:
  """The `mixmatch` section with USB's CIFAR-10 defaults."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,
      "mu": 1,
      "num_augmentations": 2,
      "temperature": 0.5,
      "alpha": 0.5,
      "lambda_u": 100.0,
      "unsup_warmup": 0.4,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.mixmatch
  return classifier.semi_stream(s)


@dataclasses.dataclass(frozen=True)
class MixMatch:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  num_augmentations: int
  temperature: float
  alpha: float
  lambda_u: float
  rampup_steps: float
  ema_decay: float

  def unsup_weight(self, step) -> jax.Array:
    return self.lambda_u * classifier.rampup(step, self.rampup_steps, "linear")


def make(config, info) -> MixMatch:
  s = config.mixmatch
  if s.num_augmentations < 1:
    raise ValueError(f"mixmatch.num_augmentations (K) must be at least 1, got {s.num_augmentations}.")
  if not (s.temperature > 0 and s.alpha > 0):
    raise ValueError(f"mixmatch.temperature and mixmatch.alpha must be positive, got {s.temperature} and "
                     f"{s.alpha}.")
  classifier.check_fraction("mixmatch", "unsup_warmup", s.unsup_warmup)
  classifier.check_fraction("mixmatch", "ema_decay", s.ema_decay, upper_open=True)
  classifier.check_mu("mixmatch", s.mu)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return MixMatch(net=classifier.make(config, info), tx=tx, schedule=schedule,
                  views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                  num_augmentations=s.num_augmentations, temperature=s.temperature, alpha=s.alpha,
                  lambda_u=s.lambda_u, rampup_steps=s.unsup_warmup * config.total_steps,
                  ema_decay=s.ema_decay)


def init(m: MixMatch, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def mix_batch(m: MixMatch, state: common.TrainState, batch) -> MixMatchBatch:
  """The step's mixed batch: K weak views of the unlabelled, the guess, the shuffle and MixUp."""
  k_l, k_u, k_mix = jax.random.split(common.step_key(state), 3)
  x_l = views_lib.weak_view(k_l, batch["labelled"]["image"], m.views)
  images = batch["unlabelled"]["image"]
  u = jnp.stack([views_lib.weak_view(k, images, m.views)
                 for k in jax.random.split(k_u, m.num_augmentations)])  # [K, mu B, H, W, C]
  k, ub = u.shape[:2]
  guess, _ = classifier.logits(m.net, jax.lax.stop_gradient(state.params), state.batch_stats,
                               u.reshape((k * ub, *u.shape[2:])), train=True)
  return mixmatch_batch(k_mix, x_l, batch["labelled"]["label"], u, guess_logits=guess.reshape(k, ub, -1),
                        temperature=m.temperature, alpha=m.alpha)


def step(m: MixMatch, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  mb = mix_batch(m, state, batch)
  b = mb.x.shape[0]
  x = jnp.concatenate([mb.x, mb.u])
  weight = m.unsup_weight(state.step)

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    loss_x, loss_u = mixmatch_loss(logits[:b], mb.targets_x, logits[b:], mb.targets_u, lambda_u=1.0)
    sup, unsup = loss_x.mean(), loss_u.mean()
    metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/unsup_weight": weight,
               "train/guess_confidence": jnp.max(mb.guess, axis=-1).mean()}
    return sup + weight * unsup, (metrics, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: MixMatch, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
