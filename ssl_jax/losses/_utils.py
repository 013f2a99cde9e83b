"""Shared helpers of the loss library: shape checks and collectives that are no-ops without an axis."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def shape_error(loss: str, message: str, **arrays) -> ValueError:
  """A ValueError that names the loss, what is wrong, and the shapes it got."""
  got = ", ".join(f"{k}{tuple(jnp.shape(v))}" for k, v in arrays.items())
  return ValueError(f"{loss}: {message}; got {got}.")


def check_ndim(loss: str, ndim: int | Sequence[int], **arrays) -> None:
  """Raise if any array does not have `ndim` dimensions (or one of the allowed ranks)."""
  allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
  for name, x in arrays.items():
    if jnp.ndim(x) not in allowed:
      want = " or ".join(str(a) for a in allowed)
      raise shape_error(loss, f"`{name}` must have {want} dimensions", **arrays)


def check_same_shape(loss: str, **arrays) -> None:
  """Raise if the arrays do not all have the same shape."""
  shapes = {tuple(jnp.shape(v)) for v in arrays.values()}
  if len(shapes) > 1:
    raise shape_error(loss, f"{', '.join(f'`{k}`' for k in arrays)} must have the same shape", **arrays)


def all_gather(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Concatenate `x` along axis 0 over the devices of `axis_name`; identity when it is None.

  Differentiable: the transpose is a reduce-scatter, so gradients reach the shard that owns each row.
  """
  if axis_name is None:
    return x
  return jax.lax.all_gather(x, axis_name, axis=0, tiled=True)


def psum(x, axis_name: str | None):
  """Sum over the devices of `axis_name`; identity when it is None."""
  return x if axis_name is None else jax.lax.psum(x, axis_name)


def pmean(x, axis_name: str | None):
  """Mean over the devices of `axis_name`; identity when it is None."""
  return x if axis_name is None else jax.lax.pmean(x, axis_name)


def axis_index(axis_name: str | None) -> jax.Array:
  """Index of this device along `axis_name`; 0 when it is None."""
  return jnp.zeros((), jnp.int32) if axis_name is None else jax.lax.axis_index(axis_name)


def axis_size(axis_name: str | None) -> int:
  """Number of devices along `axis_name`; 1 when it is None."""
  return 1 if axis_name is None else jax.lax.psum(1, axis_name)


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps), computed in float32 at least for stability."""
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  sq = jnp.sum(x * x, axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))
