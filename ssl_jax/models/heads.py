"""Projection, prediction and classification heads, and the float32 BatchNorm every model shares.

`MLPHead` is the projector and predictor of SimCLR, BYOL, SimSiam, Barlow Twins and VICReg:
Linear-BN-ReLU for each hidden layer, then Linear, optionally followed by a BatchNorm. `LinearHead`
is the linear classifier of linear probes and of supervised or semi-supervised training.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def _bn_train_fwd(x, scale, bias, epsilon):
  """(y, (mean, var)) and the residuals: flax's two-pass statistics and normalisation, op for op."""
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axes)
  var = jnp.mean(jnp.square(x - mean), axes)
  rstd = jax.lax.rsqrt(var + epsilon)
  mul = rstd if scale is None else rstd * scale
  y = (x - mean) * mul
  if bias is not None:
    y = y + bias
  return (y, (mean, var)), (x, mean, rstd, scale, bias)


def _bn_train_bwd(epsilon, res, cts):
  """The gradient of `_bn_train` by its closed form: two per-channel sums and one elementwise pass.

  With xhat = (x - mean) * rstd and g the output cotangent (N rows per channel):
    dbias = sum(g),  dscale = sum(g * xhat),
    dx = scale * rstd * (g - dbias / N - xhat * dscale / N)  [+ the cotangents of mean and var, if any:
         + ct_mean / N + ct_var * 2 (x - mean) / N].
  This is what autodiff of the forward pass computes, in exact arithmetic; autodiff's trace through the mean,
  the centred square and the broadcasts makes XLA:CPU read the activations about twice as many times.
  """
  del epsilon
  x, mean, rstd, scale, bias = res
  g, (ct_mean, ct_var) = cts
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  xc = x - mean
  xhat = xc * rstd
  sum_g = jnp.sum(g, axes)
  sum_gx = jnp.sum(g * xhat, axes)
  mul = rstd if scale is None else rstd * scale
  dx = mul * (g - sum_g / n - xhat * (sum_gx / n)) + (ct_mean / n + xc * (ct_var * (2.0 / n)))
  dscale = None if scale is None else sum_gx.astype(scale.dtype)
  dbias = None if bias is None else sum_g.astype(bias.dtype)
  return dx, dscale, dbias


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _bn_train(x, scale, bias, epsilon):
  """Training-mode BatchNorm over every axis but the last of float32 x: (y, (batch mean, biased var))."""
  return _bn_train_fwd(x, scale, bias, epsilon)[0]


_bn_train.defvjp(lambda x, scale, bias, epsilon: _bn_train_fwd(x, scale, bias, epsilon), _bn_train_bwd)


class BatchNorm(nn.Module):
  """`nn.BatchNorm(use_fast_variance=False)` over the last axis, in float32, with a closed-form gradient.

  The same variables ("params": scale, bias; "batch_stats": mean, var), the same statistics (two-pass mean and
  biased variance, running averages `ra = momentum * ra + (1 - momentum) * stat`) and the same normalisation
  as flax's layer; in training mode its backward pass is the closed form of `_bn_train_bwd` instead of
  autodiff of the forward, which reads the activations fewer times (the same gradient up to float rounding,
  tested against `nn.BatchNorm` in tests/models/test_models.py). No `axis_name`: under `jax.jit` a sharded
  batch is normalised with global statistics anyway.
  """
  use_running_average: bool
  momentum: float = 0.9
  epsilon: float = 1e-5
  param_dtype: Dtype = jnp.float32
  use_scale: bool = True
  use_bias: bool = True
  scale_init: nn.initializers.Initializer = nn.initializers.ones
  bias_init: nn.initializers.Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """float32 normalised x, shape of x."""
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), (c,))
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), (c,))
    scale = self.param("scale", self.scale_init, (c,), self.param_dtype) if self.use_scale else None
    bias = self.param("bias", self.bias_init, (c,), self.param_dtype) if self.use_bias else None
    x = x.astype(jnp.float32)
    scale = None if scale is None else scale.astype(jnp.float32)
    bias = None if bias is None else bias.astype(jnp.float32)
    if self.use_running_average:
      mul = jax.lax.rsqrt(ra_var.value + self.epsilon)
      mul = mul if scale is None else mul * scale
      y = (x - ra_mean.value) * mul
      return y if bias is None else y + bias
    y, (mean, var) = _bn_train(x, scale, bias, self.epsilon)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y


def batch_norm(x: jax.Array, *, train: bool, dtype: Dtype, param_dtype: Dtype = jnp.float32,
               momentum: float = 0.9, epsilon: float = 1e-5, use_scale: bool = True,
               use_bias: bool = True,
               scale_init: nn.initializers.Initializer = nn.initializers.ones,
               name: str | None = None) -> jax.Array:
  """BatchNorm computed in float32 whatever the compute dtype, with its output cast to `dtype`.

  Must be called inside a compact method: it creates a `BatchNorm` child of the calling module (the
  variables of `nn.BatchNorm`, with a closed-form backward pass), whose running statistics live in the
  "batch_stats" collection. In train mode the statistics are
  taken over the whole batch given to the jitted function, so a batch sharded over a mesh under
  `jax.jit` is normalised with global statistics without any `axis_name`.

  Args:
    x: activations, shape [..., c].
    train: batch statistics and updated running averages when True, running averages when False.
    dtype: dtype of the result (the model's compute dtype).
    param_dtype: dtype of scale and bias.
    momentum: running average decay, `ra = momentum * ra + (1 - momentum) * batch_stat`.
    epsilon: added to the variance.
    use_scale, use_bias: learn an affine scale / bias.
    scale_init: initialiser of the scale (zeros for zero-init residual branches).
    name: name of the BatchNorm submodule.
  Returns:
    Normalised activations, shape of `x`, dtype `dtype`.
  """
  y = BatchNorm(
      use_running_average=not train, momentum=momentum, epsilon=epsilon, param_dtype=param_dtype,
      use_scale=use_scale, use_bias=use_bias, scale_init=scale_init, name=name)(x)
  return y.astype(dtype)


class MLPHead(nn.Module):
  """Linear-BN-ReLU for each hidden width, then Linear to `out_dim`, then BN when `last_bn`.

  SimCLR projector: `MLPHead((2048,), 128)`; BYOL projector and predictor: `MLPHead((4096,), 256)`;
  SimSiam projector: `MLPHead((2048, 2048), 2048, last_bn=True)`; VICReg expander:
  `MLPHead((8192, 8192), 8192)`.

  Attributes:
    hidden_dims: widths of the hidden layers; empty for a single linear layer.
    out_dim: width of the output.
    use_bn: BatchNorm after each hidden linear layer (which then has no bias).
    last_bn: BatchNorm after the output layer (which then has no bias).
    last_bn_affine: learn scale and bias in the last BatchNorm (SimSiam and Barlow Twins use none).
    bn_momentum: running average decay of every BatchNorm.
    dtype: compute dtype; BatchNorm always computes in float32.
    param_dtype: dtype of the parameters.
  """
  hidden_dims: Sequence[int]
  out_dim: int
  use_bn: bool = True
  last_bn: bool = False
  last_bn_affine: bool = False
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Width of the output."""
    return self.out_dim

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Maps features [b, d] to [b, out_dim] in the compute dtype."""
    for i, width in enumerate(self.hidden_dims):
      x = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype, param_dtype=self.param_dtype,
                   name=f"dense_{i}")(x)
      if self.use_bn:
        x = batch_norm(x, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                       momentum=self.bn_momentum, name=f"bn_{i}")
      x = nn.relu(x)
    x = nn.Dense(self.out_dim, use_bias=not self.last_bn, dtype=self.dtype,
                 param_dtype=self.param_dtype, name=f"dense_{len(self.hidden_dims)}")(x)
    if self.last_bn:
      x = batch_norm(x, train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                     momentum=self.bn_momentum, use_scale=self.last_bn_affine,
                     use_bias=self.last_bn_affine, name=f"bn_{len(self.hidden_dims)}")
    return x


class LinearHead(nn.Module):
  """A linear classifier: features [b, d] to logits [b, num_classes].

  Attributes:
    num_classes: number of classes.
    zero_init: initialise weights to zero (common for linear probes on frozen features).
    dtype: compute dtype.
    param_dtype: dtype of the parameters.
  """
  num_classes: int
  zero_init: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Logits [b, num_classes]; `train` is accepted for a uniform call signature and unused."""
    del train
    kernel_init = (nn.initializers.zeros if self.zero_init
                   else nn.initializers.lecun_normal())
    return nn.Dense(self.num_classes, kernel_init=kernel_init, dtype=self.dtype,
                    param_dtype=self.param_dtype, name="dense")(x)
