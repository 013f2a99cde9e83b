"""MoCo v2 (Chen et al. 2020, arXiv:2003.04297; He et al. 2020, arXiv:1911.05722): contrast against a queue.

online (query):  encoder -> projector -> q;   momentum (key): encoder' -> projector' -> k   (no gradient)
loss = 1/2 [ InfoNCE(q1, k2, Q2) + InfoNCE(q2, k1, Q1) ],
InfoNCE(q, k, Q)_i = -log( exp(q_i.k_i / t) / (exp(q_i.k_i / t) + sum_j exp(q_i.Q_j / t)) ),

with q, k, Q L2-normalised. The negatives are the keys of the last `queue_size / B` steps: one queue per
view (solo-learn's symmetric "MoCo v2+"), each a FIFO of normalised keys, [2, K, d] in
`state.extra["queue"]` with a write pointer `state.extra["queue_ptr"]`. After the loss, the B new keys of
each view (the whole global batch, in batch order) overwrite the oldest B rows, at rows ptr .. ptr + B - 1,
and ptr advances by B modulo K; so K must be a multiple of the global batch. The key network's
parameters are an EMA of the query network's (encoder and projector), with the decay rising from
`tau_base` to `tau_final` on BYOL's cosine schedule (`common.cosine_ema_schedule`; tau_base = tau_final
gives MoCo's constant momentum). It runs in training mode (BatchNorm with the batch's statistics, no
shuffle-BN: the batch is normalised as a whole, as solo-learn on one device) and keeps its own running
statistics. The projector is solo-learn's Linear-ReLU-Linear (no BatchNorm).

Config section `moco_v2`: `temperature`, `queue_size` (per view), `tau_base`, `tau_final`,
`proj_hidden_dim`, `proj_dim`, `views`.
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
from ssl_jax.losses.contrastive import info_nce
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)
MOMENTUM_PARTS = ("encoder", "projector")


def config() -> ml_collections.ConfigDict:
  """The `moco_v2` section with solo-learn's CIFAR defaults (MoCo v2+)."""
  return ml_collections.ConfigDict({
      "temperature": 0.2,
      "queue_size": 32768,
      "tau_base": 0.99,
      "tau_final": 0.999,
      "proj_hidden_dim": 2048,
      "proj_dim": 256,
      "views": views_lib.to_config(views_lib.SIMCLR_CIFAR),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class MoCoV2:
  encoder: nn.Module
  projector: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  tau: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  temperature: float
  queue_size: int


def make(config, info) -> MoCoV2:
  s = config.moco_v2
  if s.temperature <= 0:
    raise ValueError(f"moco_v2.temperature must be positive, got {s.temperature}.")
  if s.queue_size <= 0 or s.queue_size % config.batch_size:
    raise ValueError(f"moco_v2.queue_size ({s.queue_size}) must be a positive multiple of the global batch_size "
                     f"({config.batch_size}): each step replaces exactly one batch of keys.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return MoCoV2(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,), s.proj_dim, use_bn=False, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, tau=common.cosine_ema_schedule(s.tau_base, config.total_steps, s.tau_final),
      views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape), temperature=float(s.temperature), queue_size=int(s.queue_size))


def _normalize(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def enqueue(queue: jax.Array, ptr: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
  """FIFO update of a [..., K, d] queue: `keys` [..., B, d] written at rows ptr .. ptr + B - 1, ptr += B mod K.

  K must be a multiple of B (so a batch never wraps around the end). Plain array ops on the global batch:
  the same under any sharding.
  """
  k, b = queue.shape[-2], keys.shape[-2]
  start = (0,) * (queue.ndim - 2) + (ptr, 0)
  queue = jax.lax.dynamic_update_slice(queue, keys.astype(queue.dtype), start)
  return queue, ((ptr + b) % k).astype(ptr.dtype)


def init(m: MoCoV2, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_probe, k_queue, k_aug = jax.random.split(rng, 5)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector}, (k_enc, k_proj),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  target = {"params": {k: params[k] for k in MOMENTUM_PARTS},
            "batch_stats": {k: batch_stats[k] for k in MOMENTUM_PARTS}}
  proj_dim = m.projector.out_dim
  queue = _normalize(jax.random.normal(k_queue, (2, m.queue_size, proj_dim), jnp.float32))
  extra = {"target": target, "queue": queue, "queue_ptr": jnp.zeros((), jnp.int32)}
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug, extra=extra)


def _project(m: MoCoV2, params, batch_stats, x):
  feats, enc_stats = common.apply(m.encoder, params["encoder"], batch_stats["encoder"], x, train=True)
  z, proj_stats = common.apply(m.projector, params["projector"], batch_stats["projector"], feats, train=True)
  return feats, z.astype(jnp.float32), {"encoder": enc_stats, "projector": proj_stats}


def keys(m: MoCoV2, state: common.TrainState, images: jax.Array) -> tuple[jax.Array, jax.Array, dict]:
  """(view 1 and view 2 [2B, ...] of this step, normalised keys [2, B, d], new target BN statistics)."""
  view1, view2 = views_lib.simclr_views(common.step_key(state), images, m.views)
  x = jnp.concatenate([view1, view2])
  target = state.extra["target"]
  _, k, target_stats = _project(m, target["params"], target["batch_stats"], x)
  return x, jax.lax.stop_gradient(_normalize(k).reshape(2, view1.shape[0], -1)), target_stats


def step(m: MoCoV2, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  x, k, target_stats = keys(m, state, batch["image"])
  b = k.shape[1]
  queue = state.extra["queue"]

  def loss_fn(params):
    feats, q, stats = _project(m, params, state.batch_stats, x)
    loss = 0.5 * (jnp.mean(info_nce(q[:b], k[1], queue=queue[1], temperature=m.temperature))
                  + jnp.mean(info_nce(q[b:], k[0], queue=queue[0], temperature=m.temperature)))
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats[:b], batch["label"])
    return loss + probe_loss, ({"train/loss": loss, **metrics}, stats)

  tau = m.tau(state.step)
  new_state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  online = {p: new_state.params[p] for p in MOMENTUM_PARTS}
  target = {"params": common.ema(state.extra["target"]["params"], online, tau), "batch_stats": target_stats}
  queue, ptr = enqueue(queue, state.extra["queue_ptr"], k)
  return (new_state.replace(extra={"target": target, "queue": queue, "queue_ptr": ptr}),
          {**metrics, "train/tau": tau})


def predict(m: MoCoV2, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Query encoder features of uint8 images."""
  return common.encoder_features(m, state, images)
