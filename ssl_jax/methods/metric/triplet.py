"""Triplet networks with online mining (Schroff et al. 2015; Hermans, Beyer & Leibe 2017).

Each batch holds P classes x K examples of the training classes (`streams.ClassBalanced`); the embedding
e = normalize(W f(x)) is trained with the triplet loss on the hardest positive and negative of every
anchor in the batch (`mining="batch_hard"`, Hermans et al.) or FaceNet's semi-hard negatives
(`mining="batch_semi_hard"`), averaged over the anchors that have both. It is judged by the `retrieval`
suite on the test images of the classes held out of training (Recall@K, MAP@R), beside raw pixels.

Config section `triplet`: `classes_per_batch` (P; K = batch_size / P), `train_classes` (the rest are held
out), `margin`, `mining`, `squared` (squared distances), `embedding_dim`, `views` (weak augmentation).
The network (`init`, `embed`, `predict`) is shared with `siamese`, which trains it on pairs instead.
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
from ssl_jax.losses.metric import batch_hard_triplet, batch_semi_hard_triplet
from ssl_jax.methods import common

SUITES = ("retrieval",)
MINERS = {"batch_hard": batch_hard_triplet, "batch_semi_hard": batch_semi_hard_triplet}


def config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "classes_per_batch": 5,
      "train_classes": (0, 1, 2, 3, 4),
      "margin": 0.2,
      "mining": "batch_hard",
      "squared": False,
      "embedding_dim": 64,
      "views": views_lib.to_config(views_lib.WeakStrongViews(num_ops=0, cutout=0.0)),
  })


def stream(config) -> streams.ClassBalanced:
  s = config.triplet
  return streams.ClassBalanced(classes_per_batch=s.classes_per_batch, classes=tuple(s.train_classes))


@dataclasses.dataclass(frozen=True)
class Triplet:
  encoder: nn.Module
  embed: nn.Module
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  image_shape: tuple[int, int, int]
  margin: float
  mining: str
  squared: bool


def make(config, info) -> Triplet:
  s = config.triplet
  if s.mining not in MINERS:
    raise ValueError(f"triplet.mining must be one of {', '.join(MINERS)}, got {s.mining!r}.")
  if s.margin < 0:
    raise ValueError(f"triplet.margin must be >= 0, got {s.margin}.")
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return Triplet(encoder=common.make_encoder(config, info), embed=nn.Dense(s.embedding_dim), tx=tx,
                 schedule=schedule, views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                 image_shape=tuple(info.image_shape), margin=s.margin, mining=s.mining, squared=s.squared)


def init(m: Triplet, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_emb, k_aug = jax.random.split(rng, 3)
  x = jnp.zeros((2, *m.image_shape), jnp.float32)
  enc_params, enc_stats = common.init_module(m.encoder, k_enc, x)
  feats, _ = common.apply(m.encoder, enc_params, enc_stats, x, train=False)
  params = {"encoder": enc_params, "embed": m.embed.init(k_emb, feats)["params"]}
  params, batch_stats = common.load_pretrained(params, {"encoder": enc_stats}, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def embed(m: Triplet, params, batch_stats, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
  """Unit-norm float32 embeddings of normalised images, and the BatchNorm statistics."""
  feats, enc_stats = common.apply(m.encoder, params["encoder"], batch_stats["encoder"], x, train=train)
  e = m.embed.apply({"params": params["embed"]}, feats).astype(jnp.float32)
  return e / jnp.maximum(jnp.linalg.norm(e, axis=1, keepdims=True), 1e-12), {"encoder": enc_stats}


def step(m: Triplet, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on a P x K batch {"image": uint8 [B, H, W, C], "label": int32 [B]}."""
  x = views_lib.weak_view(common.step_key(state), batch["image"], m.views)

  def loss_fn(params):
    e, stats = embed(m, params, state.batch_stats, x, train=True)
    losses, valid = MINERS[m.mining](e, batch["label"], margin=m.margin, squared=m.squared)
    loss = jnp.sum(losses) / jnp.maximum(jnp.sum(valid), 1)
    active = jax.lax.stop_gradient(jnp.mean((losses > 0).astype(jnp.float32)))
    return loss, ({"train/active_triplets": active}, stats)

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: Triplet, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  x = views_lib.eval_view(images, mean=m.views.mean, std=m.views.std)
  return {"embeddings": embed(m, state.params, state.batch_stats, x, train=False)[0]}
