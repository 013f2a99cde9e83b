"""MAE (He et al. 2021, arXiv:2111.06377): masked autoencoders; a ViT encodes 25% of the patches, a light
decoder redraws the other 75%.

Per image, `random_masking` ranks the n patches by uniform noise and keeps the first k = n (1 - mask_ratio);
the ViT encoder (`ViT(..., ids_keep=...)`) runs on those k patch tokens (with their position embeddings) and
the CLS token only: the masked patches never reach it. The decoder maps the encoded tokens to its own width,
appends one shared learned mask token per masked patch, unshuffles them to raster order (`ids_restore`), adds
fixed sine-cosine position embeddings, runs a few transformer blocks and predicts each patch's p x p x c
pixels. The loss is on the masked patches only, against the per-patch normalised pixels (the paper's
`norm_pix_loss`, `masked_reconstruction`):

  t_n = (x_n - mean(x_n)) / sqrt(var(x_n) + eps),   L = 1/B sum_b  sum_n m_bn mean_k (pred_bnk - t_bnk)^2 / sum_n m_bn

With 75% of the image hidden, the task cannot be solved by interpolating neighbouring pixels: the encoder has
to infer the object from a few fragments. The probes read the CLS features of the encoder on the whole,
unmasked image (the ViT's ordinary call); the online probe, to cost nothing, reads the CLS token of the masked
pass (a live signal, below what the final probes see). MAE features are known to be weak under a linear probe
(the paper's point is fine-tuning: 68% linear vs 83.6% fine-tuned for ViT-B on ImageNet). Images get a random horizontal
flip (the paper also uses random resized crops, which small images do not need).

Config section `mae`: `mask_ratio`, `decoder_dim`, `decoder_depth`, `decoder_heads`, `norm_pix_loss`, `flip`.
The encoder is the run's `model.encoder` (a `vit_*`), its patch size `model.patch_size`, its image size the
data's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import augment as augment_lib
from ssl_jax.data import streams
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.losses.reconstruction import masked_reconstruction, patchify, random_masking
from ssl_jax.methods import common
from ssl_jax.models.vit import EncoderBlock, sincos_pos_embed

SUITES = ("representation",)


def config() -> ml_collections.ConfigDict:
  """The `mae` section with the paper's defaults (its decoder is 512 wide and 8 deep; small images use less)."""
  return ml_collections.ConfigDict({
      "mask_ratio": 0.75,
      "decoder_dim": 512,
      "decoder_depth": 8,
      "decoder_heads": 16,
      "norm_pix_loss": True,
      "flip": True,
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


class MAEDecoder(nn.Module):
  """Encoded tokens [b, 1 + k, d_enc] and `ids_restore` [b, n] to pixel predictions [b, n, patch_dim].

  Linear to `dim`; a learned mask token for each of the n - k masked patches; tokens put back in raster order
  with `ids_restore`; fixed 2-D sine-cosine position embeddings on a `grid`; `depth` pre-LN blocks; LayerNorm;
  linear to `patch_dim`; the CLS token dropped (as MAE's `forward_decoder`).
  """
  dim: int
  depth: int
  num_heads: int
  grid: tuple[int, int]
  patch_dim: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array, ids_restore: jax.Array, *, train: bool = False) -> jax.Array:
    b, n = ids_restore.shape
    dense = lambda features, name: nn.Dense(features, kernel_init=nn.initializers.xavier_uniform(),
                                            dtype=self.dtype, param_dtype=self.param_dtype, name=name)
    x = dense(self.dim, "embed")(tokens)
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.dim), self.param_dtype)
    patches = jnp.concatenate([x[:, 1:], jnp.broadcast_to(mask_token.astype(x.dtype),
                                                          (b, n + 1 - x.shape[1], self.dim))], axis=1)
    patches = jnp.take_along_axis(patches, ids_restore[:, :, None].astype(jnp.int32), axis=1)
    patches = patches + jnp.asarray(sincos_pos_embed(*self.grid, self.dim))[None].astype(x.dtype)
    x = jnp.concatenate([x[:, :1], patches], axis=1)
    for i in range(self.depth):
      x = EncoderBlock(self.num_heads, 4 * self.dim, dtype=self.dtype, param_dtype=self.param_dtype,
                       name=f"block{i}")(x, train=train)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=self.param_dtype, name="ln")(x)
    return dense(self.patch_dim, "pred")(x)[:, 1:]


@dataclasses.dataclass(frozen=True)
class MAE:
  encoder: nn.Module
  decoder: MAEDecoder
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  patch_size: int
  num_patches: int
  mask_ratio: float
  norm_pix_loss: bool
  flip: bool


def make(config, info) -> MAE:
  s = config.mae
  if not config.model.encoder.startswith("vit"):
    raise ValueError(f"mae needs a ViT encoder (model.encoder=vit_mini, vit_tiny, ...); got "
                     f"{config.model.encoder!r}.")
  if not 0.0 < s.mask_ratio < 1.0:
    raise ValueError(f"mae.mask_ratio must be in (0, 1), got {s.mask_ratio}.")
  h, w, c = info.image_shape
  p = config.model.patch_size
  if h % p or w % p:
    raise ValueError(f"model.patch_size={p} must divide the {h}x{w} images; for 28x28 use 4, 7 or 14.")
  n = (h // p) * (w // p)
  if int(n * (1 - s.mask_ratio)) < 1:
    raise ValueError(f"mae.mask_ratio={s.mask_ratio} leaves no visible patch of the {n}; lower it or use a "
                     "smaller model.patch_size.")
  if s.norm_pix_loss and p * p * c < 2:
    raise ValueError("mae.norm_pix_loss needs patches of at least 2 pixels; set it False for 1x1 patches.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  decoder = MAEDecoder(s.decoder_dim, s.decoder_depth, s.decoder_heads, (h // p, w // p), p * p * c, dtype=dtype)
  return MAE(encoder=common.make_encoder(config, info), decoder=decoder,
             probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx, schedule=schedule,
             image_shape=tuple(info.image_shape), mean=mean, std=std, patch_size=p, num_patches=n,
             mask_ratio=float(s.mask_ratio), norm_pix_loss=bool(s.norm_pix_loss), flip=bool(s.flip))


def init(m: MAE, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_dec, k_probe, k_step = jax.random.split(rng, 4)
  x = jnp.zeros((2, *m.image_shape), jnp.float32)
  params, batch_stats, feats = common.init_chain({"encoder": m.encoder}, (k_enc,), x)
  tokens = m.encoder.apply({"params": params["encoder"]}, x, train=False, return_tokens=True)
  ids = jnp.broadcast_to(jnp.arange(m.num_patches), (2, m.num_patches))
  params["decoder"], batch_stats["decoder"] = common.init_module(m.decoder, k_dec, tokens, ids)
  if m.probe is not None:
    params["probe"] = m.probe.init(k_probe, feats)["params"]
  params, batch_stats = common.load_pretrained(params, batch_stats, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_step)


def forward(m: MAE, params, x: jax.Array, key: jax.Array, *, train: bool):
  """MAE on normalised images x: (pred [b, n, patch_dim], target, mask [b, n], encoded tokens [b, 1 + k, d])."""
  b = x.shape[0]
  mask, ids_restore = random_masking(key, b, m.num_patches, mask_ratio=m.mask_ratio)
  keep = int(m.num_patches * (1 - m.mask_ratio))
  ids_keep = jnp.argsort(ids_restore, axis=1)[:, :keep]
  tokens = m.encoder.apply({"params": params["encoder"]}, x, train=train, ids_keep=ids_keep, return_tokens=True)
  pred = m.decoder.apply({"params": params["decoder"]}, tokens, ids_restore, train=train)
  return pred.astype(jnp.float32), patchify(x, m.patch_size), mask, tokens


def step(m: MAE, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  k_flip, k_mask = jax.random.split(common.step_key(state))
  x = augment_lib.normalize(batch["image"], m.mean, m.std)
  if m.flip:
    x = augment_lib.random_flip(k_flip, x)

  def loss_fn(params):
    pred, target, mask, tokens = forward(m, params, x, k_mask, train=True)
    loss = jnp.mean(masked_reconstruction(pred, target, mask, normalize_target=m.norm_pix_loss))
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), tokens[:, 0], batch["label"])
    return loss + probe_loss, ({"train/loss": loss, **metrics}, state.batch_stats)

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: MAE, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """CLS features of the encoder on the whole (unmasked) uint8 images."""
  return {"features": common.encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"], images,
                                    mean=m.mean, std=m.std)}
