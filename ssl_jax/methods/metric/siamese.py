"""Siamese network with the contrastive (margin) loss (Hadsell, Chopra & LeCun 2006).

Both members of a pair go through the same network e = normalize(W f(x)); with D = ||e_1 - e_2||_2 and
Y = 1 for a dissimilar pair, 0 for a similar one,

  L = (1 - Y) * 1/2 * D^2 + Y * 1/2 * max(0, m - D)^2              (`losses.metric.contrastive_margin`)

averaged over the pairs of the batch. The pairs are balanced and formed inside the P x K batch of the
training classes (`streams.ClassBalanced`): every image i is the first member of one positive pair
(i, a random other image of its class) and one negative pair (i, a random image of another class), so a
batch of B images gives B similar and B dissimilar pairs (`balanced_pairs`), drawn from the step's key.
Judged by the `retrieval` suite on the test images of the classes held out of training, like `triplet`.

Config section `siamese`: `classes_per_batch` (P >= 2; K = batch_size / P >= 2), `train_classes` (the rest
are held out), `margin` (m, in the unit-norm embedding space, where D <= 2), `embedding_dim`, `views`
(weak augmentation).
References: Hadsell, Chopra, LeCun 2006, "Dimensionality Reduction by Learning an Invariant Mapping", CVPR;
Bromley et al. 1993, "Signature Verification using a Siamese Time Delay Neural Network".
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.losses.metric import contrastive_margin
from ssl_jax.methods import common
from ssl_jax.methods.metric import triplet

SUITES = ("retrieval",)


def config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "classes_per_batch": 5,
      "train_classes": (0, 1, 2, 3, 4),
      "margin": 1.0,
      "embedding_dim": 64,
      "views": views_lib.to_config(views_lib.WeakStrongViews(num_ops=0, cutout=0.0)),
  })


def stream(config) -> streams.ClassBalanced:
  s = config.siamese
  return streams.ClassBalanced(classes_per_batch=s.classes_per_batch, classes=tuple(s.train_classes))


@dataclasses.dataclass(frozen=True)
class Siamese:
  encoder: nn.Module
  embed: nn.Module
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  image_shape: tuple[int, int, int]
  margin: float


def make(config, info) -> Siamese:
  s = config.siamese
  if s.classes_per_batch < 2:
    raise ValueError(f"siamese.classes_per_batch must be at least 2 so that every batch has dissimilar pairs, "
                     f"got {s.classes_per_batch}.")
  if s.margin <= 0:
    raise ValueError(f"siamese.margin must be > 0, got {s.margin}.")
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return Siamese(encoder=common.make_encoder(config, info), embed=nn.Dense(s.embedding_dim), tx=tx,
                 schedule=schedule, views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                 image_shape=tuple(info.image_shape), margin=s.margin)


def balanced_pairs(key: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """For each row i, a random positive partner (same label, not i) and a random negative partner.

  Args:
    key: PRNG key of the draw.
    labels: int [B], a P x K batch with P >= 2 and K >= 2 (every row has both partners).
  Returns:
    (first [2B], second [2B], y [2B]): pairs (first_j, second_j), the B positive pairs (y = 0) then the
    B negative pairs (y = 1), each partner uniform among the candidates.
  """
  b = labels.shape[0]
  same = labels[:, None] == labels[None, :]
  not_self = ~jnp.eye(b, dtype=bool)
  k_pos, k_neg = jax.random.split(key)
  # argmax of uniform noise over the allowed columns = a uniform draw among them.
  pos = jnp.argmax(jnp.where(same & not_self, jax.random.uniform(k_pos, (b, b)), -1.0), axis=1)
  neg = jnp.argmax(jnp.where(~same, jax.random.uniform(k_neg, (b, b)), -1.0), axis=1)
  rows = jnp.arange(b)
  return (jnp.concatenate([rows, rows]), jnp.concatenate([pos, neg]),
          jnp.concatenate([jnp.zeros(b, jnp.int32), jnp.ones(b, jnp.int32)]))


def init(m: Siamese, rng: jax.Array, pretrained=None) -> common.TrainState:
  return triplet.init(m, rng, pretrained)


def step(m: Siamese, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on a P x K batch {"image": uint8 [B, H, W, C], "label": int32 [B]}: 2B balanced pairs."""
  k_view, k_pairs = jax.random.split(common.step_key(state))
  x = views_lib.weak_view(k_view, batch["image"], m.views)
  first, second, y = balanced_pairs(k_pairs, batch["label"])

  def loss_fn(params):
    e, stats = triplet.embed(m, params, state.batch_stats, x, train=True)
    losses = contrastive_margin(e[first], e[second], y, margin=m.margin)
    d = jax.lax.stop_gradient(jnp.linalg.norm(e[first] - e[second], axis=1))
    half = y.shape[0] // 2
    metrics = {"train/positive_distance": jnp.mean(d[:half]), "train/negative_distance": jnp.mean(d[half:]),
               "train/active_negatives": jnp.mean((d[half:] < m.margin).astype(jnp.float32))}
    return jnp.mean(losses), (metrics, stats)

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: Siamese, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return triplet.predict(m, state, images)
