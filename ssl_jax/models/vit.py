"""Vision Transformer encoder with a CLS token; its features are the CLS output after a LayerNorm.

Pre-LayerNorm blocks (LN-attention-residual, LN-MLP-residual) with exact GELU, as in timm and DINO.
Position embeddings cover the patches only (the CLS token has none, as in big_vision): "learned"
embeddings are stored for an `image_size` grid and bilinearly resized for any other grid (multi-crop
views of different sizes), "sincos" embeddings are the fixed 2-D sine-cosine ones of MoCo v3 and
MAE, computed for whatever grid the input has.

References: Dosovitskiy et al. 2021, arXiv:2010.11929; Touvron et al. 2021 (DeiT, Tiny/Small sizes),
arXiv:2012.12877; Chen et al. 2021 (MoCo v3, sincos), arXiv:2104.02057.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

POS_EMBEDS = ("learned", "sincos")


def sincos_pos_embed(grid_h: int, grid_w: int, dim: int,
                     temperature: float = 10000.0) -> np.ndarray:
  """Fixed 2-D sine-cosine position embeddings, shape [grid_h * grid_w, dim], row-major patches.

  A quarter of the channels each holds sin(y w), cos(y w), sin(x w), cos(x w) for frequencies
  w_k = temperature^(-k / (dim / 4)), k = 0 .. dim / 4 - 1.
  """
  if dim % 4 != 0:
    raise ValueError(f"sincos position embeddings need a hidden_dim divisible by 4; got {dim}.")
  y, x = np.meshgrid(np.arange(grid_h, dtype=np.float64), np.arange(grid_w, dtype=np.float64),
                     indexing="ij")
  omega = 1.0 / temperature ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
  y = y.reshape(-1, 1) * omega[None]
  x = x.reshape(-1, 1) * omega[None]
  return np.concatenate([np.sin(y), np.cos(y), np.sin(x), np.cos(x)], axis=1).astype(np.float32)


class DropPath(nn.Module):
  """Stochastic depth: in training, drops a residual branch per example with probability `rate`."""
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if not train or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


class EncoderBlock(nn.Module):
  """Pre-LN transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""
  num_heads: int
  mlp_dim: int
  drop_path: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    dim = x.shape[-1]
    dense_init = nn.initializers.xavier_uniform()
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=self.param_dtype, name="ln1")(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=dense_init, force_fp32_for_softmax=True, deterministic=True, name="attn")(y, y)
    x = x + DropPath(self.drop_path, name="drop_path1")(y, train=train)
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=self.param_dtype, name="ln2")(x)
    y = nn.Dense(self.mlp_dim, kernel_init=dense_init, bias_init=nn.initializers.normal(1e-6),
                 dtype=self.dtype, param_dtype=self.param_dtype, name="mlp_fc1")(y)
    y = nn.gelu(y, approximate=False)
    y = nn.Dense(dim, kernel_init=dense_init, bias_init=nn.initializers.normal(1e-6),
                 dtype=self.dtype, param_dtype=self.param_dtype, name="mlp_fc2")(y)
    return x + DropPath(self.drop_path, name="drop_path2")(y, train=train)


class ViT(nn.Module):
  """ViT encoder: images [b, h, w, c] to CLS features [b, hidden_dim].

  Attributes:
    patch_size: side of the square patches (16 for 224x224 images, 4 for 32x32).
    hidden_dim: token width.
    depth: number of transformer blocks.
    num_heads: attention heads.
    mlp_ratio: MLP width as a multiple of `hidden_dim`.
    pos_embed: "learned" or "sincos" (fixed).
    image_size: side of the images the learned position embeddings are stored for; other sizes
      resize them bilinearly.
    drop_path_rate: stochastic depth rate, growing linearly to this value over the blocks; when
      positive, training needs a "dropout" rng.
    dtype: compute dtype; LayerNorm statistics and the attention softmax use float32.
    param_dtype: dtype of the parameters.
  """
  patch_size: int = 16
  hidden_dim: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_ratio: float = 4.0
  pos_embed: str = "learned"
  image_size: int = 224
  drop_path_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Width of the CLS token features."""
    return self.hidden_dim

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, ids_keep: jax.Array | None = None,
               return_tokens: bool = False, mask: jax.Array | None = None) -> jax.Array:
    """Images [b, h, w, c] (normalised) to CLS features [b, hidden_dim] in the compute dtype.

    Args:
      x: normalised images [b, h, w, c].
      train: training mode (stochastic depth).
      ids_keep: optional int [b, k]: only these patch tokens (raster order, after their position embeddings
        are added) go through the blocks, with the CLS token: MAE's encoder on the visible patches. The
        other patches are never seen. None: every patch (the same computation as before this option).
      return_tokens: return every output token after the final LayerNorm, [b, 1 + k, hidden_dim] (CLS
        first, then the kept patches in the order of `ids_keep`, or all n patches), not the CLS features.
      mask: optional bool [b, n]: these patches' embeddings are replaced by a learned `mask_token` before
        the position embeddings are added (BEiT's masked image modelling). The parameter exists only in
        models initialised with a mask.
    """
    if self.pos_embed not in POS_EMBEDS:
      raise ValueError(f"ViT pos_embed must be one of {POS_EMBEDS}; got {self.pos_embed!r}.")
    if self.hidden_dim % self.num_heads != 0:
      raise ValueError(f"ViT hidden_dim ({self.hidden_dim}) must be divisible by num_heads "
                       f"({self.num_heads}).")
    if x.ndim != 4 or x.shape[1] % self.patch_size or x.shape[2] % self.patch_size:
      raise ValueError(f"ViT expects images [b, h, w, c] with h and w divisible by patch_size="
                       f"{self.patch_size}; got shape {x.shape}.")
    p, dim = self.patch_size, self.hidden_dim
    x = nn.Conv(dim, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype,
                param_dtype=self.param_dtype, kernel_init=nn.initializers.lecun_normal(),
                name="patch_embed")(x)
    b, gh, gw, _ = x.shape
    x = x.reshape(b, gh * gw, dim)
    if mask is not None:
      if mask.shape != (b, gh * gw):
        raise ValueError(f"ViT mask must be [b, n] = {(b, gh * gw)} for these images; got {mask.shape}.")
      token = self.param("mask_token", nn.initializers.truncated_normal(0.02), (1, 1, dim), self.param_dtype)
      x = jnp.where(mask[:, :, None], token.astype(x.dtype), x)
    if self.pos_embed == "learned":
      g = self.image_size // p
      pos = self.param("pos_embed", nn.initializers.truncated_normal(0.02), (g, g, dim),
                       self.param_dtype)
      if (gh, gw) != (g, g):
        pos = jax.image.resize(pos, (gh, gw, dim), method="bilinear")
      pos = pos.reshape(gh * gw, dim)
    else:
      pos = jnp.asarray(sincos_pos_embed(gh, gw, dim))
    x = x + pos[None].astype(x.dtype)
    if ids_keep is not None:
      if ids_keep.ndim != 2 or ids_keep.shape[0] != b:
        raise ValueError(f"ViT ids_keep must be [b, k] indices of patches for the batch of {b}; got shape "
                         f"{ids_keep.shape}.")
      x = jnp.take_along_axis(x, ids_keep[:, :, None].astype(jnp.int32), axis=1)
    cls = self.param("cls_token", nn.initializers.truncated_normal(0.02), (1, 1, dim),
                     self.param_dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, dim)).astype(x.dtype), x], axis=1)
    mlp_dim = int(self.mlp_ratio * dim)
    for i in range(self.depth):
      rate = self.drop_path_rate * i / max(self.depth - 1, 1)
      x = EncoderBlock(self.num_heads, mlp_dim, rate, dtype=self.dtype,
                       param_dtype=self.param_dtype, name=f"block{i}")(x, train=train)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="final_ln")(x)
    return x if return_tokens else x[:, 0]


def vit_micro(patch_size: int = 4, **kwargs: Any) -> ViT:
  """A 1-block, 32-wide ViT with 2 heads: a seconds-long smoke test of a ViT method, not a model to train."""
  fields = {"patch_size": patch_size, "hidden_dim": 32, "depth": 1, "num_heads": 2}
  return ViT(**{**fields, **kwargs})


def vit_mini(patch_size: int = 7, **kwargs: Any) -> ViT:
  """A 4-block, 128-wide ViT with 4 heads (0.8M params) for 28x28 images on a CPU; kwargs override fields."""
  fields = {"patch_size": patch_size, "hidden_dim": 128, "depth": 4, "num_heads": 4}
  return ViT(**{**fields, **kwargs})


def vit_tiny(patch_size: int = 16, **kwargs: Any) -> ViT:
  """ViT-Tiny: 192 wide, 12 blocks, 3 heads (5.5M params at patch 16); kwargs override fields."""
  fields = {"patch_size": patch_size, "hidden_dim": 192, "depth": 12, "num_heads": 3}
  return ViT(**{**fields, **kwargs})


def vit_small(patch_size: int = 16, **kwargs: Any) -> ViT:
  """ViT-Small: 384 wide, 12 blocks, 6 heads (21.7M params at patch 16); kwargs override fields."""
  fields = {"patch_size": patch_size, "hidden_dim": 384, "depth": 12, "num_heads": 6}
  return ViT(**{**fields, **kwargs})
