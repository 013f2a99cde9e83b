"""PIRL (Misra & van der Maaten 2020, arXiv:1912.01991): representations invariant to the jigsaw transform,
contrasted against a memory bank.

An image I (lightly augmented: crop-pad and flip) and its jigsaw transform I^t (3x3 tiles shuffled by a random
permutation, `jigsaw.puzzles`) go through the same encoder phi: f(I) = g(phi(I)) (a linear projection of the
pooled features) and f(I^t) = h([g_t(phi(tile_1)), ..., g_t(phi(tile_9))]) (each tile projected, the nine
concatenated in output order, projected again). Unlike the jigsaw pretext task, the permutation is not
predicted: f(I^t) must equal f(I), whatever the order of the tiles. Both are scored against the memory bank
m_I, an exponential moving average of f(I) over past epochs (state.extra["bank"], one unit-norm row per
training image, indexed by the stream's "index"), with K negatives drawn uniformly from the bank:

  L = lambda L_NCE(m_I, f(I^t)) + (1 - lambda) L_NCE(m_I, f(I)),
  L_NCE(m, v) = -log( exp(<v, m>/t) / (exp(<v, m>/t) + sum_{k<K} exp(<v, m_k'>/t)) )   (`info_nce` with the
                                                                                    negatives as its queue)
  after the step:  m_I <- normalise( alpha m_I + (1 - alpha) normalise(f(I)) )

The bank entries are targets (no gradient). The negatives are drawn once per step for the whole global batch
(from `fold_in(state.rng, state.step)`), so the step is the same on any number of devices. L_NCE is written as
InfoNCE (a softmax over the positive and the K negatives, as most re-implementations) rather than the paper's
binary noise-contrastive form. The probes read phi on whole images.

Config section `pirl`: `proj_dim`, `temperature`, `num_negatives` (K), `lam` (lambda), `bank_momentum`
(alpha), `grid`, `tile_size`, `augment`.
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
from ssl_jax.losses.contrastive import info_nce
from ssl_jax.losses.pretext import jigsaw_permutations
from ssl_jax.methods import common
from ssl_jax.methods.ssl import jigsaw
from ssl_jax.models import heads

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `pirl` section with the paper's values (its bank holds all ImageNet images; K = 32,000)."""
  return ml_collections.ConfigDict({
      "proj_dim": 128,
      "temperature": 0.07,
      "num_negatives": 4096,
      "lam": 0.5,
      "bank_momentum": 0.5,
      "grid": 3,
      "tile_size": 0,
      "num_permutations": 1000,
      "augment": True,
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images(with_indices=True)


@dataclasses.dataclass(frozen=True, eq=False)
class PIRL:
  encoder: nn.Module
  image_head: nn.Module   # g: features -> proj_dim
  tile_head: nn.Module    # g_t: tile features -> proj_dim
  puzzle_head: nn.Module  # h: grid^2 * proj_dim -> proj_dim
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  permutations: np.ndarray
  grid: int
  tile_size: int | None
  bank_size: int
  proj_dim: int
  temperature: float
  num_negatives: int
  lam: float
  bank_momentum: float
  augment: bool

  @property
  def tile_shape(self) -> tuple[int, int, int]:
    h, w, c = self.image_shape
    return (self.tile_size or h // self.grid, self.tile_size or w // self.grid, c)


def make(config, info) -> PIRL:
  s = config.pirl
  jigsaw.check_tiles("pirl", s.grid, s.tile_size, info.image_shape)
  if not info.train_examples:
    raise ValueError("pirl keeps one memory-bank row per training image and needs the size of the training split, "
                     f"which is not known for {config.data.name!r}; use a dataset with a known size.")
  if s.temperature <= 0 or s.num_negatives < 1 or not 0 <= s.lam <= 1 or not 0 <= s.bank_momentum < 1:
    raise ValueError(f"pirl needs temperature > 0, num_negatives >= 1, 0 <= lam <= 1 and 0 <= bank_momentum < 1; "
                     f"got {s.temperature}, {s.num_negatives}, {s.lam} and {s.bank_momentum}.")
  dtype = common.DTYPES[config.model.dtype]
  linear = lambda: heads.MLPHead((), s.proj_dim, use_bn=False, dtype=dtype)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  return PIRL(encoder=common.make_encoder(config, info), image_head=linear(), tile_head=linear(),
              puzzle_head=linear(), probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
              tx=tx, schedule=schedule, image_shape=tuple(info.image_shape), mean=mean, std=std,
              permutations=jigsaw_permutations(s.num_permutations, grid=s.grid), grid=int(s.grid),
              tile_size=int(s.tile_size) or None, bank_size=int(info.train_examples), proj_dim=int(s.proj_dim),
              temperature=float(s.temperature), num_negatives=int(s.num_negatives), lam=float(s.lam),
              bank_momentum=float(s.bank_momentum), augment=bool(s.augment))


def _normalize(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def init(m: PIRL, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_img, k_tile, k_puz, k_probe, k_bank, k_step = jax.random.split(rng, 7)
  params, batch_stats, feats = common.init_chain({"encoder": m.encoder, "image_head": m.image_head},
                                                 (k_enc, k_img), jnp.zeros((2, *m.image_shape), jnp.float32))
  params["tile_head"], batch_stats["tile_head"] = common.init_module(m.tile_head, k_tile, feats)
  t = m.grid * m.grid
  params["puzzle_head"], batch_stats["puzzle_head"] = common.init_module(
      m.puzzle_head, k_puz, jnp.zeros((2, t * m.proj_dim), jnp.float32))
  if m.probe is not None:
    params["probe"] = m.probe.init(k_probe, feats)["params"]
  params, batch_stats = common.load_pretrained(params, batch_stats, pretrained)
  bank = _normalize(jax.random.normal(k_bank, (m.bank_size, m.proj_dim), jnp.float32))
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_step, extra={"bank": bank})


def views(m: PIRL, key: jax.Array, images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(the augmented normalised images I [B, H, W, C], the shuffled tiles of I^t [B, grid^2, th, tw, C])."""
  k_aug, k_puzzle = jax.random.split(key)
  x = augment_lib.normalize(images, m.mean, m.std)
  if m.augment:
    k_flip, k_crop = jax.random.split(k_aug)
    x = augment_lib.random_crop_pad(k_crop, augment_lib.random_flip(k_flip, x))
  tiles, _ = jigsaw.puzzles(k_puzzle, images, grid=m.grid, permutations=m.permutations, tile_size=m.tile_size,
                            mean=m.mean, std=m.std)
  return x, tiles


def embed(m: PIRL, params, batch_stats, x: jax.Array, tiles: jax.Array):
  """(f(I), f(I^t), phi(I), new batch_stats): both embeddings unit-norm, float32; one BatchNorm pass for the
  images and one for the tiles."""
  b, t = tiles.shape[:2]
  feats, stats = common.apply(m.encoder, params["encoder"], batch_stats["encoder"], x, train=True)
  tile_feats, stats = common.apply(m.encoder, params["encoder"], stats, tiles.reshape(b * t, *tiles.shape[2:]),
                                   train=True)
  f_img, _ = common.apply(m.image_head, params["image_head"], {}, feats, train=True)
  g_tiles, _ = common.apply(m.tile_head, params["tile_head"], {}, tile_feats, train=True)
  f_puz, _ = common.apply(m.puzzle_head, params["puzzle_head"], {}, g_tiles.reshape(b, -1), train=True)
  return _normalize(f_img), _normalize(f_puz), feats, {**batch_stats, "encoder": stats}


def update_bank(bank: jax.Array, index: jax.Array, f_img: jax.Array, momentum: float) -> jax.Array:
  """m_I <- normalise(alpha m_I + (1 - alpha) f(I)) for the rows `index` of the batch."""
  new = _normalize(momentum * bank[index] + (1.0 - momentum) * jax.lax.stop_gradient(f_img))
  return bank.at[index].set(new)


def step(m: PIRL, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "index": int32 [B], "label": int32 [B] (probe only)}."""
  k_views, k_neg = jax.random.split(common.step_key(state))
  x, tiles = views(m, k_views, batch["image"])
  bank = state.extra["bank"]
  positives = bank[batch["index"]]
  negatives = bank[jax.random.randint(k_neg, (m.num_negatives,), 0, m.bank_size)]

  def loss_fn(params):
    f_img, f_puz, feats, stats = embed(m, params, state.batch_stats, x, tiles)
    loss_puz = jnp.mean(info_nce(f_puz, positives, queue=negatives, temperature=m.temperature))
    loss_img = jnp.mean(info_nce(f_img, positives, queue=negatives, temperature=m.temperature))
    loss = m.lam * loss_puz + (1.0 - m.lam) * loss_img
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats, batch["label"])
    metrics = {"train/loss": loss, "train/loss_jigsaw": loss_puz, "train/loss_image": loss_img,
               "train/invariance_cos": jax.lax.stop_gradient(jnp.mean(jnp.sum(f_img * f_puz, -1))), **metrics}
    return loss + probe_loss, (metrics, stats, f_img)  # f(I), for the bank update

  state, metrics, f_img = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule, with_outputs=True)
  return state.replace(extra={"bank": update_bank(bank, batch["index"], f_img, m.bank_momentum)}), metrics


def predict(m: PIRL, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features (phi, before the projections) of whole uint8 images."""
  return {"features": common.encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"], images,
                                    mean=m.mean, std=m.std)}
