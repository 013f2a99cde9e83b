"""Deterministic, resumable batches; per-process slices; sharding; the tf.data streaming path."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from ssl_jax.data import datasets as D
from ssl_jax.data import pipeline as Pl


def toy_dataset(n: int = 50) -> D.ArrayDataset:
  """Image i is filled with i (mod 256) and labelled i, so a batch says which examples it holds."""
  images = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None],
                           (n, 3, 3, 1)).copy()
  return D.ArrayDataset(images, np.arange(n, dtype=np.int32), num_classes=n, name="toy")


def test_batch_indices_is_a_function_of_seed_and_step():
  a = Pl.batch_indices(50, global_batch_size=8, step=13, seed=3)
  np.testing.assert_array_equal(a, Pl.batch_indices(50, global_batch_size=8, step=13, seed=3))
  assert a.shape == (8,)
  assert not np.array_equal(a, Pl.batch_indices(50, global_batch_size=8, step=13, seed=4))
  # Epoch 1 (steps 6..11 with N // B = 6) is a different permutation from epoch 0.
  e0 = np.concatenate([Pl.batch_indices(50, global_batch_size=8, step=s, seed=3) for s in range(6)])
  e1 = np.concatenate([Pl.batch_indices(50, global_batch_size=8, step=s, seed=3)
                       for s in range(6, 12)])
  assert not np.array_equal(e0, e1)


@pytest.mark.parametrize("n,b", [(48, 8), (50, 8)])
def test_each_epoch_covers_examples_at_most_once(n, b):
  per_epoch = Pl.steps_per_epoch(n, b)
  assert per_epoch == n // b
  for epoch in range(3):
    seen = np.concatenate([Pl.batch_indices(n, global_batch_size=b, step=s, seed=0)
                           for s in range(epoch * per_epoch, (epoch + 1) * per_epoch)])
    assert len(np.unique(seen)) == len(seen) == per_epoch * b
    if n % b == 0:  # Exactly once when the batch divides the dataset.
      np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_resumed_iterator_sees_the_same_batches():
  ds = toy_dataset()
  with Pl.iterate_batches(ds, global_batch_size=8, seed=1, start_step=0, process_index=0,
                          process_count=1) as it:
    full = [next(it) for _ in range(15)]
  with Pl.iterate_batches(ds, global_batch_size=8, seed=1, start_step=9, process_index=0,
                          process_count=1, prefetch=0) as it:
    resumed = [next(it) for _ in range(6)]
    assert it.step == 15
  for a, b in zip(full[9:], resumed):
    np.testing.assert_array_equal(a["label"], b["label"])
    np.testing.assert_array_equal(a["image"], b["image"])
  for s, batch in enumerate(full):
    np.testing.assert_array_equal(batch["label"],
                                  Pl.batch_indices(50, global_batch_size=8, step=s, seed=1))
    assert batch["image"].dtype == np.uint8 and batch["label"].dtype == np.int32
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"])


def test_process_slices_tile_the_global_batch():
  ds = toy_dataset()
  iters = [Pl.iterate_batches(ds, global_batch_size=12, seed=5, start_step=2, process_index=p,
                              process_count=2, include_index=True) for p in range(2)]
  for step in range(2, 9):  # Crosses the epoch boundary at step 4.
    parts = [next(it) for it in iters]
    assert all(part["image"].shape == (6, 3, 3, 1) for part in parts)
    joined = np.concatenate([part["index"] for part in parts])
    np.testing.assert_array_equal(joined,
                                  Pl.batch_indices(50, global_batch_size=12, step=step, seed=5))
  for it in iters:
    it.close()


def test_batcher_errors():
  ds = toy_dataset()
  with pytest.raises(ValueError, match="global_batch_size=10 is not divisible by process_count=4"):
    Pl.iterate_batches(ds, global_batch_size=10, seed=0, process_index=0, process_count=4)
  with pytest.raises(ValueError, match="at most the number of examples 50"):
    Pl.iterate_batches(ds, global_batch_size=64, seed=0, process_index=0, process_count=1)
  with pytest.raises(ValueError, match=r"process_index=2 must lie in \[0, process_count=2\)"):
    Pl.iterate_batches(ds, global_batch_size=8, seed=0, process_index=2, process_count=2)


def test_batcher_defaults_to_jax_process_and_closes():
  it = Pl.iterate_batches(toy_dataset(), global_batch_size=8, seed=0)
  assert it.local_batch_size == 8 // jax.process_count()
  next(it)
  it.close()
  with pytest.raises(StopIteration):
    next(it)


def test_shard_batch_on_8_devices():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  batch = next(iter(Pl.iterate_batches(toy_dataset(), global_batch_size=16, seed=0, prefetch=0)))
  out = Pl.shard_batch(batch, mesh)
  assert out["image"].shape == (16, 3, 3, 1) and out["image"].dtype == np.uint8
  assert out["image"].sharding == NamedSharding(mesh, P("data"))
  for key in batch:
    np.testing.assert_array_equal(np.asarray(out[key]), batch[key])
    for shard in out[key].addressable_shards:
      assert shard.data.shape[0] == 2
      np.testing.assert_array_equal(np.asarray(shard.data), batch[key][shard.index])
  with pytest.raises(ValueError, match="cannot share evenly; use a batch size divisible by 8"):
    Pl.shard_batch({"x": np.zeros((12, 2))}, mesh)


@pytest.fixture(scope="module")
def mocked_tfds():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=40):
    yield


def take(iterator, n):
  out = list(itertools.islice(iterator, n))
  iterator.close()
  return out


def test_tf_stream_shapes_and_resume(mocked_tfds):
  kwargs = dict(global_batch_size=16, seed=3, process_index=1, process_count=2, shuffle_buffer=64)
  full = take(Pl.tf_iterate_batches("cifar10", "train", start_step=0, **kwargs), 8)
  # 40 examples per process, local batch 8: 5 steps per epoch; resume mid-epoch 1.
  resumed = take(Pl.tf_iterate_batches("cifar10", "train", start_step=6, **kwargs), 2)
  for batch in full:
    assert batch["image"].shape == (8, 32, 32, 3) and batch["image"].dtype == np.uint8
    assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
  for a, b in zip(full[6:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  # Each epoch reshuffles: epoch 0 and epoch 1 do not start with the same batch.
  assert not np.array_equal(full[0]["image"], full[5]["image"])
  # An epoch uses each example once.
  epoch = np.concatenate([b["image"].reshape(8, -1) for b in full[:5]])
  assert len(np.unique(epoch, axis=0)) == 40


def test_tf_stream_resizes_variable_size_images(mocked_tfds):
  batch = take(Pl.tf_iterate_batches("imagenet2012", "train", global_batch_size=4, seed=0,
                                     image_size=20, shuffle_buffer=8, process_index=0,
                                     process_count=1), 1)[0]
  assert batch["image"].shape == (4, 20, 20, 3) and batch["image"].dtype == np.uint8
  assert ((0 <= batch["label"]) & (batch["label"] < 1000)).all()
  with pytest.raises(ValueError, match="pass image_size=S"):
    Pl.tf_iterate_batches("imagenet2012", "train", global_batch_size=4, seed=0)
