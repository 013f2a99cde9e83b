"""A 2-D convolution whose kernel gradient XLA:CPU computes fast, as a drop-in for `flax.linen.Conv`.

XLA:CPU computes the gradient of a convolution with respect to its kernel as another convolution, with the
batch as the contraction dimension, and that runs 2 to 6 times slower than the forward convolution of the same
size (benchmarks/README.md). The kernel gradient is a plain matrix product of the input patches and the output
gradient,

    dL/dK[i, j, c, o] = sum_{b, y, x} X_pad[b, s*y + i, s*x + j, c] * G[b, y, x, o],

so `conv2d` computes it that way on CPU: the kh*kw shifted (and strided) slices of the padded input, stacked on
the channel axis, times the output gradient, one matmul per chunk of a few images (so that the patches are still
in cache when the matmul reads them), summed. The forward pass and the input gradient stay XLA's
own convolutions. The value and both gradients are the same as `lax.conv_general_dilated`'s (tested to float
tolerance), so a model computes exactly what it computed before; only the CPU time changes. On GPU and TPU
(`fast_kernel_grad=None` decides by the backend) the plain convolution is used; so it is on CPU when the
environment variable SSL_JAX_CONV_KERNEL_GRAD=xla is set (how `benchmarks/train_step.py` measures "before").

`Conv` has the parameters of `nn.Conv` (`kernel` [kh, kw, in, out], `bias` [out]), so checkpoints are the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")
# SSL_JAX_CONV_KERNEL_GRAD=xla makes the default XLA's own kernel gradient again (for the before/after benchmark).
KERNEL_GRAD_ENV = "SSL_JAX_CONV_KERNEL_GRAD"


def _pads(padding, kernel: Sequence[int], strides: Sequence[int], spatial: Sequence[int]) -> tuple:
  """`padding` (int, pairs, "SAME", "VALID") as ((top, bottom), (left, right))."""
  if isinstance(padding, str):
    return tuple(lax.padtype_to_pads(spatial, kernel, strides, padding.upper()))
  if isinstance(padding, int):
    return ((padding, padding),) * 2
  return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def _plain(x, kernel, strides, pads):
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_DIMS)


# The kernel gradient builds the patches of at most this many bytes at a time (whole images), so that they stay
# in the CPU's cache between being written and being read by the matmul (1.5-2.5x faster than one big matmul
# at 14x14 and 7x7 with 32 and 64 channels in; see `_chunk_images`).
_PATCH_CHUNK_BYTES = 1 << 20
# Patches of fewer columns (kh * kw * in, e.g. a first layer on grayscale or RGB images) are built all at once:
# they are small next to the output gradient, and a loop costs more than it saves there.
_MIN_CHUNKED_COLUMNS = 64


def _chunk_images(b: int, rows_per_image: int, columns: int, itemsize: int) -> int:
  """Images per chunk of the kernel gradient: the largest divisor of b whose patches fit _PATCH_CHUNK_BYTES."""
  if columns < _MIN_CHUNKED_COLUMNS:
    return b
  fit = max(1, _PATCH_CHUNK_BYTES // (rows_per_image * columns * itemsize))
  return max(d for d in range(1, min(b, fit) + 1) if b % d == 0)


def _groups(b: int) -> int:
  """How many groups of images the kernel gradient loops over side by side: one per device (when the batch
  splits evenly), so that a batch sharded over the data-parallel mesh is looped over where it lies."""
  n = jax.device_count()
  return n if n > 1 and b % n == 0 else 1


def _kernel_grad(xp, g, kernel_shape, strides):
  """sum over b, y, x of patches(xp) outer g: [kh, kw, in, out] in float32, chunk by chunk of images.

  With several devices the batch is viewed as [groups, images per group], one group per device: under a
  batch-sharded `jit` each device then loops over the chunks of its own images (a loop over chunks of the whole
  batch would run the devices' chunks one after another), and the groups' sums are added once at the end.
  """
  kh, kw, cin, cout = kernel_shape
  b, ho, wo, _ = g.shape
  sh, sw = strides
  groups = _groups(b)

  def patches_times_g(xc, gc):  # [groups * n, ...] -> [groups, kh * kw * cin, cout]
    n = xc.shape[0]
    cols = [lax.slice(xc, (0, i, j, 0), (n, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, cin), (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]
    patches = (cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1))
    if groups == 1:
      return jnp.dot(patches.reshape(n * ho * wo, kh * kw * cin).T, gc.reshape(n * ho * wo, cout),
                     preferred_element_type=jnp.float32)[None]
    rows = n // groups * ho * wo
    return lax.dot_general(patches.reshape(groups, rows, kh * kw * cin), gc.reshape(groups, rows, cout),
                           (((1,), (1,)), ((0,), (0,))), preferred_element_type=jnp.float32)

  per_group = b // groups
  per = _chunk_images(per_group, ho * wo, kh * kw * cin, xp.dtype.itemsize)
  if per == per_group:
    return patches_times_g(xp, g).sum(0)
  # [groups * chunks * per, ...] -> [chunks, groups * per, ...]: step c of the loop takes chunk c of every group.
  def by_chunk(a):
    a = a.reshape(groups, per_group // per, per, *a.shape[1:])
    return jnp.swapaxes(a, 0, 1).reshape(per_group // per, groups * per, *a.shape[3:])
  dk, _ = lax.scan(lambda acc, xg: (acc + patches_times_g(*xg), None),
                   jnp.zeros((groups, kh * kw * cin, cout), jnp.float32), (by_chunk(xp), by_chunk(g)))
  return dk.sum(0)


def _bwd_with(strides, pads, res, g):
  x, kernel = res
  # Input gradient: XLA's transposed convolution (fast on CPU).
  _, vjp_x = jax.vjp(lambda x_: _plain(x_, kernel, strides, pads), x)
  (dx,) = vjp_x(g)
  # Kernel gradient: the patches of the padded input times the output gradient, as matmuls.
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  dk = _kernel_grad(xp, g, kernel.shape, strides)
  return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


def _fwd_with(x, kernel, strides, pads):
  return _plain(x, kernel, strides, pads), (x, kernel)


# `strides` and `pads` are static (tuples of ints): nondiff_argnums, which custom_vjp passes first to bwd.
_conv_fast_grad = jax.custom_vjp(_plain, nondiff_argnums=(2, 3))
_conv_fast_grad.defvjp(_fwd_with, _bwd_with)


def conv2d(x: jax.Array, kernel: jax.Array, *, strides: Sequence[int] = (1, 1), padding: Any = "SAME",
           fast_kernel_grad: bool | None = None) -> jax.Array:
  """NHWC x HWIO convolution; `fast_kernel_grad` (default: on CPU) computes the kernel gradient by matmul.

  Args:
    x: [b, h, w, in] inputs.
    kernel: [kh, kw, in, out] weights.
    strides: (sh, sw).
    padding: "SAME", "VALID", an int (all sides) or ((top, bottom), (left, right)).
    fast_kernel_grad: True: patches x gradient matmul for dL/dkernel; False: XLA's own; None: True on CPU.
  Returns:
    [b, h', w', out], the same values as `lax.conv_general_dilated`.
  """
  strides = tuple(int(s) for s in strides)
  pads = _pads(padding, kernel.shape[:2], strides, x.shape[1:3])
  if fast_kernel_grad is None:
    fast_kernel_grad = jax.default_backend() == "cpu" and os.environ.get(KERNEL_GRAD_ENV, "") != "xla"
  if fast_kernel_grad:
    return _conv_fast_grad(x, kernel, strides, pads)
  return _plain(x, kernel, strides, pads)


class Conv(nn.Module):
  """`nn.Conv` for NHWC images (no dilation, no groups) whose kernel gradient is fast on CPU.

  Attributes: as `nn.Conv`; `fast_kernel_grad` as `conv2d` (None: on CPU).
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | int = 1
  padding: Any = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()
  fast_kernel_grad: bool | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel_size
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv2d(x, kernel, strides=strides, padding=self.padding, fast_kernel_grad=self.fast_kernel_grad)
    return y + bias if bias is not None else y
