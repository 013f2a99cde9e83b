"""ResNet v1.5 (stride in the 3x3 convolution) with a CIFAR or an ImageNet stem.

`ResNet18` and `ResNet50` follow torchvision's layers, padding and initialisation, so parameter
counts match (without the classifier, ResNet-18 with the CIFAR stem: 11.17M; ResNet-50 with the
ImageNet stem: 23.51M), and the last BatchNorm of each residual branch starts at zero (Goyal et
al. 2017).

References: He et al. 2016, arXiv:1512.03385; Goyal et al. 2017, arXiv:1706.02677.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.conv import Conv
from ssl_jax.models.convnet import conv_kernel_init
from ssl_jax.models.heads import batch_norm

Dtype = Any

STEMS = ("cifar", "imagenet")


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with an identity or 1x1-projection shortcut (ResNet-18/34)."""
  expansion: ClassVar[int] = 1
  filters: int
  strides: int = 1
  zero_init_residual: bool = True
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    conv = functools.partial(Conv, use_bias=False, kernel_init=conv_kernel_init,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    bn = functools.partial(batch_norm, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                           momentum=self.bn_momentum)
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    y = conv(self.filters, (3, 3), self.strides, padding=1, name="conv1")(x)
    y = nn.relu(bn(y, name="bn1"))
    y = conv(self.filters, (3, 3), padding=1, name="conv2")(y)
    y = bn(y, scale_init=last_init, name="bn2")
    if x.shape[-1] != self.filters or self.strides != 1:
      x = conv(self.filters, (1, 1), self.strides, padding=0, name="proj_conv")(x)
      x = bn(x, name="proj_bn")
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut (ResNet-50/101/152)."""
  expansion: ClassVar[int] = 4
  filters: int
  strides: int = 1
  zero_init_residual: bool = True
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    conv = functools.partial(Conv, use_bias=False, kernel_init=conv_kernel_init,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    bn = functools.partial(batch_norm, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                           momentum=self.bn_momentum)
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    out = self.filters * self.expansion
    y = conv(self.filters, (1, 1), padding=0, name="conv1")(x)
    y = nn.relu(bn(y, name="bn1"))
    y = conv(self.filters, (3, 3), self.strides, padding=1, name="conv2")(y)
    y = nn.relu(bn(y, name="bn2"))
    y = conv(out, (1, 1), padding=0, name="conv3")(y)
    y = bn(y, scale_init=last_init, name="bn3")
    if x.shape[-1] != out or self.strides != 1:
      x = conv(out, (1, 1), self.strides, padding=0, name="proj_conv")(x)
      x = bn(x, name="proj_bn")
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet encoder: images [b, h, w, c] to globally pooled features [b, feature_dim].

  Attributes:
    stage_sizes: residual blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
    block_cls: `BasicBlock` or `Bottleneck`.
    num_filters: width of the first stage; stage i has num_filters * 2**i (times the expansion).
    stem: "cifar" (3x3 conv, stride 1, no max-pool; for 32x32 or 64x64 images) or "imagenet"
      (7x7 conv, stride 2, then 3x3 max-pool with stride 2).
    zero_init_residual: start the last BatchNorm scale of each residual branch at zero.
    bn_momentum: running average decay of BatchNorm.
    dtype: compute dtype; BatchNorm always computes in float32.
    param_dtype: dtype of the parameters.
  """
  stage_sizes: Sequence[int]
  block_cls: type[nn.Module]
  num_filters: int = 64
  stem: str = "cifar"
  zero_init_residual: bool = True
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Channels of the last stage: 512 for ResNet-18, 2048 for ResNet-50."""
    return self.num_filters * 2 ** (len(self.stage_sizes) - 1) * self.block_cls.expansion

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Images [b, h, w, c] (normalised) to features [b, feature_dim] in the compute dtype."""
    if self.stem not in STEMS:
      raise ValueError(f"ResNet stem must be one of {STEMS}; got {self.stem!r}.")
    if x.ndim != 4:
      raise ValueError(f"ResNet expects images of shape [b, h, w, c]; got shape {x.shape}.")
    conv = functools.partial(Conv, use_bias=False, kernel_init=conv_kernel_init,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    if self.stem == "cifar":
      x = conv(self.num_filters, (3, 3), padding=1, name="stem_conv")(x)
    else:
      x = conv(self.num_filters, (7, 7), 2, padding=3, name="stem_conv")(x)
    x = batch_norm(x, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                   momentum=self.bn_momentum, name="stem_bn")
    x = nn.relu(x)
    if self.stem == "imagenet":
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = self.block_cls(
            filters=self.num_filters * 2 ** i, strides=2 if i > 0 and j == 0 else 1,
            zero_init_residual=self.zero_init_residual, bn_momentum=self.bn_momentum,
            dtype=self.dtype, param_dtype=self.param_dtype, name=f"stage{i + 1}_block{j + 1}")(
                x, train=train)
    return jnp.mean(x, axis=(1, 2))


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=Bottleneck)
