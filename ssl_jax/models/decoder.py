"""A small convolutional decoder, the mirror of `ConvNet`, for the auto-encoders (28x28, 32x32, 8x8 images).

codes [b, d] -> Dense -> a (h / 2^k) x (w / 2^k) grid of `widths[0]` channels -> for each further width a
2x nearest-neighbour upsampling and conv3x3-ReLU -> conv3x3 to the image's channels. With the default
widths (64, 32, 16) (k = 2) a 28x28 image starts from a 7x7 grid (ConvNet's third stage), a 32x32 one from
8x8 and an 8x8 one from 2x2. The output is unbounded (logits of a Bernoulli likelihood or, through a
sigmoid, pixels in [0, 1]); the caller decides. No BatchNorm: the decoder's output for one code does not
depend on the rest of the batch (the VAE's samples from the prior, one by one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.conv import Conv
from ssl_jax.models.convnet import conv_kernel_init, max_pool_2x2

Dtype = Any


def upsample_2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x upsampling of [b, h, w, c] to [b, 2h, 2w, c]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ConvDecoder(nn.Module):
  """Codes [b, d] (or a grid of codes [b, h / 2^k, w / 2^k, d]) to images [b, h, w, c] (unbounded outputs).

  Attributes:
    image_shape: (h, w, c) of the images; h and w divisible by 2^(len(widths) - 1).
    widths: channels from the coarsest grid to the finest; a 2x upsampling comes before each but the first.
    dtype: compute dtype.
    param_dtype: dtype of the parameters.
  """
  image_shape: tuple[int, int, int]
  widths: Sequence[int] = (64, 32, 16)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    """Codes [b, d] or [b, h', w', d] to images [b, h, w, c]; `train` is accepted for a uniform call and unused."""
    del train
    h, w, c = self.image_shape
    if not self.widths:
      raise ValueError("ConvDecoder needs at least one width.")
    f = 2 ** (len(self.widths) - 1)
    if h % f or w % f:
      raise ValueError(f"ConvDecoder with {len(self.widths)} widths upsamples by {f}, which must divide the "
                       f"image size {h}x{w}; use fewer decoder widths.")
    if z.ndim == 4:  # a grid of codes (VQ-VAE): a conv instead of the dense layer
      if z.shape[1:3] != (h // f, w // f):
        raise ValueError(f"ConvDecoder with {len(self.widths)} widths needs a {h // f}x{w // f} grid of codes for "
                         f"{h}x{w} images; got {z.shape[1:3]}.")
      x = nn.relu(Conv(self.widths[0], (3, 3), padding=1, kernel_init=conv_kernel_init, dtype=self.dtype,
                       param_dtype=self.param_dtype, name="grid_in")(z))
    elif z.ndim == 2:
      x = nn.Dense((h // f) * (w // f) * self.widths[0], dtype=self.dtype, param_dtype=self.param_dtype,
                   name="dense")(z)
      x = nn.relu(x).reshape(z.shape[0], h // f, w // f, self.widths[0])
    else:
      raise ValueError(f"ConvDecoder expects codes [b, d] or a grid [b, h', w', d]; got shape {z.shape}.")
    for i, width in enumerate(self.widths):
      if i:
        x = upsample_2x(x)
      x = Conv(width, (3, 3), padding=1, kernel_init=conv_kernel_init, dtype=self.dtype,
               param_dtype=self.param_dtype, name=f"conv{i}")(x)
      x = nn.relu(x)
    return Conv(c, (3, 3), padding=1, dtype=self.dtype, param_dtype=self.param_dtype, name="out")(x)


class ConvGridEncoder(nn.Module):
  """Images [b, h, w, c] to a grid of codes [b, h / 2^k, w / 2^k, dim] (VQ-VAE's encoder, no pooling).

  conv3x3-ReLU for each width, a 2x2 max-pool after each but the last (k = len(widths) - 1 pools), then a
  1x1 conv to `dim`. No BatchNorm: an image's codes do not depend on its batch (a tokenizer).
  """
  widths: Sequence[int] = (32, 64, 64)
  dim: int = 32
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train
    for i, width in enumerate(self.widths):
      x = nn.relu(Conv(width, (3, 3), padding=1, kernel_init=conv_kernel_init, dtype=self.dtype,
                       param_dtype=self.param_dtype, name=f"conv{i}")(x))
      if i < len(self.widths) - 1:
        x = max_pool_2x2(x)
    return Conv(self.dim, (1, 1), padding=0, dtype=self.dtype, param_dtype=self.param_dtype, name="out")(x)
