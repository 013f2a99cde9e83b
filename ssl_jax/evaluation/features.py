"""Frozen-encoder feature extraction, batch by batch, optionally sharded over a device mesh.

Also holds the small private helpers the other evaluation modules share for laying rows out on the
"data" axis of a mesh (`_data_size`, `_put_rows`, `_maybe_shard_map`).
"""

from __future__ import annotations

from collections.abc import Callable

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


def extract_features(
    apply_fn: Callable[[jax.Array], jax.Array],
    images: np.ndarray,
    *,
    batch_size: int,
    mesh: Mesh | None = None,
    preprocess: Callable[[jax.Array], jax.Array] | None = None,
) -> np.ndarray:
  """Runs a frozen encoder over a whole dataset and returns its features on the host.

  The dataset is cut into batches of one fixed size; the last batch is padded with zero images so
  `apply_fn` is compiled for a single shape, and the pad rows are dropped from the result. With a
  mesh, each batch is split along its "data" axis (`NamedSharding(mesh, P("data"))`) and the batch
  size is rounded up to a multiple of that axis' device count. The host copy of batch i is fetched
  while batch i + 1 runs.

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
  batch_size = _round_up(batch_size, _data_size(mesh, "extract_features"))
  preprocess = _to_unit_float if preprocess is None else preprocess
  n = images_shape[0]

  outputs: list[np.ndarray] = []
  pending = None  # (device features, number of real rows) of the batch in flight
  for start in range(0, n, batch_size):
    batch = np.asarray(images[start:start + batch_size])
    valid = batch.shape[0]
    feats = apply_fn(preprocess(_put_rows(batch, mesh, batch_size)))
    if jnp.ndim(feats) != 2 or feats.shape[0] != batch_size:
      raise ValueError(
          f"extract_features: `apply_fn` must map a batch of {batch_size} images to features "
          f"[{batch_size}, d]; got shape {tuple(jnp.shape(feats))}.")
    if pending is not None:
      outputs.append(np.asarray(pending[0], np.float32)[:pending[1]])
    pending = (feats, valid)
  outputs.append(np.asarray(pending[0], np.float32)[:pending[1]])
  return np.concatenate(outputs, axis=0)
