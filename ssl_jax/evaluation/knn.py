"""Weighted k-nearest-neighbour classifier on cosine similarity, the kNN monitor of SSL training.

Each test feature votes with its k most similar training features (cosine similarity s):

  score(c) = sum_{j in topk(s)} w_j [y_j = c],   w_j = exp(s_j / T)   ("distance")  or  1  ("uniform"),
  prediction = argmax_c score(c).

The similarities are computed one block of test rows at a time, so the [M, N] similarity matrix is
never held at once. With a mesh, the training features are split along its "data" axis: each device
takes the top k of its own shard, the candidates are gathered, and the global top k is taken among
them (the top k of a union is inside the union of the per-shard top k's).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ssl_jax.evaluation.features import DATA_AXIS, _data_size, _maybe_shard_map, _put_rows, _round_up
from ssl_jax.losses._utils import all_gather, l2_normalize

_WEIGHTINGS = ("distance", "uniform")


def _gather_columns(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Concatenates [B, k] blocks over the devices of `axis_name` into [B, devices * k]."""
  return all_gather(x.T, axis_name).T


@functools.partial(
    jax.jit, static_argnames=("mesh", "num_classes", "k", "temperature", "uniform", "block"))
def _knn_predict(train_x, train_y, valid, test_x, *, mesh, num_classes, k, temperature, uniform, block):
  """Predicted class of every row of the replicated `test_x` [M_pad, d] (M_pad a multiple of block)."""

  def predict(train_x, train_y, valid, test_x, *, axis_name):
    train_n = l2_normalize(train_x)
    k_local = min(k, train_x.shape[0])

    def block_predict(queries):
      sims = l2_normalize(queries) @ train_n.T  # [B, n_local]
      sims = jnp.where(valid[None, :], sims, -jnp.inf)
      top_sims, top_idx = jax.lax.top_k(sims, k_local)
      top_labels = train_y[top_idx]
      if axis_name is not None:
        cand_sims = _gather_columns(top_sims, axis_name)
        cand_labels = _gather_columns(top_labels, axis_name)
        top_sims, pick = jax.lax.top_k(cand_sims, k)
        top_labels = jnp.take_along_axis(cand_labels, pick, axis=1)
      weights = jnp.ones_like(top_sims) if uniform else jnp.exp(top_sims / temperature)
      weights = jnp.where(jnp.isfinite(top_sims), weights, 0.0)
      rows = jnp.arange(queries.shape[0])[:, None]
      votes = jnp.zeros((queries.shape[0], num_classes), jnp.float32).at[rows, top_labels].add(weights)
      return jnp.argmax(votes, axis=-1).astype(jnp.int32)

    blocks = test_x.reshape(-1, block, test_x.shape[-1])
    return jax.lax.map(block_predict, blocks).reshape(-1)

  spec = P(DATA_AXIS)
  # After the all_gather every device holds the same candidates and so the same predictions; the
  # type system cannot see that through `all_gather`, hence check_vma=False.
  return _maybe_shard_map(predict, mesh, (spec, spec, spec, P()), P(), check_vma=False)(
      train_x, train_y, valid, test_x)


def _check(train_x, train_y, test_x, test_y, num_classes: int, k: int, temperature: float,
           weighting: str, batch_size: int) -> None:
  shapes = dict(train_x=np.shape(train_x), train_y=np.shape(train_y), test_x=np.shape(test_x))
  if test_y is not None:
    shapes["test_y"] = np.shape(test_y)
  got = ", ".join(f"{name}{shape}" for name, shape in shapes.items())
  if len(shapes["train_x"]) != 2 or len(shapes["test_x"]) != 2:
    raise ValueError(f"knn: features must be 2-D [N, d]; got {got}.")
  if len(shapes["train_y"]) != 1 or shapes["train_y"][0] != shapes["train_x"][0]:
    raise ValueError(f"knn: `train_y` must be 1-D with one label per row of `train_x`; got {got}.")
  if test_y is not None and (len(shapes["test_y"]) != 1 or shapes["test_y"][0] != shapes["test_x"][0]):
    raise ValueError(f"knn: `test_y` must be 1-D with one label per row of `test_x`; got {got}.")
  if shapes["train_x"][1] != shapes["test_x"][1]:
    raise ValueError(f"knn: train and test features must have the same dimension d; got {got}.")
  if shapes["train_x"][0] < 1 or shapes["test_x"][0] < 1:
    raise ValueError(f"knn: need at least one training and one test row; got {got}.")
  labels = np.asarray(train_y)
  if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(
        f"knn: `train_y` must hold integer class ids in [0, num_classes={num_classes}); got dtype "
        f"{labels.dtype}, values in [{labels.min()}, {labels.max()}].")
  if k < 1 or temperature <= 0 or batch_size < 1:
    raise ValueError(f"knn: need k >= 1, temperature > 0, batch_size >= 1; got {k}, {temperature}, {batch_size}.")
  if weighting not in _WEIGHTINGS:
    raise ValueError(f"knn: `weighting` must be one of {_WEIGHTINGS}; got {weighting!r}.")


def knn_classify(
    train_x: np.ndarray | jax.Array,
    train_y: np.ndarray | jax.Array,
    test_x: np.ndarray | jax.Array,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    weighting: str = "distance",
    batch_size: int = 256,
    mesh: Mesh | None = None,
) -> np.ndarray:
  """Predicts test labels by a similarity-weighted vote of the k nearest training features.

  Args:
    train_x: training features [N, d] (NumPy, or a JAX array already on device).
    train_y: integer labels [N] in [0, num_classes).
    test_x: test features [M, d].
    num_classes: number of classes C.
    k: number of neighbours; capped at N.
    temperature: T of the vote weights exp(cos / T) (0.07 as in InstDisc, solo-learn and DINO).
    weighting: "distance" for exp(cos / T) weights, "uniform" for a plain majority vote (ties go
      to the lowest class id).
    batch_size: test rows per block of similarities ([batch_size, N / devices] per device).
    mesh: optional mesh with a "data" axis over which the training features are split.
  Returns:
    int32 array [M] of predicted classes.
  References: Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
    Discrimination", arXiv:1805.01978; Caron et al. 2021 (DINO), arXiv:2104.14294.
  """
  _check(train_x, train_y, test_x, None, num_classes, k, temperature, weighting, batch_size)
  n, m = np.shape(train_x)[0], np.shape(test_x)[0]
  ndev = _data_size(mesh, "knn_classify")
  rows = _round_up(n, ndev)
  block = min(batch_size, m)
  train = _put_rows(train_x if isinstance(train_x, jax.Array) else np.asarray(train_x, np.float32), mesh, rows)
  labels = _put_rows(np.asarray(train_y, np.int32), mesh, rows)
  valid = _put_rows(np.arange(rows) < n, mesh, rows)
  test_rows = _round_up(m, block)
  test = jnp.pad(jnp.asarray(test_x, jnp.float32), ((0, test_rows - m), (0, 0)))
  preds = _knn_predict(train.astype(jnp.float32), labels, valid, test, mesh=mesh, num_classes=num_classes,
                       k=min(k, n), temperature=float(temperature), uniform=weighting == "uniform",
                       block=block)
  return np.asarray(preds)[:m]


def knn_accuracy(
    train_x: np.ndarray | jax.Array,
    train_y: np.ndarray | jax.Array,
    test_x: np.ndarray | jax.Array,
    test_y: np.ndarray | jax.Array,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    weighting: str = "distance",
    batch_size: int = 256,
    mesh: Mesh | None = None,
) -> float:
  """Top-1 accuracy of `knn_classify` on (test_x, test_y) [M, d], [M]; see `knn_classify` for the rest."""
  _check(train_x, train_y, test_x, test_y, num_classes, k, temperature, weighting, batch_size)
  preds = knn_classify(train_x, train_y, test_x, num_classes=num_classes, k=k, temperature=temperature,
                       weighting=weighting, batch_size=batch_size, mesh=mesh)
  return float(np.mean(preds == np.asarray(test_y)))
