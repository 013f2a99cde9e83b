"""RotNet (Gidaris, Singh & Komodakis 2018, arXiv:1803.07728): predict which of 4 rotations an image was turned by.

Every image x_i of the batch is fed in all four rotations, rot90(x_i, k) for k = 0, 1, 2, 3 (the paper's
finding: all four in the same batch beat one random rotation), and a classifier on the encoder's features
predicts k:

  loss = 1 / (4 B) sum_i sum_k  CE( head(f(rot90(x_i, k))), k )

To tell the rotations apart the encoder must recognise the objects' canonical orientation (where the top of a
shoe or a shirt is), which is the semantic signal the representation keeps. The rotations come from
`ssl_jax.losses.pretext.rotations` (grouped per image: rows 4i..4i+3 are image i); one BatchNorm runs over all
4B rotated images. Before rotating, each image gets a light augmentation (random crop with padding and a
horizontal flip, as the paper's CIFAR code), which keeps the labels exact. With `eval.online_probe` a linear
head on `stop_gradient` features of the unrotated images measures the representation during training.

Config section `rotnet`: `head_hidden_dim` (0: a linear head on the features; N: one hidden layer of N with
BatchNorm and ReLU), `augment` (the crop-pad and flip before rotating).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import augment as augment_lib
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.losses.pretext import rotations
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `rotnet` section with its defaults."""
  return ml_collections.ConfigDict({
      "head_hidden_dim": 0,
      "augment": True,
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class RotNet:
  encoder: nn.Module
  head: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  augment: bool


def make(config, info) -> RotNet:
  s = config.rotnet
  if s.head_hidden_dim < 0:
    raise ValueError(f"rotnet.head_hidden_dim must be >= 0 (0 for a linear head), got {s.head_hidden_dim}.")
  if info.image_shape[0] != info.image_shape[1]:
    raise ValueError(f"rotnet needs square images so that every rotation keeps the shape; got "
                     f"{tuple(info.image_shape)}: set data.image_size to crop/resize them.")
  dtype = common.DTYPES[config.model.dtype]
  hidden = (s.head_hidden_dim,) if s.head_hidden_dim else ()
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  return RotNet(encoder=common.make_encoder(config, info), head=heads.MLPHead(hidden, 4, dtype=dtype),
                probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx,
                schedule=schedule, image_shape=tuple(info.image_shape), mean=mean, std=std,
                augment=bool(s.augment))


def init(m: RotNet, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_head, k_probe, k_aug = jax.random.split(rng, 4)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "head": m.head}, (k_enc, k_head),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def rotated_batch(m: RotNet, key: jax.Array, images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The 4B normalised rotated images (rows 4i + k: image i turned by k * 90 degrees) and their labels k."""
  x = views_lib.eval_view(images, mean=m.mean, std=m.std)
  if m.augment:
    k_flip, k_crop = jax.random.split(key)
    x = augment_lib.random_crop_pad(k_crop, augment_lib.random_flip(k_flip, x))
  return rotations(None, x, all_rotations=True)


def step(m: RotNet, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  x, rot_labels = rotated_batch(m, common.step_key(state), batch["image"])

  def loss_fn(params):
    feats, enc_stats = common.apply(m.encoder, params["encoder"], state.batch_stats["encoder"], x, train=True)
    logits, head_stats = common.apply(m.head, params["head"], state.batch_stats["head"], feats, train=True)
    logits = logits.astype(jnp.float32)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, rot_labels))
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats[0::4], batch["label"])
    metrics = {"train/loss": loss, "train/rotation_top1": common.top1(logits, rot_labels), **metrics}
    return loss + probe_loss, (metrics, {"encoder": enc_stats, "head": head_stats})

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: RotNet, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features of the (unrotated) uint8 images."""
  return {"features": common.encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"], images,
                                    mean=m.mean, std=m.std)}
