"""Jigsaw puzzles (Noroozi & Favaro 2016, arXiv:1603.09246): shuffle 3x3 tiles of an image by one of P
permutations and classify which one.

Each image is cropped to a multiple of the grid (27x27 of 28x28, at a random offset), cut into 3x3 cells, and
a random tile_size x tile_size crop taken inside each cell (the paper's gap between tiles, so that edges do
not give the answer away). A label y ~ U{0..P-1} picks the permutation: output position t holds tile
perms[y, t] (`ssl_jax.losses.pretext.jigsaw`). The P permutations are the maximal-Hamming-distance set of
`jigsaw_permutations` (the paper's Algorithm 1: the classes are as far apart as the greedy can make them).
A shared encoder (the "context-free network": every tile through the same weights, one BatchNorm over all 9B
tiles) embeds each tile; the 9 features are concatenated in output order and an MLP predicts y:

  loss = 1/B sum_i CE( head([f(tile_i,1), ..., f(tile_i,9)]), y_i )

To put the tiles back the encoder must know what part of an object each tile shows. The probes read the
encoder on whole images (a fully convolutional encoder with global pooling takes any size), which differ
from the small tiles it was trained on: the representation transfers imperfectly, as in the paper, where
the conv layers are fine-tuned. With `eval.online_probe` the probe reads the encoder on the whole images in
inference mode (no gradient to the encoder).

Config section `jigsaw`: `num_permutations` (P), `grid` (2 or 3), `tile_size` (0: the whole cell),
`head_hidden_dim`, `permutation_seed`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import augment as augment_lib
from ssl_jax.data import streams
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.losses.pretext import jigsaw, jigsaw_permutations
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `jigsaw` section with its defaults (the paper uses 1000 permutations on ImageNet)."""
  return ml_collections.ConfigDict({
      "num_permutations": 100,
      "grid": 3,
      "tile_size": 0,
      "head_hidden_dim": 512,
      "permutation_seed": 0,
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True, eq=False)
class Jigsaw:
  encoder: nn.Module
  head: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  permutations: np.ndarray   # int32 [P, grid^2], read-only
  grid: int
  tile_size: int | None

  @property
  def tile_shape(self) -> tuple[int, int, int]:
    h, w, c = self.image_shape
    return (self.tile_size or h // self.grid, self.tile_size or w // self.grid, c)


def check_tiles(section: str, grid: int, tile_size: int, image_shape) -> None:
  """ValueError when the grid or the tile size do not fit the images."""
  h, w, _ = image_shape
  if grid not in (2, 3):
    raise ValueError(f"{section}.grid must be 2 or 3, got {grid}.")
  cell = min(h, w) // grid
  if not 0 <= tile_size <= cell or cell < 1:
    raise ValueError(f"{section}.tile_size must be between 0 (the whole cell) and the cell size {cell} of "
                     f"{h}x{w} images in a {grid}x{grid} grid; got {tile_size}.")


def make(config, info) -> Jigsaw:
  s = config.jigsaw
  check_tiles("jigsaw", s.grid, s.tile_size, info.image_shape)
  if s.head_hidden_dim < 0:
    raise ValueError(f"jigsaw.head_hidden_dim must be >= 0 (0: a linear head), got {s.head_hidden_dim}.")
  perms = jigsaw_permutations(s.num_permutations, grid=s.grid, seed=s.permutation_seed)
  dtype = common.DTYPES[config.model.dtype]
  hidden = (s.head_hidden_dim,) if s.head_hidden_dim else ()
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  return Jigsaw(encoder=common.make_encoder(config, info), head=heads.MLPHead(hidden, len(perms), dtype=dtype),
                probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx,
                schedule=schedule, image_shape=tuple(info.image_shape), mean=mean, std=std, permutations=perms,
                grid=int(s.grid), tile_size=int(s.tile_size) or None)


def init(m: Jigsaw, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_head, k_probe, k_step = jax.random.split(rng, 4)
  params, batch_stats = {}, {}
  params["encoder"], batch_stats["encoder"] = common.init_module(m.encoder, k_enc,
                                                                 jnp.zeros((2, *m.tile_shape), jnp.float32))
  dim = m.encoder.feature_dim
  params["head"], batch_stats["head"] = common.init_module(m.head, k_head,
                                                           jnp.zeros((2, m.grid * m.grid * dim), jnp.float32))
  if m.probe is not None:
    params["probe"] = m.probe.init(k_probe, jnp.zeros((2, dim), jnp.float32))["params"]
  params, batch_stats = common.load_pretrained(params, batch_stats, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_step)


def crop_to_grid(key: jax.Array, x: jax.Array, grid: int) -> jax.Array:
  """Crop [b, h, w, c] to [b, grid * (h // grid), grid * (w // grid), c] at a random offset per image."""
  b, h, w, c = x.shape
  ch, cw = grid * (h // grid), grid * (w // grid)
  if (ch, cw) == (h, w):
    return x
  ky, kx = jax.random.split(key)
  oy = jax.random.randint(ky, (b,), 0, h - ch + 1)
  ox = jax.random.randint(kx, (b,), 0, w - cw + 1)
  return jax.vmap(lambda im, i, j: jax.lax.dynamic_slice(im, (i, j, 0), (ch, cw, c)))(x, oy, ox)


def puzzles(key: jax.Array, images: jax.Array, *, grid: int, permutations, tile_size: int | None,
            mean, std) -> tuple[jax.Array, jax.Array]:
  """Normalised uint8 `images` as shuffled tiles [b, grid^2, th, tw, c] and their permutation labels [b]."""
  k_crop, k_puzzle = jax.random.split(key)
  x = crop_to_grid(k_crop, augment_lib.normalize(images, mean, std), grid)
  return jigsaw(k_puzzle, x, permutations, tile_size=tile_size)


def step(m: Jigsaw, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  tiles, labels = puzzles(common.step_key(state), batch["image"], grid=m.grid, permutations=m.permutations,
                          tile_size=m.tile_size, mean=m.mean, std=m.std)
  b, t = tiles.shape[:2]
  whole = jax.lax.stop_gradient(common.encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"],
                                              batch["image"], mean=m.mean, std=m.std))

  def loss_fn(params):
    feats, enc_stats = common.apply(m.encoder, params["encoder"], state.batch_stats["encoder"],
                                    tiles.reshape(b * t, *tiles.shape[2:]), train=True)
    logits, head_stats = common.apply(m.head, params["head"], state.batch_stats["head"], feats.reshape(b, -1),
                                      train=True)
    logits = logits.astype(jnp.float32)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), whole, batch["label"])
    metrics = {"train/loss": loss, "train/permutation_top1": common.top1(logits, labels), **metrics}
    return loss + probe_loss, (metrics, {"encoder": enc_stats, "head": head_stats})

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: Jigsaw, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features of whole uint8 images."""
  return {"features": common.encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"], images,
                                    mean=m.mean, std=m.std)}
