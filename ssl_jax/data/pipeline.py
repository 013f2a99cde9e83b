"""Input pipelines: deterministic, resumable batches for every process, and their sharding.

Two paths give the same kind of batches, dicts {"image": uint8 [local_b, H, W, C],
"label": int32 [local_b]} holding THIS process's rows of a global batch:

* `iterate_batches` over an `ArrayDataset` in memory, or a `StreamedDataset` read by index from disk
  (ImageNet; what the trainer uses for both, through `ssl_jax.data.streams`). The order is a pure
  function of (seed, step), see `batch_indices`, so a run resumed at step s sees exactly the
  batches an uninterrupted run saw, whatever the number of processes; only the rows of a batch are read.
* `tf_iterate_batches` streams a TFDS dataset with tf.data (for your own loops): each process
  reads its own part of the split, shuffles it with a per-epoch seed, decodes and resizes to a
  fixed size; a resumed run skips the examples already seen in the current epoch before decoding.

`shard_batch` turns the per-process dicts into global `jax.Array`s sharded over the batch axis of a
mesh; the augmentations of `ssl_jax.data.views` then run on device, under `jit`.

Epochs drop their remainder: with N examples and global batch B there are N // B steps per epoch,
step s belongs to epoch s // (N // B), and the N % B examples left over by each epoch's
permutation are not used in that epoch (a different remainder in the next one).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from ssl_jax.data.datasets import ArrayDataset, _keys, get_builder
from ssl_jax.data.tf_setup import configure_tensorflow

Batch = dict[str, np.ndarray]


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  """N // B: the number of full global batches in one epoch (the remainder is dropped)."""
  if global_batch_size <= 0 or num_examples < global_batch_size:
    raise ValueError(
        f"global_batch_size={global_batch_size} must be positive and at most the number of "
        f"examples {num_examples}; lower the batch size or use a larger split.")
  return num_examples // global_batch_size


def batch_indices(num_examples: int, *, global_batch_size: int, step: int, seed: int) -> np.ndarray:
  """Example indices of global batch `step`, a pure function of (seed, step).

  Epoch e = step // (N // B) is a permutation drawn from `np.random.default_rng([seed, e])`; step s
  takes its slice [i * B, (i + 1) * B) with i = s mod (N // B). Every example appears at most once
  per epoch, and exactly once when B divides N.

  Args:
    num_examples: N, the size of the dataset.
    global_batch_size: B, the batch size summed over all processes.
    step: the training step, >= 0.
    seed: a non-negative integer seed.
  Returns:
    int64 indices of shape [B].
  """
  if step < 0 or seed < 0:
    raise ValueError(f"batch_indices: step={step} and seed={seed} must be non-negative integers.")
  per_epoch = steps_per_epoch(num_examples, global_batch_size)
  epoch, i = divmod(step, per_epoch)
  perm = _epoch_permutation(num_examples, seed, epoch)
  return perm[i * global_batch_size:(i + 1) * global_batch_size]


def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _process_slice(global_batch_size: int, process_index: int | None,
                   process_count: int | None) -> tuple[int, int]:
  """(first row, number of rows) of this process in a global batch."""
  pc = jax.process_count() if process_count is None else process_count
  pi = jax.process_index() if process_index is None else process_index
  if pc <= 0 or not 0 <= pi < pc:
    raise ValueError(f"process_index={pi} must lie in [0, process_count={pc}).")
  if global_batch_size % pc:
    raise ValueError(
        f"global_batch_size={global_batch_size} is not divisible by process_count={pc}; use a "
        f"multiple of {pc} so that every process gets the same number of examples.")
  local = global_batch_size // pc
  return pi * local, local


class BatchIterator:
  """Endless iterator over `make(start_step)`, `make(start_step + 1)`, ..., prefetched in a thread.

  `make(step)` runs in a background thread `prefetch` batches ahead of the consumer (0: on demand in
  the caller's thread); an error there is raised in the consumer. `step` is the index of the next batch.
  Close it (or use it as a context manager) to stop the thread. The trainer iterates a stream
  (`ssl_jax.data.streams`) with `BatchIterator(stream.local_batch, start_step=step)`.
  """

  def __init__(self, make: Callable[[int], Any], *, start_step: int = 0, prefetch: int = 2):
    self.step = start_step
    self._make = make
    self._stop = threading.Event()
    self._queue: queue.Queue | None = None
    self._thread = None
    if prefetch > 0:
      self._queue = queue.Queue(maxsize=prefetch)
      # The thread holds only what it needs, not `self`, so an abandoned iterator is collected.
      self._thread = threading.Thread(target=_produce, daemon=True,
                                      args=(make, start_step, self._queue, self._stop))
      self._thread.start()

  def __iter__(self):
    return self

  def __next__(self):
    if self._stop.is_set():
      raise StopIteration
    if self._queue is None:
      batch = self._make(self.step)
    else:
      batch = self._queue.get()
      if isinstance(batch, BaseException):
        self.close()
        raise batch
    self.step += 1
    return batch

  def close(self) -> None:
    """Stop the background thread; further `next` calls raise StopIteration."""
    self._stop.set()
    if self._thread is not None:
      while self._thread.is_alive():
        try:  # Unblock a producer waiting on a full queue.
          self._queue.get_nowait()
        except queue.Empty:
          pass
        self._thread.join(timeout=0.05)

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    stop = getattr(self, "_stop", None)  # Absent when __init__ raised.
    if stop is not None:
      stop.set()


class ArrayBatcher(BatchIterator):
  """Iterator over this process's part of the global batches of an `ArrayDataset`.

  Batches are produced by a background thread, `prefetch` ahead of the consumer. The iterator is
  endless; stop after the number of steps you need, and `close()` it (or use it as a context
  manager) to stop the thread early. `step` is the index of the next batch to be returned.

  Args:
    dataset: the examples.
    global_batch_size: batch size summed over processes; must be divisible by process_count.
    seed: non-negative seed of the order.
    start_step: first step to produce (the step a resumed run starts at).
    process_index, process_count: which slice of each global batch to produce; default to
      `jax.process_index()` and `jax.process_count()`.
    prefetch: batches prepared ahead; 0 computes each batch on demand in the caller's thread.
    include_index: also yield "index": int32 [local_b], the examples' positions in the dataset.
  """

  def __init__(self, dataset: ArrayDataset, *, global_batch_size: int, seed: int,
               start_step: int = 0, process_index: int | None = None,
               process_count: int | None = None, prefetch: int = 2, include_index: bool = False):
    self.dataset = dataset
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.steps_per_epoch = steps_per_epoch(len(dataset), global_batch_size)
    self._local = _process_slice(global_batch_size, process_index, process_count)[1]
    batch_indices(len(dataset), global_batch_size=global_batch_size, step=start_step, seed=seed)
    super().__init__(
        lambda step: array_batch(dataset, global_batch_size=global_batch_size, step=step, seed=seed,
                                 process_index=process_index, process_count=process_count,
                                 include_index=include_index),
        start_step=start_step, prefetch=prefetch)

  @property
  def local_batch_size(self) -> int:
    return self._local


def array_batch(dataset: ArrayDataset, *, global_batch_size: int, step: int, seed: int,
                process_index: int | None = None, process_count: int | None = None,
                include_index: bool = False) -> Batch:
  """This process's rows of global batch `step` of `dataset`: its slice of `batch_indices`.

  Returns {"image": uint8 [B / P, H, W, C], "label": int32 [B / P]} (and "index": int32 [B / P], the
  rows' positions in the dataset, with `include_index`).
  """
  first, local = _process_slice(global_batch_size, process_index, process_count)
  rows = batch_indices(len(dataset), global_batch_size=global_batch_size, step=step,
                       seed=seed)[first:first + local]
  batch = {"image": dataset.images[rows], "label": dataset.labels[rows]}
  if include_index:
    batch["index"] = rows.astype(np.int32)
  return batch


def _produce(make, step: int, out: queue.Queue, stop: threading.Event) -> None:
  """Put make(step), make(step + 1), ... into `out` until `stop` is set; an error ends the loop."""

  def put(item) -> None:
    while not stop.is_set():
      try:
        out.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  try:
    while not stop.is_set():
      put(make(step))
      step += 1
  except BaseException as e:  # Hand the error to the consumer rather than dying silently.
    put(e)


def iterate_batches(dataset: ArrayDataset, *, global_batch_size: int, seed: int,
                    start_step: int = 0, process_index: int | None = None,
                    process_count: int | None = None, prefetch: int = 2,
                    include_index: bool = False) -> ArrayBatcher:
  """Endless iterator of this process's part of each global batch; see `ArrayBatcher`.

  Batch `s` holds rows [p * B / P, (p + 1) * B / P) of `batch_indices(N, B, step=s, seed)` for
  process p of P, as {"image": uint8 [B / P, H, W, C], "label": int32 [B / P]}.
  """
  return ArrayBatcher(dataset, global_batch_size=global_batch_size, seed=seed,
                      start_step=start_step, process_index=process_index,
                      process_count=process_count, prefetch=prefetch, include_index=include_index)


def shard_batch(batch: Any, mesh: jax.sharding.Mesh,
                axis: str | tuple[str, ...] = "data") -> Any:
  """Global `jax.Array`s from each process's rows, sharded along dim 0 over `axis` of `mesh`.

  Uses `jax.make_array_from_process_local_data`, so the same call works with one process (the
  local batch is the global batch) and with many (the global batch is the processes' rows in
  process order). Nested batches ({"labelled": {...}, "unlabelled": {...}}) shard leaf by leaf,
  each leaf along its own first dimension.

  Args:
    batch: a pytree (usually nested dicts) of arrays whose first dimension is this process's rows.
    mesh: device mesh.
    axis: mesh axis (or axes) to shard the batch over.
  Returns:
    the same pytree of global arrays with sharding NamedSharding(mesh, P(axis)).
  """
  sharding = NamedSharding(mesh, P(axis))
  axes = (axis,) if isinstance(axis, str) else tuple(axis)
  num_shards = int(np.prod([mesh.shape[a] for a in axes]))

  def one(path, value):
    value = np.asarray(value)
    global_rows = value.shape[0] * jax.process_count()
    if global_rows % num_shards:
      key = jax.tree_util.keystr(path)
      raise ValueError(
          f"shard_batch: {key} has {value.shape[0]} rows per process ({global_rows} in all), "
          f"which {num_shards} devices along mesh axis {axis!r} cannot share evenly; use a batch "
          f"size divisible by {num_shards}.")
    return jax.make_array_from_process_local_data(sharding, value)

  return jax.tree_util.tree_map_with_path(one, batch)


def tf_iterate_batches(name: str, split: str, *, global_batch_size: int, seed: int,
                       start_step: int = 0, data_dir: str | None = None,
                       tfds_data_dir: str | None = None, image_size: int | None = None,
                       shuffle_buffer: int = 10_000, process_index: int | None = None,
                       process_count: int | None = None, prefetch: int = 2,
                       download: bool = True) -> Iterator[Batch]:
  """Stream this process's part of each global batch of a TFDS dataset with tf.data.

  Each process reads `tfds.split_for_jax_process(split)` (with explicit process_index/count, the
  same `tfds.even_splits(split, n=process_count, drop_remainder=True)[process_index]`), so the
  processes see disjoint, equally large parts. Epoch e reads the files in the order of
  `shuffle_seed=seed + e`, shuffles the encoded records with `shuffle(shuffle_buffer,
  seed=seed + e)`, takes the first (n_local // local_b) * local_b of them, decodes, resizes, and
  batches. A run started at `start_step` skips the (start_step mod steps_per_epoch) * local_b
  records already used in its epoch before decoding, so it continues exactly where an
  uninterrupted run would be (on the same data and TF version).

  Args:
    name, split: TFDS dataset and split (resolved like `load_arrays`; "fashion_mnist" with
      `data_dir` reads IDX files).
    global_batch_size: batch size summed over processes.
    seed: non-negative seed.
    start_step: first step to produce.
    data_dir, tfds_data_dir, download: as for `load_arrays`.
    image_size: if set, resize the shorter side to `image_size` (bilinear, antialiased) and take
      the central square: every image becomes uint8 [image_size, image_size, C]; required when the
      images have varying sizes (ImageNet). Random crops are then taken on device.
    shuffle_buffer: number of encoded records in the shuffle buffer.
    process_index, process_count: default to `jax.process_index()` / `jax.process_count()`.
    prefetch: batches that tf.data prepares ahead.
  Yields:
    {"image": uint8 [local_b, S, S, C], "label": int32 [local_b]}; label -1 where the split has
    none.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tf = configure_tensorflow()
  if seed < 0 or start_step < 0:
    raise ValueError(f"tf_iterate_batches: seed={seed} and start_step={start_step} must be >= 0.")
  _, local_b = _process_slice(global_batch_size, process_index, process_count)
  builder = get_builder(name, data_dir=data_dir, tfds_data_dir=tfds_data_dir, download=download)
  if process_index is None and process_count is None:
    local_split = tfds.split_for_jax_process(split)
  else:
    pc = jax.process_count() if process_count is None else process_count
    pi = jax.process_index() if process_index is None else process_index
    local_split = tfds.even_splits(split, n=pc, drop_remainder=True)[pi] if pc > 1 else split
  image_key, label_key = _keys(builder)
  feature = builder.info.features[image_key]
  if image_size is None and None in tuple(feature.shape)[:2]:
    raise ValueError(
        f"tf_iterate_batches: images of {name!r} have varying sizes {tuple(feature.shape)}; pass "
        "image_size=S to resize them to S x S (e.g. 256 for ImageNet, then crop 224 on device).")
  decoders = {image_key: tfds.decode.SkipDecoding()}

  def read(epoch: int):
    return builder.as_dataset(split=local_split, decoders=decoders, shuffle_files=True,
                              read_config=tfds.ReadConfig(shuffle_seed=seed + epoch))

  n_local = int(read(0).cardinality())
  if n_local < 0:  # Unknown cardinality: trust the split's metadata.
    n_local = builder.info.splits[local_split].num_examples
  if n_local < local_b:
    raise ValueError(
        f"tf_iterate_batches: this process's part of {name!r}[{split}] has {n_local} examples, "
        f"fewer than its batch of {local_b}; lower global_batch_size.")
  per_epoch = n_local // local_b
  channels = int(feature.shape[-1])

  def decode(example):
    image = feature.decode_example(example[image_key])
    if image_size is not None:
      image = _resize_center_crop(tf, image, image_size)
    if label_key is not None:
      label = tf.cast(example[label_key], tf.int32)
    else:
      label = tf.constant(-1, tf.int32)
    return {"image": tf.ensure_shape(image, (image_size, image_size, channels) if image_size
                                     else tuple(feature.shape)),
            "label": label}

  def generate() -> Iterator[Batch]:
    epoch, skip = divmod(start_step, per_epoch)
    while True:
      ds = read(epoch).shuffle(shuffle_buffer, seed=seed + epoch, reshuffle_each_iteration=False)
      ds = ds.take(per_epoch * local_b).skip(skip * local_b)
      ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      ds = ds.batch(local_b, drop_remainder=True).prefetch(prefetch)
      yield from ds.as_numpy_iterator()
      epoch, skip = epoch + 1, 0

  return generate()


def _resize_center_crop(tf, image, size: int):
  """Resize the shorter side to `size` (antialiased bilinear) and take the central size x size."""
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  scale = size / tf.minimum(h, w)
  new_h = tf.maximum(size, tf.cast(tf.round(h * scale), tf.int32))
  new_w = tf.maximum(size, tf.cast(tf.round(w * scale), tf.int32))
  image = tf.image.resize(image, (new_h, new_w), method="bilinear", antialias=True)
  top, left = (new_h - size) // 2, (new_w - size) // 2
  image = image[top:top + size, left:left + size]
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
