"""Frozen-encoder feature extraction, batch by batch, optionally sharded over a device mesh.

Also holds the small private helpers the other evaluation modules share for laying rows out on the
"data" axis of a mesh (`_data_size`, `_put_rows`, `_maybe_shard_map`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def _data_size(mesh: Mesh | None, where: str) -> int:
  """Number of devices along the "data" axis of `mesh` (1 without a mesh)."""
  if mesh is None:
    return 1
  if DATA_AXIS not in mesh.shape:
    raise ValueError(
        f"{where}: the mesh must have a {DATA_AXIS!r} axis to shard rows over; got axes "
        f"{tuple(mesh.axis_names)}. Build it with jax.make_mesh((n,), ('data',), ...).")
  return int(mesh.shape[DATA_AXIS])


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _put_rows(x, mesh: Mesh | None, rows: int) -> jax.Array:
  """Pads `x` with zero rows to `rows` rows and puts it on the mesh, split along its "data" axis.

  NumPy inputs are padded on the host; JAX arrays are padded where they already live.
  """
  n = x.shape[0]
  pad = [(0, rows - n)] + [(0, 0)] * (x.ndim - 1)
  if isinstance(x, jax.Array):
    x = jnp.pad(x, pad) if rows != n else x
  else:
    x = np.pad(np.asarray(x), pad) if rows != n else np.asarray(x)
  if mesh is None:
    return jnp.asarray(x)
  return jax.device_put(x, NamedSharding(mesh, P(DATA_AXIS)))


def _maybe_shard_map(fn: Callable, mesh: Mesh | None, in_specs, out_specs, check_vma: bool = True) -> Callable:
  """`fn(*args, axis_name=...)` as per-device code under `jax.shard_map`, or whole-array code without a mesh."""
  if mesh is None:
    return lambda *args: fn(*args, axis_name=None)
  return jax.shard_map(lambda *args: fn(*args, axis_name=DATA_AXIS), mesh=mesh,
                       in_specs=in_specs, out_specs=out_specs, check_vma=check_vma)


@jax.jit
def _to_unit_float(images: jax.Array) -> jax.Array:
  """uint8 pixels in [0, 255] -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def apply_batched(
    fn: Callable[[Any], Any],
    inputs: Any,
    *,
    batch_size: int,
    mesh: Mesh | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    name: str = "apply_batched",
) -> Any:
  """Runs `fn` over a whole dataset batch by batch and returns its outputs on the host.

  The dataset is cut into batches of one fixed size; the last batch is padded with zero rows so `fn` is
  compiled for a single shape, and the pad rows are dropped from the result. With a mesh, each batch is
  split along its "data" axis (`NamedSharding(mesh, P("data"))`) and the batch size is rounded up to a
  multiple of that axis' device count. The host copy of batch i is fetched while batch i + 1 runs.

  Args:
    fn: maps a batch (the structure of `inputs`, `batch_size` rows) to an array or a pytree of arrays
      whose leading dimension is `batch_size`; typically a jitted prediction.
    inputs: an array [N, ...] or a pytree (e.g. a dict of images and masks) of arrays with N rows, on the host.
    batch_size: rows per call of `fn` (rounded up to a multiple of the mesh's "data" size).
    mesh: optional mesh with a "data" axis to shard each batch over.
    preprocess: applied to each batch on device before `fn` (e.g. uint8 -> float).
    name: the function named in error messages.
  Returns:
    The outputs of `fn` for all N rows, as NumPy arrays of the same structure.
  """
  leaves = jax.tree.leaves(inputs)
  n = int(np.shape(leaves[0])[0]) if leaves else 0
  if not leaves or n == 0 or any(np.ndim(x) < 1 or np.shape(x)[0] != n for x in leaves):
    raise ValueError(f"{name}: `inputs` must be a non-empty batch [N, ...] (every leaf with the same N); "
                     f"got shapes {[tuple(np.shape(x)) for x in leaves]}.")
  if batch_size < 1:
    raise ValueError(f"{name}: `batch_size` must be positive; got {batch_size}.")
  batch_size = _round_up(batch_size, _data_size(mesh, name))
  outputs: list[Any] = []
  pending = None  # (device outputs, number of real rows) of the batch in flight

  def fetch(item):
    out, valid = item
    return jax.tree.map(lambda a: np.asarray(a)[:valid], out)

  for start in range(0, n, batch_size):
    batch = jax.tree.map(lambda x: _put_rows(np.asarray(x[start:start + batch_size]), mesh, batch_size), inputs)
    valid = min(batch_size, n - start)
    out = fn(batch if preprocess is None else preprocess(batch))
    bad = [np.shape(a) for a in jax.tree.leaves(out) if np.ndim(a) < 1 or np.shape(a)[0] != batch_size]
    if bad:
      raise ValueError(f"{name}: the function must map a batch of {batch_size} rows to outputs with "
                       f"{batch_size} rows (features [{batch_size}, d]); got shapes {bad}.")
    if pending is not None:
      outputs.append(fetch(pending))
    pending = (out, valid)
  outputs.append(fetch(pending))
  return jax.tree.map(lambda *parts: np.concatenate(parts, axis=0), *outputs)


def extract_features(
    apply_fn: Callable[[jax.Array], jax.Array],
    images: np.ndarray,
    *,
    batch_size: int,
    mesh: Mesh | None = None,
    preprocess: Callable[[jax.Array], jax.Array] | None = None,
) -> np.ndarray:
  """Runs a frozen encoder over a whole dataset and returns its float32 features on the host.

  `apply_batched` for one array of images: fixed-size batches (the last padded), sharded over the mesh's
  "data" axis when a mesh is given, outputs fetched while the next batch runs.

  Args:
    apply_fn: maps float images [b, H, W, C] to features [b, d]; typically a jitted closure over
      frozen parameters, e.g. `jax.jit(lambda x: model.apply(variables, x, train=False))`.
    images: array [N, H, W, C] (usually uint8) on the host; any array with a leading batch axis works.
    batch_size: rows per call of `apply_fn` (rounded up to a multiple of the mesh's "data" size).
    mesh: optional mesh with a "data" axis to shard each batch over.
    preprocess: maps a raw batch on device to the float, normalised images `apply_fn` expects;
      pass a jitted function. Default: uint8 -> float32 in [0, 1].
  Returns:
    float32 array [N, d].
  """
  images_shape = tuple(np.shape(images))
  if len(images_shape) < 2 or images_shape[0] == 0:
    raise ValueError(f"extract_features: `images` must be a non-empty batch [N, ...]; got shape {images_shape}.")
  if batch_size < 1:
    raise ValueError(f"extract_features: `batch_size` must be positive; got {batch_size}.")
  feats = apply_batched(apply_fn, images, batch_size=batch_size, mesh=mesh,
                        preprocess=_to_unit_float if preprocess is None else preprocess, name="extract_features")
  if feats.ndim != 2:
    raise ValueError(f"extract_features: `apply_fn` must map a batch of images to features [b, d]; got "
                     f"shape {feats.shape[1:]} per row.")
  return feats.astype(np.float32)
