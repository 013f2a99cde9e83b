"""SupCon (Khosla et al. 2020, arXiv:2004.11362): contrastive learning whose positives are the same class.

encoder -> projector (MLP) -> z for two views of each labelled image; over the 2N views of the global batch,
with u = z / ||z||, A(i) every other view and P(i) the views of the same label (the other view of the same
image included):

  l_i = -1/|P(i)| sum_{p in P(i)} log( exp(u_i . u_p / t) / sum_{a in A(i)} exp(u_i . u_a / t) )   (L_out)

(`losses.supcon`). It is SimCLR with the labels choosing the positives: the supervised upper reference of
the contrastive family, trained on the labels of the `Images` stream (every training image's label). The
features are judged like every self-supervised method's, by a linear probe and kNN on frozen features.

Config section `supcon`: `temperature`, `proj_hidden_dim`, `proj_dim`, `views`.
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
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.losses.contrastive import supcon
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `supcon` section with solo-learn's CIFAR defaults."""
  return ml_collections.ConfigDict({
      "temperature": 0.2,
      "proj_hidden_dim": 2048,
      "proj_dim": 256,
      "views": views_lib.to_config(views_lib.SIMCLR_CIFAR),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class SupCon:
  encoder: nn.Module
  projector: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  temperature: float


def make(config, info) -> SupCon:
  s = config.supcon
  if s.temperature <= 0:
    raise ValueError(f"supcon.temperature must be positive, got {s.temperature}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return SupCon(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,), s.proj_dim, use_bn=False, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape), temperature=float(s.temperature))


def init(m: SupCon, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_probe, k_aug = jax.random.split(rng, 4)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector}, (k_enc, k_proj),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def step(m: SupCon, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on a global batch {"image": uint8 [B, H, W, C], "label": int32 [B]}."""
  def pair_loss(z1, z2, labels):
    # [B, 2, d]: the two views of image i in row i, flattened view-major by the loss.
    return jnp.mean(supcon(jnp.stack([z1, z2], axis=1), labels, temperature=m.temperature)), {}

  return common.two_view_step(m, state, batch, pair_loss)


def predict(m: SupCon, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features (before the projector) of uint8 images."""
  return common.encoder_features(m, state, images)
