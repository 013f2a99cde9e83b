"""SimSiam (Chen & He 2021, arXiv:2011.10566): a Siamese network, a predictor and a stop-gradient; no target net.

encoder f -> projector g -> z;  predictor h -> p = h(z);  two views x1, x2 of each image:

  loss = 1/2 D(p1, stopgrad(z2)) + 1/2 D(p2, stopgrad(z1)),    D(p, z) = -cos(p, z)

The stop-gradient is the whole mechanism: without it (or without the predictor) the network collapses to a
constant; with it, the same weights produce both branches and no EMA target, negatives or large batch is
needed. The projector is MLP-BN-ReLU layers with a BatchNorm on its output (without affine, as the authors'
code), the predictor a bottleneck MLP (`pred_hidden_dim`, a quarter of `proj_dim` in the paper) without BN on
its output. As the paper, the predictor's learning rate stays constant (`fixed_predictor_lr`) while the rest
follows the schedule of `optim`. Collapse shows as a loss near -1 with `eval/rankme` (the effective rank of
the features) falling towards 1.

Config section `simsiam`: `proj_hidden_dim`, `proj_dim`, `proj_layers` (hidden layers of the projector),
`pred_hidden_dim`, `fixed_predictor_lr`, `views`.
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
  """The `simsiam` section with the paper's ImageNet sizes (small-image configs shrink them)."""
  return ml_collections.ConfigDict({
      "proj_hidden_dim": 2048,
      "proj_dim": 2048,
      "proj_layers": 2,            # hidden layers: 2 on ImageNet, 1 in the paper's CIFAR variant
      "pred_hidden_dim": 512,
      "fixed_predictor_lr": True,
      "views": views_lib.to_config(views_lib.SIMCLR),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class SimSiam:
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]


def optimizer(config) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """`optim` for every part; with `fixed_predictor_lr`, the predictor's at the constant base rate."""
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  if not config.simsiam.fixed_predictor_lr:
    return tx, schedule
  constant = config.optim.copy_and_resolve_references()
  constant.warmup_steps, constant.end_lr_factor = 0, 1.0
  pred_tx, _ = optim_lib.make_optimizer(constant, batch_size=config.batch_size, total_steps=config.total_steps)
  labels = lambda params: {k: jax.tree.map(lambda _: "predictor" if k == "predictor" else "rest", v)
                           for k, v in params.items()}
  return optax.multi_transform({"rest": tx, "predictor": pred_tx}, labels), schedule


def make(config, info) -> SimSiam:
  s = config.simsiam
  if s.proj_layers < 0 or min(s.proj_hidden_dim, s.proj_dim, s.pred_hidden_dim) < 1:
    raise ValueError(f"simsiam needs proj_layers >= 0 and positive widths; got {s.proj_layers}, "
                     f"{s.proj_hidden_dim}, {s.proj_dim} and {s.pred_hidden_dim}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optimizer(config)
  return SimSiam(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,) * s.proj_layers, s.proj_dim, last_bn=True, dtype=dtype),
      predictor=heads.MLPHead((s.pred_hidden_dim,), s.proj_dim, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape))


def init(m: SimSiam, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_pred, k_probe, k_aug = jax.random.split(rng, 5)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector, "predictor": m.predictor}, (k_enc, k_proj, k_pred),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def simsiam_loss(p: jax.Array, z: jax.Array) -> jax.Array:
  """1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1)) for p, z [2B, d] holding view 1 then view 2; in [-1, 1]."""
  b = p.shape[0] // 2
  z = jax.lax.stop_gradient(z)
  return 0.5 * (jnp.mean(negative_cosine(p[:b], z[b:])) + jnp.mean(negative_cosine(p[b:], z[:b])))


def step(m: SimSiam, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  view1, view2 = views_lib.simclr_views(common.step_key(state), batch["image"], m.views)
  x = jnp.concatenate([view1, view2])  # both views in one batch: BatchNorm over the 2B views
  b = view1.shape[0]

  def loss_fn(params):
    stats = state.batch_stats
    feats, enc_stats = common.apply(m.encoder, params["encoder"], stats["encoder"], x, train=True)
    z, proj_stats = common.apply(m.projector, params["projector"], stats["projector"], feats, train=True)
    p, pred_stats = common.apply(m.predictor, params["predictor"], stats["predictor"], z, train=True)
    z, p = z.astype(jnp.float32), p.astype(jnp.float32)
    loss = simsiam_loss(p, z)
    # The spread of the normalised outputs: 1/sqrt(d) for healthy ones, 0 for a collapsed (constant) output.
    zn = z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats[:b], batch["label"])
    metrics = {"train/loss": loss, "train/z_std": jax.lax.stop_gradient(jnp.mean(jnp.std(zn, axis=0))),
               **metrics}
    return loss + probe_loss, (metrics, {"encoder": enc_stats, "projector": proj_stats,
                                         "predictor": pred_stats})

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: SimSiam, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features of uint8 images."""
  return common.encoder_features(m, state, images)
