"""SwAV (Caron et al. 2020, arXiv:2006.09882): predict one crop's cluster code from another crop.

encoder -> projector -> z / ||z|| -> scores s = z C^T against K unit-norm prototypes C [K, d], for 2 global
and `num_local` small crops of each image (multi-crop, `views.multi_crop_views`). The codes of each global
crop v are the Sinkhorn-Knopp equipartition of its scores over the global batch (`losses.sinkhorn_knopp`,
no gradient), and every other crop predicts them:

  loss = 1/2 sum_{v in {0, 1}} 1/(V - 1) sum_{u != v} mean_b [ -sum_k q_v[b, k] log softmax_k(s_u[b] / t) ]

(the value of `losses.swav`; the step calls `losses.sinkhorn_knopp` itself so that a queue's rows can join
the Sinkhorn batch). The prototypes are projected back onto the unit sphere after every
update (and start there), and for the first `freeze_prototypes_steps` steps they get no gradient and keep
their value (no weight decay either), as the paper's frozen-prototype warm-up. With `queue_size > 0`, from
step `queue_start_step` on, the normalised projections of the global crops of the last steps (one FIFO
queue per global crop, [2, Q, d] in `state.extra["queue"]`) are scored with the current prototypes and
join the Sinkhorn batch, whose codes are then kept for the batch's rows only (the paper's queue for small
batches). Everything is computed on the global batch inside the jitted step (the same on any mesh).

Config section `swav`: `num_prototypes`, `temperature`, `sinkhorn_epsilon`, `sinkhorn_iters`,
`freeze_prototypes_steps`, `queue_size` (per global crop; 0: none), `queue_start_step`, `proj_hidden_dim`,
`proj_dim`, `views` (a `MultiCropViews` preset).
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
from ssl_jax.losses.clustering import sinkhorn_knopp
from ssl_jax.methods import common
from ssl_jax.methods.ssl.moco_v2 import enqueue
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `swav` section with solo-learn's CIFAR defaults and the paper's multi-crop."""
  return ml_collections.ConfigDict({
      "num_prototypes": 3000,
      "temperature": 0.1,
      "sinkhorn_epsilon": 0.05,
      "sinkhorn_iters": 3,
      "freeze_prototypes_steps": 390,
      "queue_size": 3840,
      "queue_start_step": 9750,
      "proj_hidden_dim": 2048,
      "proj_dim": 128,
      "views": views_lib.to_config(views_lib.SWAV),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class SwAV:
  encoder: nn.Module
  projector: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.MultiCropViews
  image_shape: tuple[int, int, int]
  num_prototypes: int
  temperature: float
  epsilon: float
  sinkhorn_iters: int
  freeze_prototypes_steps: int
  queue_size: int
  queue_start_step: int


def make(config, info) -> SwAV:
  s = config.swav
  if s.temperature <= 0 or s.sinkhorn_epsilon <= 0:
    raise ValueError(f"swav.temperature and swav.sinkhorn_epsilon must be positive; got {s.temperature} and "
                     f"{s.sinkhorn_epsilon}.")
  if s.num_prototypes < 2 or s.sinkhorn_iters < 1:
    raise ValueError(f"swav needs num_prototypes >= 2 and sinkhorn_iters >= 1; got {s.num_prototypes} and "
                     f"{s.sinkhorn_iters}.")
  if s.freeze_prototypes_steps < 0 or s.queue_start_step < 0:
    raise ValueError(f"swav.freeze_prototypes_steps and swav.queue_start_step must be >= 0; got "
                     f"{s.freeze_prototypes_steps} and {s.queue_start_step}.")
  if s.queue_size < 0 or (s.queue_size and s.queue_size % config.batch_size):
    raise ValueError(f"swav.queue_size ({s.queue_size}) must be 0 (no queue) or a multiple of the global "
                     f"batch_size ({config.batch_size}).")
  views = views_lib.from_config(views_lib.MultiCropViews, s.views, config.data.name)
  if views.num_global != 2:
    raise ValueError(f"swav assigns codes to 2 global crops: set swav.views.num_global=2 (got "
                     f"{views.num_global}).")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return SwAV(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,), s.proj_dim, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, views=views, image_shape=tuple(info.image_shape),
      num_prototypes=int(s.num_prototypes), temperature=float(s.temperature), epsilon=float(s.sinkhorn_epsilon),
      sinkhorn_iters=int(s.sinkhorn_iters), freeze_prototypes_steps=int(s.freeze_prototypes_steps),
      queue_size=int(s.queue_size), queue_start_step=int(s.queue_start_step))


def _normalize(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def init(m: SwAV, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_protos, k_probe, k_aug = jax.random.split(rng, 5)
  params, batch_stats, feats = common.init_chain({"encoder": m.encoder, "projector": m.projector},
                                                 (k_enc, k_proj), jnp.zeros((2, *m.image_shape), jnp.float32))
  params["prototypes"] = {"kernel": _normalize(
      jax.random.normal(k_protos, (m.num_prototypes, m.projector.out_dim), jnp.float32))}
  if m.probe is not None:
    params["probe"] = m.probe.init(k_probe, feats)["params"]
  params, batch_stats = common.load_pretrained(params, batch_stats, pretrained)
  extra = {}
  if m.queue_size:
    extra = {"queue": jnp.zeros((2, m.queue_size, m.projector.out_dim), jnp.float32),
             "queue_ptr": jnp.zeros((), jnp.int32)}
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug, extra=extra)


def codes(m: SwAV, scores: jax.Array, queue_scores: jax.Array | None, use_queue) -> jax.Array:
  """Sinkhorn codes [b, K] of one crop's scores, with the queue's scores in the Sinkhorn batch when asked."""
  sinkhorn = lambda s: sinkhorn_knopp(s, epsilon=m.epsilon, num_iters=m.sinkhorn_iters)
  if queue_scores is None:
    return sinkhorn(scores)
  b = scores.shape[0]
  return jax.lax.cond(use_queue, lambda: sinkhorn(jnp.concatenate([queue_scores, scores]))[-b:],
                      lambda: sinkhorn(scores))


def swapped_prediction(scores: list[jax.Array], q: list[jax.Array], temperature: float) -> jax.Array:
  """1/|A| sum_v 1/(V-1) sum_{u != v} mean_b CE(q_v, softmax(s_u / t)) for the codes q of the crops A."""
  log_p = [jax.nn.log_softmax(s / temperature, axis=-1) for s in scores]
  total = 0.0
  for v, q_v in enumerate(q):
    others = [jnp.mean(-jnp.sum(q_v * lp, axis=-1)) for u, lp in enumerate(log_p) if u != v]
    total += sum(others) / len(others)
  return total / len(q)


def step(m: SwAV, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  globals_, locals_ = views_lib.multi_crop_views(common.step_key(state), batch["image"], m.views)
  b = globals_[0].shape[0]
  frozen = state.step < m.freeze_prototypes_steps
  use_queue = state.step >= m.queue_start_step

  def loss_fn(params):
    stats = state.batch_stats
    groups = [jnp.concatenate(globals_)] + ([jnp.concatenate(locals_)] if locals_ else [])
    enc_stats, proj_stats, zs, first_feats = stats["encoder"], stats["projector"], [], None
    for x in groups:  # crops of one size at a time
      feats, enc_stats = common.apply(m.encoder, params["encoder"], enc_stats, x, train=True)
      z, proj_stats = common.apply(m.projector, params["projector"], proj_stats, feats, train=True)
      zs.append(_normalize(z))
      first_feats = feats[:b] if first_feats is None else first_feats
    z = jnp.concatenate(zs)                                          # [V * B, d], global crops first
    protos = params["prototypes"]["kernel"]
    protos = jnp.where(frozen, jax.lax.stop_gradient(protos), protos)
    scores = list((z @ protos.T).reshape(-1, b, m.num_prototypes))   # V crops of [B, K]
    queue = state.extra.get("queue")
    q = [codes(m, scores[v], None if queue is None else queue[v] @ protos.T, use_queue) for v in (0, 1)]
    loss = swapped_prediction(scores, q, m.temperature)
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), first_feats, batch["label"])
    metrics = {"train/loss": loss, **metrics}
    return loss + probe_loss, (metrics, {"encoder": enc_stats, "projector": proj_stats}, z[:2 * b])

  new_state, metrics, z_global = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule,
                                                      with_outputs=True)
  z_global = z_global.reshape(2, b, -1)  # the global crops' projections, for the queue
  old, new = state.params["prototypes"]["kernel"], new_state.params["prototypes"]["kernel"]
  protos = _normalize(jnp.where(frozen, old, new))  # frozen: no update at all; then back on the sphere
  params = {**new_state.params, "prototypes": {"kernel": protos}}
  extra = state.extra
  if m.queue_size:
    queue, ptr = enqueue(state.extra["queue"], state.extra["queue_ptr"], z_global)
    extra = {"queue": queue, "queue_ptr": ptr}
  metrics["train/prototypes_frozen"] = frozen.astype(jnp.float32)
  return new_state.replace(params=params, extra=extra), metrics


def predict(m: SwAV, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features (before the projector) of uint8 images."""
  return common.encoder_features(m, state, images)
