"""BatchNorm-free encoders for multiple-instance learning and quick baselines.

MIL batches hold padded instances; an encoder with BatchNorm would mix the padding into its batch
statistics, so the MIL methods use these (no normalisation layer at all):

* `MLP`: flatten, then Dense-ReLU for each width (the instance encoder of many MIL baselines);
* `LeNetMIL`: the feature extractor of Ilse et al. 2018 for MNIST-bags, Conv(20, 5x5)-ReLU-MaxPool,
  Conv(50, 5x5)-ReLU-MaxPool, Dense(500)-ReLU (valid padding: 28x28 -> 4x4x50 -> 500); `lenet_mil_small`
  is Conv(8, 5x5, stride 2)-ReLU, Conv(16, 5x5, stride 2)-ReLU, Dense(128)-ReLU (28x28 -> 4x4x16 -> 128),
  15 times cheaper to train on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.conv import Conv
from ssl_jax.models.convnet import max_pool_2x2

Dtype = Any


class MLP(nn.Module):
  """Flattened image -> Dense-ReLU per width; features of size `widths[-1]`.

  Attributes:
    widths: the hidden widths, the last being the feature size.
    dtype: compute dtype.
    param_dtype: dtype of the parameters.
  """
  widths: Sequence[int] = (256, 128)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def feature_dim(self) -> int:
    return self.widths[-1]

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train  # no dropout or normalisation
    if not self.widths:
      raise ValueError("MLP needs at least one width in model.widths, e.g. (256, 128).")
    x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.widths):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype, name=f"dense{i}")(x))
    return x


class LeNetMIL(nn.Module):
  """The instance feature extractor of attention-based MIL on MNIST-bags (Ilse et al. 2018).

  Attributes:
    features: width of the last dense layer (500 in the paper).
    widths: channels of the two convolutions ((20, 50) in the paper).
    strided: 5x5 convolutions of stride 2 instead of stride 1 and a 2x2 max pool (a cheap variant for CPU
      benchmarks, registered as `lenet_mil_small` with widths (8, 16) and 128 features).
    dtype: compute dtype.
    param_dtype: dtype of the parameters.
  References: Ilse, Tomczak & Welling 2018, arXiv:1802.04712, Table 8 (MNIST-bags model).
  """
  features: int = 500
  widths: Sequence[int] = (20, 50)
  strided: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def feature_dim(self) -> int:
    return self.features

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    if x.ndim != 4 or min(x.shape[1:3]) < 16:
      raise ValueError(f"LeNetMIL expects images [b, h, w, c] of at least 16x16 (two 5x5 valid convolutions "
                       f"and pools); got shape {x.shape}: use model.encoder=mlp for smaller images.")
    kw = dict(padding="VALID", dtype=self.dtype, param_dtype=self.param_dtype)
    if self.strided:  # stride 2 in place of the pools: 28x28 -> 12x12 -> 4x4, about 1/15 of the FLOPs
      x = nn.relu(Conv(self.widths[0], (5, 5), strides=2, name="conv0", **kw)(x))
      x = nn.relu(Conv(self.widths[1], (5, 5), strides=2, name="conv1", **kw)(x))
    else:
      x = max_pool_2x2(nn.relu(Conv(self.widths[0], (5, 5), name="conv0", **kw)(x)))
      x = max_pool_2x2(nn.relu(Conv(self.widths[1], (5, 5), name="conv1", **kw)(x)))
    x = x.reshape(x.shape[0], -1)
    return nn.relu(nn.Dense(self.features, dtype=self.dtype, param_dtype=self.param_dtype, name="fc")(x))
