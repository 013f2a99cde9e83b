"""SimCLR (Chen et al. 2020, arXiv:2002.05709): NT-Xent between two augmented views of every image.

encoder -> projector (MLP) -> NT-Xent over the global batch, with one BatchNorm over both views (SimCLR's
global BN). Both views are made on device inside the step from `fold_in(state.rng, state.step)`. The
encoder never sees a label: with `eval.online_probe` a linear head is trained on `stop_gradient` features
of the first view as a live measure of the representation.

Config section `simclr`: `temperature`, `block_size` (0: dense NT-Xent; N: blockwise log-sum-exp over N
columns), the projector (`proj_hidden_dim`, `proj_dim`, `proj_layers`), and `views` (a `SimCLRViews`
preset, see `ssl_jax.data.views`).
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
from ssl_jax.losses.contrastive import ntxent
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)

# SimCLR's CIFAR recipe: colour strength 0.5, no blur (what small grayscale images need too).
VIEWS = views_lib.SIMCLR_CIFAR


def config() -> ml_collections.ConfigDict:
  """The `simclr` section with its defaults."""
  return ml_collections.ConfigDict({
      "temperature": 0.2,
      "block_size": 0,
      "proj_hidden_dim": 512,
      "proj_dim": 128,
      "proj_layers": 2,
      "views": views_lib.to_config(VIEWS),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class SimCLR:
  """Static parts of SimCLR: not traced, closed over by the jitted step."""
  encoder: nn.Module
  projector: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  temperature: float
  block_size: int | None


def make(config, info) -> SimCLR:
  s = config.simclr
  if s.temperature <= 0:
    raise ValueError(f"simclr.temperature must be positive, got {s.temperature}.")
  if s.proj_layers < 1:
    raise ValueError(f"simclr.proj_layers must be at least 1, got {s.proj_layers}.")
  dtype = common.DTYPES[config.model.dtype]
  projector = heads.MLPHead(hidden_dims=(s.proj_hidden_dim,) * (s.proj_layers - 1), out_dim=s.proj_dim,
                            dtype=dtype)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return SimCLR(encoder=common.make_encoder(config, info), projector=projector,
                probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx,
                schedule=schedule, views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
                image_shape=tuple(info.image_shape), temperature=s.temperature, block_size=s.block_size or None)


def init(m: SimCLR, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_probe, k_aug = jax.random.split(rng, 4)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector}, (k_enc, k_proj),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def step(m: SimCLR, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on a global batch {"image": uint8 [B, H, W, C], "label": int32 [B]}."""
  return common.two_view_step(m, state, batch, lambda z1, z2, labels: (
      jnp.mean(ntxent(z1, z2, temperature=m.temperature, block_size=m.block_size)), {}))


def predict(m: SimCLR, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features (before the projector) of uint8 images."""
  return common.encoder_features(m, state, images)
