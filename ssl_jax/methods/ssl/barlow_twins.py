"""Barlow Twins (Zbontar et al. 2021, arXiv:2103.03230): push the views' cross-correlation to the identity.

encoder -> projector (Linear-BN-ReLU, Linear-BN-ReLU, Linear) -> z1, z2 for the two views of each image;
each dimension is standardised over the global batch of N images (BatchNorm without affine, biased
variance), C = zn1^T zn2 / N, and

  loss = scale_loss * [ sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 ]       (`losses.barlow_twins`)

The invariance term makes the views agree dimension by dimension, the redundancy term decorrelates the
dimensions; no negatives, predictor or target network. The loss is batch-coupled: the statistics are those
of the whole global batch, computed on the global arrays inside the jitted step (the same on any mesh).
Both views go through the networks as one batch of 2N, so the projector's BatchNorm also sees both views.
`scale_loss` (solo-learn's 0.1 on CIFAR) rescales the gradient for SGD/LARS; AdamW barely notices it.

Config section `barlow_twins`: `lambda_`, `scale_loss`, `proj_hidden_dim`, `proj_dim`, `proj_layers`
(hidden layers of the projector), `views`.
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
from ssl_jax.losses.redundancy import barlow_twins
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `barlow_twins` section with solo-learn's CIFAR defaults."""
  return ml_collections.ConfigDict({
      "lambda_": 0.0051,
      "scale_loss": 0.1,
      "proj_hidden_dim": 2048,
      "proj_dim": 2048,
      "proj_layers": 2,
      "views": views_lib.to_config(views_lib.BYOL),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class BarlowTwins:
  encoder: nn.Module
  projector: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  lambda_: float
  scale_loss: float


def make(config, info) -> BarlowTwins:
  s = config.barlow_twins
  if s.lambda_ < 0 or s.scale_loss <= 0:
    raise ValueError(f"barlow_twins needs lambda_ >= 0 and scale_loss > 0; got lambda_={s.lambda_}, "
                     f"scale_loss={s.scale_loss}.")
  if s.proj_layers < 0 or min(s.proj_hidden_dim, s.proj_dim) < 1:
    raise ValueError(f"barlow_twins needs proj_layers >= 0 and positive widths; got {s.proj_layers}, "
                     f"{s.proj_hidden_dim} and {s.proj_dim}.")
  if config.batch_size < 2:
    raise ValueError(f"barlow_twins standardises over the batch: batch_size must be at least 2, got "
                     f"{config.batch_size}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return BarlowTwins(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,) * s.proj_layers, s.proj_dim, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape), lambda_=float(s.lambda_), scale_loss=float(s.scale_loss))


def init(m: BarlowTwins, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_probe, k_aug = jax.random.split(rng, 4)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector}, (k_enc, k_proj),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def step(m: BarlowTwins, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on a global batch {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  return common.two_view_step(m, state, batch, lambda z1, z2, labels: (
      m.scale_loss * barlow_twins(z1, z2, lambda_=m.lambda_), {}))


def predict(m: BarlowTwins, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features (before the projector) of uint8 images."""
  return common.encoder_features(m, state, images)
