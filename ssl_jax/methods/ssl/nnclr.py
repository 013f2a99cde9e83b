"""NNCLR (Dwibedi et al. 2021, arXiv:2104.14548): the positive is the nearest neighbour from a support set.

encoder -> projector -> z (normalised) -> predictor -> p, for two views of each image. Each z is replaced by
its nearest neighbour (largest cosine) NN(z) in a support queue Q of past projections, and

  loss = 1/2 [ InfoNCE(NN(z1), p2) + InfoNCE(NN(z2), p1) ],
  InfoNCE(a, p)_i = -log( exp(a_i . p_i / t) / sum_j exp(a_i . p_j / t) )   (normalised; j over the batch)

so the positive of a view is another image that looks like it, and the negatives are the other
predictions of the batch (`losses.info_nce` without a queue). The support set is a FIFO queue of the
normalised view-1 projections of past steps, [K, d] in `state.extra["queue"]` with a write pointer
`state.extra["queue_ptr"]`; after the loss the B new projections (the global batch, in order) overwrite
rows ptr .. ptr + B - 1 (K a multiple of B). NN(z) carries no gradient (it is a row of the queue): only the
predictions are pushed. The labels of the queued images are kept beside the queue (`queue_labels`) for one
metric only, `train/nn_acc` (how often the neighbour has the anchor's class); they never reach the loss.
Networks as solo-learn: projector Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN; predictor Linear-BN-ReLU, Linear.

Config section `nnclr`: `temperature`, `queue_size`, `proj_hidden_dim`, `proj_dim`, `pred_hidden_dim`,
`views`.
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
from ssl_jax.methods.ssl.moco_v2 import enqueue
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `nnclr` section with solo-learn's CIFAR defaults."""
  return ml_collections.ConfigDict({
      "temperature": 0.2,
      "queue_size": 65536,
      "proj_hidden_dim": 2048,
      "proj_dim": 256,
      "pred_hidden_dim": 4096,
      "views": views_lib.to_config(views_lib.BYOL),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class NNCLR:
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  temperature: float
  queue_size: int


def make(config, info) -> NNCLR:
  s = config.nnclr
  if s.temperature <= 0:
    raise ValueError(f"nnclr.temperature must be positive, got {s.temperature}.")
  if s.queue_size <= 0 or s.queue_size % config.batch_size:
    raise ValueError(f"nnclr.queue_size ({s.queue_size}) must be a positive multiple of the global batch_size "
                     f"({config.batch_size}): each step replaces exactly one batch of the support set.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return NNCLR(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,) * 2, s.proj_dim, last_bn=True, last_bn_affine=True,
                              dtype=dtype),
      predictor=heads.MLPHead((s.pred_hidden_dim,), s.proj_dim, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape), temperature=float(s.temperature), queue_size=int(s.queue_size))


def _normalize(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def init(m: NNCLR, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_pred, k_probe, k_queue, k_aug = jax.random.split(rng, 6)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector, "predictor": m.predictor}, (k_enc, k_proj, k_pred),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  extra = {"queue": _normalize(jax.random.normal(k_queue, (m.queue_size, m.projector.out_dim), jnp.float32)),
           "queue_labels": jnp.full((m.queue_size,), -1, jnp.int32),
           "queue_ptr": jnp.zeros((), jnp.int32)}
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug, extra=extra)


def nearest_neighbour(z: jax.Array, queue: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(indices [B], rows [B, d]) of the queue rows with the largest dot product with each normalised z."""
  idx = jnp.argmax(z @ queue.T, axis=1)
  return idx, queue[idx]


def step(m: NNCLR, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe and `nn_acc` only)}."""
  view1, view2 = views_lib.simclr_views(common.step_key(state), batch["image"], m.views)
  x = jnp.concatenate([view1, view2])
  b = view1.shape[0]
  queue = state.extra["queue"]

  def loss_fn(params):
    stats = state.batch_stats
    feats, enc_stats = common.apply(m.encoder, params["encoder"], stats["encoder"], x, train=True)
    z, proj_stats = common.apply(m.projector, params["projector"], stats["projector"], feats, train=True)
    p, pred_stats = common.apply(m.predictor, params["predictor"], stats["predictor"], z, train=True)
    z = jax.lax.stop_gradient(_normalize(z))
    idx1, nn1 = nearest_neighbour(z[:b], queue)
    _, nn2 = nearest_neighbour(z[b:], queue)
    p = p.astype(jnp.float32)
    loss = 0.5 * (jnp.mean(info_nce(nn1, p[b:], temperature=m.temperature))
                  + jnp.mean(info_nce(nn2, p[:b], temperature=m.temperature)))
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats[:b], batch["label"])
    nn_acc = jnp.mean((state.extra["queue_labels"][idx1] == batch["label"]).astype(jnp.float32))
    metrics = {"train/loss": loss, "train/nn_acc": nn_acc, **metrics}
    stats = {"encoder": enc_stats, "projector": proj_stats, "predictor": pred_stats}
    return loss + probe_loss, (metrics, stats, z[:b])  # the new projections of view 1, for the queue

  new_state, metrics, z1 = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule, with_outputs=True)
  queue, ptr = enqueue(queue, state.extra["queue_ptr"], z1)
  labels, _ = enqueue(state.extra["queue_labels"][:, None], state.extra["queue_ptr"], batch["label"][:, None])
  return new_state.replace(extra={"queue": queue, "queue_labels": labels[:, 0], "queue_ptr": ptr}), metrics


def predict(m: NNCLR, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features (before the projector) of uint8 images."""
  return common.encoder_features(m, state, images)
