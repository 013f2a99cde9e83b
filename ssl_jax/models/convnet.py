"""A small ConvNet for small images (28x28 Fashion-MNIST, 8x8 digits, 32x32 CIFAR), fast on CPU.

Stage i is conv3x3(widths[i])-BN-ReLU, repeated `convs_per_stage` times, and every stage but the
last ends with a 2x2 max-pool; global average pooling gives features of size `widths[-1]`. The
default (16, 32, 64, 128) is the Conv-4 layout of few-shot learning with growing widths: on 28x28
inputs the stages run at 28, 14, 7 and 3 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.conv import Conv
from ssl_jax.models.heads import batch_norm

Dtype = Any

# He-normal over fan-out, as torchvision initialises convolutions followed by ReLU.
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 of [b, h, w, c], dropping a trailing odd row or column.

  Written as a reshape and a max rather than `nn.max_pool`: XLA:CPU's gradient of `reduce_window`
  max (select-and-scatter) is several times slower, and this layer dominates a small ConvNet.

  It commutes with ReLU exactly, in value and in gradient: max is monotone, so relu(max(w)) = max(relu(w))
  for every window w; where max(w) > 0 the maxima of w and of relu(w) are the same elements (the gradient is
  shared among tied maxima alike), and where max(w) <= 0 both gradients are zero. `ConvNet` pools first.
  """
  b, h, w, c = x.shape
  if h < 2 or w < 2:
    return x
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ConvNet(nn.Module):
  """Small BatchNorm ConvNet for small images; features of size `widths[-1]`.

  Attributes:
    widths: channels of each stage; a 2x2 max-pool follows every stage but the last.
    convs_per_stage: conv-BN-ReLU layers per stage.
    bn_momentum: running average decay of BatchNorm.
    dtype: compute dtype; BatchNorm always computes in float32.
    param_dtype: dtype of the parameters.
  """
  widths: Sequence[int] = (16, 32, 64, 128)
  convs_per_stage: int = 1
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Size of the pooled features."""
    return self.widths[-1]

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Images [b, h, w, c] (normalised) to features [b, widths[-1]] in the compute dtype."""
    if x.ndim != 4:
      raise ValueError(f"ConvNet expects images of shape [b, h, w, c]; got shape {x.shape}, "
                       "add a channel axis to grayscale images.")
    for i, width in enumerate(self.widths):
      for j in range(self.convs_per_stage):
        x = Conv(width, (3, 3), padding=1, use_bias=False, kernel_init=conv_kernel_init,
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"conv{i}_{j}")(x)
        x = batch_norm(x, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                       momentum=self.bn_momentum, name=f"bn{i}_{j}")
        if j < self.convs_per_stage - 1 or i == len(self.widths) - 1:
          x = nn.relu(x)
      if i < len(self.widths) - 1:
        # relu(max_pool(x)) = max_pool(relu(x)), values and gradients alike (see `max_pool_2x2`), at a
        # quarter of the ReLU's cost.
        x = nn.relu(max_pool_2x2(x))
    return jnp.mean(x, axis=(1, 2))
