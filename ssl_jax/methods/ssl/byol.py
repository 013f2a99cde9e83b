"""BYOL (Grill et al. 2020, arXiv:2006.07733): predict a slowly moving target network's projection.

online:  encoder -> projector -> predictor -> p;      target: encoder' -> projector' -> z'   (no gradient)
loss  =  mean_i [2 - 2 cos(p_i(v1), z'_i(v2))] + mean_i [2 - 2 cos(p_i(v2), z'_i(v1))]

The target's parameters are an EMA of the online encoder and projector, with the decay tau(k) rising from
`tau_base` to `tau_final` on BYOL's cosine schedule (`common.cosine_ema_schedule`, a pure function of the
step). The target runs in training mode (its BatchNorm uses the batch's statistics, as in the authors'
code) and keeps its own running statistics. Views follow BYOL's asymmetric recipe (blur on view 1,
solarize on view 2). Nothing but the online network is differentiated; the target lives in
`state.extra["target"]`.

Config section `byol`: `tau_base`, `tau_final`, `proj_hidden_dim`, `proj_dim`, `pred_hidden_dim`, `views`.
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
from ssl_jax.losses.contrastive import negative_cosine
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `byol` section with the paper's defaults (ImageNet sizes; small-image configs shrink them)."""
  return ml_collections.ConfigDict({
      "tau_base": 0.99,        # solo-learn's CIFAR value; the paper uses 0.996 on ImageNet
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
class BYOL:
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  tau: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]


def make(config, info) -> BYOL:
  s = config.byol
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return BYOL(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,), s.proj_dim, dtype=dtype),
      predictor=heads.MLPHead((s.pred_hidden_dim,), s.proj_dim, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, tau=common.cosine_ema_schedule(s.tau_base, config.total_steps, s.tau_final),
      views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape))


def init(m: BYOL, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_pred, k_probe, k_aug = jax.random.split(rng, 5)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector, "predictor": m.predictor}, (k_enc, k_proj, k_pred),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  target = {"params": {k: params[k] for k in ("encoder", "projector")},
            "batch_stats": {k: batch_stats[k] for k in ("encoder", "projector")}}
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug, extra={"target": target})


def _project(m: BYOL, params, batch_stats, x):
  feats, enc_stats = common.apply(m.encoder, params["encoder"], batch_stats["encoder"], x, train=True)
  z, proj_stats = common.apply(m.projector, params["projector"], batch_stats["projector"], feats, train=True)
  return feats, z, {"encoder": enc_stats, "projector": proj_stats}


def step(m: BYOL, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  view1, view2 = views_lib.simclr_views(common.step_key(state), batch["image"], m.views)
  x = jnp.concatenate([view1, view2])
  b = view1.shape[0]
  target = state.extra["target"]
  _, z_target, target_stats = _project(m, target["params"], target["batch_stats"], x)
  z_target = jax.lax.stop_gradient(z_target.astype(jnp.float32))

  def loss_fn(params):
    feats, z, stats = _project(m, params, state.batch_stats, x)
    p, pred_stats = common.apply(m.predictor, params["predictor"], state.batch_stats["predictor"], z,
                                 train=True)
    p = p.astype(jnp.float32)
    # 2 - 2 cos = 2 + 2 negative_cosine; each view predicts the other view's target projection.
    loss = (jnp.mean(2.0 + 2.0 * negative_cosine(p[:b], z_target[b:]))
            + jnp.mean(2.0 + 2.0 * negative_cosine(p[b:], z_target[:b])))
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats[:b], batch["label"])
    return loss + probe_loss, ({"train/loss": loss, **metrics}, {**stats, "predictor": pred_stats})

  tau = m.tau(state.step)
  new_state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  online = {k: new_state.params[k] for k in ("encoder", "projector")}
  new_target = {"params": common.ema(target["params"], online, tau), "batch_stats": target_stats}
  return new_state.replace(extra={"target": new_target}), {**metrics, "train/tau": tau}


def predict(m: BYOL, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Online encoder features of uint8 images."""
  return common.encoder_features(m, state, images)
