"""Wide ResNet with pre-activation blocks, as used by FixMatch and the semi-supervised benchmarks.

WRN-28-2 (1.47M parameters) follows FixMatch's TensorFlow model: a 3x3 stem of 16 channels, three
stages of (depth - 4) / 6 pre-activation blocks of 16k, 32k and 64k channels (strides 1, 2, 2),
leaky ReLU with slope 0.1, BatchNorm with momentum 0.999 and epsilon 1e-3, biased convolutions, and
a final BN-leaky-ReLU before global average pooling. The first block activates its input before the
shortcut. (USB's PyTorch port feeds the un-activated input to conv1 in the other widening blocks; we
keep the original.)

References: Zagoruyko & Komodakis 2016, arXiv:1605.07146; Sohn et al. 2020 (FixMatch),
arXiv:2001.07685.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.conv import Conv
from ssl_jax.models.convnet import conv_kernel_init
from ssl_jax.models.heads import batch_norm

Dtype = Any


class WideBlock(nn.Module):
  """Pre-activation block: BN-act-conv3x3-BN-act-conv3x3 plus a shortcut (1x1 conv if widening)."""
  filters: int
  strides: int = 1
  activate_before_residual: bool = False
  leaky_slope: float = 0.1
  bn_momentum: float = 0.999
  bn_epsilon: float = 1e-3
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    conv = functools.partial(Conv, use_bias=True, kernel_init=conv_kernel_init,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    bn = functools.partial(batch_norm, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                           momentum=self.bn_momentum, epsilon=self.bn_epsilon)
    act = functools.partial(nn.leaky_relu, negative_slope=self.leaky_slope)
    y = act(bn(x, name="bn1"))
    if self.activate_before_residual:
      x = y
    y = conv(self.filters, (3, 3), self.strides, padding=1, name="conv1")(y)
    y = act(bn(y, name="bn2"))
    y = conv(self.filters, (3, 3), padding=1, name="conv2")(y)
    if x.shape[-1] != self.filters or self.strides != 1:
      x = conv(self.filters, (1, 1), self.strides, padding=0, name="proj_conv")(x)
    return x + y


class WideResNet(nn.Module):
  """WRN-depth-k encoder: images [b, h, w, c] to pooled features [b, 64 * widen_factor].

  Attributes:
    depth: total depth, 6n + 4 (28 gives 4 blocks per stage).
    widen_factor: k; the stages have 16k, 32k and 64k channels.
    leaky_slope: negative slope of the leaky ReLU.
    bn_momentum: running average decay of BatchNorm (0.999 as in FixMatch).
    bn_epsilon: BatchNorm epsilon (1e-3, TensorFlow's default used by FixMatch).
    dtype: compute dtype; BatchNorm always computes in float32.
    param_dtype: dtype of the parameters.
  """
  depth: int = 28
  widen_factor: int = 2
  leaky_slope: float = 0.1
  bn_momentum: float = 0.999
  bn_epsilon: float = 1e-3
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Channels of the last stage, 64 * widen_factor."""
    return 64 * self.widen_factor

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Images [b, h, w, c] (normalised) to features [b, feature_dim] in the compute dtype."""
    if (self.depth - 4) % 6 != 0 or self.depth < 10:
      raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1 (e.g. 28); got {self.depth}.")
    if x.ndim != 4:
      raise ValueError(f"WideResNet expects images of shape [b, h, w, c]; got shape {x.shape}.")
    blocks_per_stage = (self.depth - 4) // 6
    block = functools.partial(
        WideBlock, leaky_slope=self.leaky_slope, bn_momentum=self.bn_momentum,
        bn_epsilon=self.bn_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
    x = Conv(16, (3, 3), padding=1, use_bias=True, kernel_init=conv_kernel_init,
                dtype=self.dtype, param_dtype=self.param_dtype, name="stem_conv")(x)
    for i in range(3):
      for j in range(blocks_per_stage):
        first = j == 0
        x = block(filters=16 * self.widen_factor * 2 ** i, strides=2 if i > 0 and first else 1,
                  activate_before_residual=i == 0 and first,
                  name=f"stage{i + 1}_block{j + 1}")(x, train=train)
    x = batch_norm(x, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                   momentum=self.bn_momentum, epsilon=self.bn_epsilon, name="final_bn")
    x = nn.leaky_relu(x, negative_slope=self.leaky_slope)
    return jnp.mean(x, axis=(1, 2))


WRN28_2 = functools.partial(WideResNet, depth=28, widen_factor=2)
WRN28_8 = functools.partial(WideResNet, depth=28, widen_factor=8)
