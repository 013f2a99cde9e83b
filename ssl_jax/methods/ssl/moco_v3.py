"""MoCo v3 (Chen, Xie & He 2021, arXiv:2104.02057): contrast predictions with momentum keys of the batch.

online:    encoder -> projector -> predictor -> q;    momentum: encoder' -> projector' -> k   (no gradient)
loss = ctr(q1, k2) + ctr(q2, k1),   ctr(q, k) = 2t * mean_i -log( exp(q_i.k_i / t) / sum_j exp(q_i.k_j / t) )

with q, k L2-normalised and j over the keys of the whole global batch (`losses.info_nce` without a queue):
no memory queue, the other images of the batch are the negatives. The factor 2t is the paper's (it makes
the gradient's scale independent of t). The momentum network is an EMA of the online encoder and
projector, with the decay rising from `tau_base` to `tau_final` on BYOL's cosine schedule
(`common.cosine_ema_schedule`); it gets no gradient, only the EMA. Heads as the paper for ViT (and
solo-learn): projector Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN (no affine); predictor Linear-BN-ReLU,
Linear. The encoder is `model.encoder`, a ViT in the paper (`vit_tiny` with `model.patch_size`); a
BatchNorm encoder's momentum copy runs in training mode and keeps its own statistics.

Config section `moco_v3`: `temperature`, `tau_base`, `tau_final`, `proj_hidden_dim`, `proj_dim`,
`pred_hidden_dim`, `views`.
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
  """The `moco_v3` section with solo-learn's CIFAR defaults."""
  return ml_collections.ConfigDict({
      "temperature": 0.2,
      "tau_base": 0.99,
      "tau_final": 1.0,
      "proj_hidden_dim": 4096,
      "proj_dim": 256,
      "pred_hidden_dim": 4096,
      "views": views_lib.to_config(views_lib.BYOL),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class MoCoV3:
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  tau: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  temperature: float


def make(config, info) -> MoCoV3:
  s = config.moco_v3
  if s.temperature <= 0:
    raise ValueError(f"moco_v3.temperature must be positive, got {s.temperature}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return MoCoV3(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,) * 2, s.proj_dim, last_bn=True, dtype=dtype),
      predictor=heads.MLPHead((s.pred_hidden_dim,), s.proj_dim, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, tau=common.cosine_ema_schedule(s.tau_base, config.total_steps, s.tau_final),
      views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape), temperature=float(s.temperature))


def init(m: MoCoV3, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_pred, k_probe, k_aug = jax.random.split(rng, 5)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector, "predictor": m.predictor}, (k_enc, k_proj, k_pred),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  target = {"params": {k: params[k] for k in MOMENTUM_PARTS},
            "batch_stats": {k: batch_stats[k] for k in MOMENTUM_PARTS}}
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug, extra={"target": target})


def _project(m: MoCoV3, params, batch_stats, x):
  feats, enc_stats = common.apply(m.encoder, params["encoder"], batch_stats["encoder"], x, train=True)
  z, proj_stats = common.apply(m.projector, params["projector"], batch_stats["projector"], feats, train=True)
  return feats, z, {"encoder": enc_stats, "projector": proj_stats}


def contrastive(q: jax.Array, k: jax.Array, temperature: float) -> jax.Array:
  """2t * mean InfoNCE of queries against the batch's keys (MoCo v3's ctr)."""
  return 2.0 * temperature * jnp.mean(info_nce(q, k, temperature=temperature))


def step(m: MoCoV3, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  view1, view2 = views_lib.simclr_views(common.step_key(state), batch["image"], m.views)
  x = jnp.concatenate([view1, view2])
  b = view1.shape[0]
  target = state.extra["target"]
  _, k, target_stats = _project(m, target["params"], target["batch_stats"], x)
  k = jax.lax.stop_gradient(k.astype(jnp.float32))

  def loss_fn(params):
    feats, z, stats = _project(m, params, state.batch_stats, x)
    q, pred_stats = common.apply(m.predictor, params["predictor"], state.batch_stats["predictor"], z, train=True)
    q = q.astype(jnp.float32)
    loss = contrastive(q[:b], k[b:], m.temperature) + contrastive(q[b:], k[:b], m.temperature)
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats[:b], batch["label"])
    return loss + probe_loss, ({"train/loss": loss, **metrics}, {**stats, "predictor": pred_stats})

  tau = m.tau(state.step)
  new_state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  online = {p: new_state.params[p] for p in MOMENTUM_PARTS}
  new_target = {"params": common.ema(target["params"], online, tau), "batch_stats": target_stats}
  return new_state.replace(extra={"target": new_target}), {**metrics, "train/tau": tau}


def predict(m: MoCoV3, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Online encoder features of uint8 images."""
  return common.encoder_features(m, state, images)
