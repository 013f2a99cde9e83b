"""Datasets too large for host memory, read by index: `load_streamed(name, split)` -> `StreamedDataset`.

A `StreamedDataset` has the interface the streams and the suites use on an in-memory `ArrayDataset`:
`images[rows]` (an integer array of any shape) returns uint8 [*rows.shape, H, W, C], `labels` is the whole
int32 array (labels are small: they stay in memory), `num_classes`, `name`, `len()`, `image_shape`, `take`.
The images are read on demand from TFDS's random-access data source (`builder.as_data_source(split)`,
ArrayRecord files) and decoded on the host, in a thread pool: PIL decodes each record (JPEG or PNG) and,
for datasets whose images vary in size (ImageNet), resizes the shorter side to `image_size` (bilinear,
antialiased; JPEGs are first decoded at the smallest DCT scale that keeps that side) and takes the central
square. Nothing is decoded or cropped on the accelerator; random crops and the other augmentations stay
on device, in the step, as for in-memory data.

Since every stream draws the rows of step s as a pure function of (seed, s) and slices them per process
(`ssl_jax.data.streams`), reading by index gives the streamed path the in-memory path's guarantees with no
state of its own: the same order, per-process shards, and an exact resume after a kill (a resumed run asks
for the rows of step s, and reads them). For datasets stored in file order (the IDX, digits and folder
builders) the records are the in-memory arrays' rows, so both paths give the same batches.

A dataset prepared as TFRecord only (what `tfds build` and our builders write) gets ArrayRecord copies of
its shards once, beside them, as TFDS's `convert_format` does: `dataset_info.json` then lists
`array_record` among its `alternativeFileFormats`, and TFRecord readers are unaffected. The labels of a
split are read once and cached there too (`ssl_jax_labels-<split>.npy`), since reading them means reading
every record.

`images[a:b]` (a slice) is a view, as in NumPy: nothing is read until it is indexed with an array or
converted with `np.asarray`; `apply_batched` converts one batch at a time, so the suites compute features of
a streamed split chunk by chunk.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import io
import os
from typing import Any

import numpy as np

from ssl_jax.data.datasets import DATASETS, IMAGE_FOLDER, DatasetInfo, _keys, get_builder
from ssl_jax.data.tf_setup import configure_tensorflow

STREAMED = ("auto", "yes", "no")
"""Values of `data.streamed`: auto streams `DatasetInfo.streaming` datasets and those larger than
`STREAM_ABOVE_BYTES`; yes streams any dataset; no holds it in host memory."""

STREAM_ABOVE_BYTES = 8 << 30
"""`data.streamed=auto` streams a dataset whose decoded training images would take more host memory."""


def use_streaming(setting: str, info: DatasetInfo) -> bool:
  """Whether `data.streamed=setting` streams a dataset with metadata `info` (see `STREAMED`)."""
  if setting not in STREAMED:
    raise ValueError(f"Config field `data.streamed` must be one of {', '.join(STREAMED)}, got {setting!r}.")
  if setting != "auto":
    return setting == "yes"
  h, w, c = info.image_shape
  size = (info.train_examples or 0) * (h or 0) * (w or 0) * c
  return info.streaming or None in (h, w) or size > STREAM_ABOVE_BYTES


@functools.cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
  """Threads that read and decode records (PIL and ArrayRecord release the GIL while they work)."""
  return concurrent.futures.ThreadPoolExecutor(min(16, os.cpu_count() or 1), thread_name_prefix="ssl_jax_decode")


def decode_image(value: Any, *, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
  """One record's image (encoded bytes, or an array as mocked data gives) as uint8 `shape` [S, S, C].

  With `resize`, the shorter side is resized to S (bilinear, antialiased) and the central S x S kept;
  otherwise the image must already have `shape`.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  size, channels = shape[0], shape[-1]
  mode = "L" if channels == 1 else "RGB"
  if isinstance(value, (bytes, np.bytes_)):
    image = Image.open(io.BytesIO(value))
    if resize:
      image.draft(mode, (size, size))  # JPEG: decode at a reduced DCT scale, never below size x size
    image = image.convert(mode)
  else:
    array = np.asarray(value, np.uint8)
    image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array).convert(mode)
  if resize:
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
  out = np.asarray(image, np.uint8)
  if out.ndim == 2:
    out = out[..., None]
  if out.shape != tuple(shape):
    raise ValueError(f"decoded an image of shape {out.shape}, not {tuple(shape)}")
  return out


class RecordReader:
  """Reads and decodes records of one split of a TFDS random-access data source into uint8 images.

  Args:
    source: the data source (`builder.as_data_source(split, decoders={image: SkipDecoding()})`).
    image_key: the image feature's name.
    shape: (H, W, C) of the images returned.
    resize: resize the shorter side to H and centre-crop (for images of varying sizes).
    where: "name[split]", for error messages.
  """

  def __init__(self, source, *, image_key: str, shape: tuple[int, int, int], resize: bool, where: str):
    self.source, self.image_key, self.shape, self.resize, self.where = source, image_key, tuple(shape), resize, where

  def __len__(self) -> int:
    return len(self.source)

  def _one(self, i: int) -> np.ndarray:
    try:
      record = self.source[i]
      return decode_image(record[self.image_key], shape=self.shape, resize=self.resize)
    except Exception as e:  # PIL, ArrayRecord and protobuf errors come in many types
      cause = " ".join(str(e).split())[:200]
      raise ValueError(f"Record {i} of {self.where} cannot be read as an image ({type(e).__name__}: {cause}); "
                       "the prepared data is damaged: delete its folder in data.tfds_data_dir and prepare it "
                       "again.") from e

  def read(self, index: np.ndarray) -> np.ndarray:
    """The images at `index` (any shape; -1 gives a zero image), uint8 [*index.shape, H, W, C]."""
    index = np.asarray(index)
    if index.dtype.kind not in "iu":
      raise TypeError(f"{self.where}: images are read by integer positions, got an array of {index.dtype}.")
    flat = index.reshape(-1)
    if flat.size and (flat.max() >= len(self) or flat.min() < -1):
      raise IndexError(f"{self.where}: positions must lie in [0, {len(self)}) (or -1 for padding); got "
                       f"[{flat.min()}, {flat.max()}].")
    out = np.zeros((flat.size, *self.shape), np.uint8)
    valid = np.flatnonzero(flat >= 0)
    for j, image in zip(valid, _pool().map(self._one, flat[valid].tolist())):
      out[j] = image
    return out.reshape(*index.shape, *self.shape)


class LazyImages:
  """uint8 images [*index.shape, H, W, C] of a `RecordReader`, read when indexed.

  `x[rows]` with an integer (array) reads and returns a NumPy array; `x[a:b]` is a view that reads nothing
  (as NumPy slices are views); `np.asarray(x)` reads everything. `gather(positions)` is a view of the images
  at `positions` (any shape, -1 for a zero image), e.g. the instances of padded bags.
  """

  def __init__(self, reader: RecordReader, index: np.ndarray | None = None):
    self.reader = reader
    self.index = np.arange(len(reader)) if index is None else np.asarray(index, np.int64)

  dtype = np.dtype(np.uint8)

  @property
  def shape(self) -> tuple[int, ...]:
    return (*self.index.shape, *self.reader.shape)

  @property
  def ndim(self) -> int:
    return len(self.shape)

  def __len__(self) -> int:
    return int(self.index.shape[0])

  def __getitem__(self, key):
    if isinstance(key, slice):
      return LazyImages(self.reader, self.index[key])
    return self.reader.read(self.index[key])

  def gather(self, positions: np.ndarray) -> LazyImages:
    positions = np.asarray(positions)
    return LazyImages(self.reader, np.where(positions >= 0, self.index[np.maximum(positions, 0)], -1))

  def __array__(self, dtype=None, copy=None):
    del copy
    out = self.reader.read(self.index)
    return out if dtype is None else out.astype(dtype)

  def __repr__(self) -> str:
    return f"LazyImages({self.reader.where}, shape={self.shape})"


@dataclasses.dataclass(frozen=True, eq=False)
class StreamedDataset:
  """A labelled image dataset read from disk by index, with `ArrayDataset`'s interface (see the module).

  Attributes:
    images: `LazyImages` [N, H, W, C]: indexing with an integer array reads and decodes those images.
    labels: int32 array of shape [N] in memory; -1 marks an unlabelled example.
    num_classes: number of classes.
    name: dataset name, e.g. "imagenet2012".
  """
  images: LazyImages
  labels: np.ndarray
  num_classes: int
  name: str

  def __len__(self) -> int:
    return len(self.images)

  @property
  def num_examples(self) -> int:
    return len(self)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.reader.shape)

  def take(self, indices: np.ndarray) -> StreamedDataset:
    """The examples at `indices` (a 1-D integer array), as a new dataset that reads nothing yet."""
    indices = np.asarray(indices)
    return dataclasses.replace(self, images=self.images.gather(indices), labels=self.labels[indices])


def is_streamed(dataset) -> bool:
  return isinstance(getattr(dataset, "images", None), LazyImages)


def load_streamed(name: str, split: str, *, data_dir: str | None = None, tfds_data_dir: str | None = None,
                  download: bool = True, image_size: int = 0, channels: int = 0) -> StreamedDataset:
  """A split as a `StreamedDataset`: labels in memory, images read by index from ArrayRecord files.

  Args:
    name, split, data_dir, tfds_data_dir, download: as for `load_arrays`.
    image_size: for images of varying sizes (ImageNet), the side S they are resized (shorter side) and
      centre-cropped to, on the host; required for them, unused for images of a fixed size. For
      "image_folder", the size the folder is prepared at (as `load_arrays`).
    channels: for "image_folder" (see `get_builder`).
  Returns:
    A `StreamedDataset` of uint8 images [N, H, W, C] (H = W = image_size for varying sizes).
  Raises:
    DatasetNotFoundError: the data are missing; the message says how to get them.
    ValueError: images of varying sizes without `image_size`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = get_builder(name, data_dir=data_dir, tfds_data_dir=tfds_data_dir, download=download,
                        image_size=image_size, channels=channels)
  image_key, label_key = _keys(builder)
  stored = tuple(builder.info.features[image_key].shape)
  if stored[-1] is None:
    stored = (*stored[:-1], 3)
  resize = None in stored[:2]
  if resize and image_size <= 0:
    raise ValueError(f"The images of {name!r} vary in size; set --config.data.image_size=S (e.g. 224) to resize "
                     "their shorter side to S and centre-crop them on the host.")
  shape = (image_size, image_size, stored[-1]) if resize else stored
  if len(shape) == 2:
    shape = (*shape, 1)
  source = random_access_source(builder, split, decoders={image_key: tfds.decode.SkipDecoding()})
  if len(source) == 0:
    raise ValueError(f"Split {split!r} of {name!r} is empty; check the split name.")
  where = f"{name}[{split}]"
  reader = RecordReader(source, image_key=image_key, shape=shape, resize=resize, where=where)
  labels = _labels(builder, source, split, name=name, label_key=label_key, where=where)
  if name == IMAGE_FOLDER:
    num_classes = len(builder.builder_config.class_names)
  elif label_key is not None:
    num_classes = int(builder.info.features[label_key].num_classes)
  else:
    num_classes = DATASETS[name].num_classes if name in DATASETS else 0
  return StreamedDataset(images=LazyImages(reader), labels=labels, num_classes=num_classes, name=name)


def random_access_source(builder, split: str, **kwargs):
  """`builder.as_data_source(split, **kwargs)`; a dataset prepared as TFRecord only is first given ArrayRecord
  copies of its shards (once; see the module docstring)."""
  try:
    return builder.as_data_source(split, **kwargs)
  except NotImplementedError:  # TFDS: "Random access data source for file format tfrecord is not supported"
    pass
  add_array_record(builder)
  builder.info.set_file_format("array_record", override=True, override_if_initialized=True)
  return builder.as_data_source(split, **kwargs)


def add_array_record(builder) -> None:
  """Write an ArrayRecord copy of every TFRecord shard of a prepared builder, record for record, and list
  `array_record` in its `dataset_info.json` (what `tfds convert_format` does, without Apache Beam)."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import dataset_info as dataset_info_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.data.idx import _prepare_lock  # pylint: disable=g-import-not-at-top
  tf = configure_tensorflow()
  info_path = os.path.join(os.fspath(builder.data_dir), "dataset_info.json")
  with _prepare_lock(f"array_record/{builder.data_dir}", None):
    proto = dataset_info_lib.read_from_json(info_path)
    if "array_record" in proto.alternative_file_formats or proto.file_format == "array_record":
      return
    for split_info in builder.info.splits.values():
      template, n = split_info.filename_template, split_info.num_shards
      out = template.replace(filetype_suffix="array_record")
      for shard in range(n):
        src = os.fspath(template.sharded_filepath(shard_index=shard, num_shards=n))
        dst = os.fspath(out.sharded_filepath(shard_index=shard, num_shards=n))
        tmp = f"{dst}.incomplete-{os.getpid()}"
        writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
        for record in tf.data.TFRecordDataset(src).as_numpy_iterator():
          writer.write(record)
        writer.close()
        os.replace(tmp, dst)
    proto.alternative_file_formats.append("array_record")
    tmp = f"{info_path}.incomplete-{os.getpid()}"
    with open(tmp, "w") as f:
      f.write(dataset_info_lib.get_dataset_info_json(proto))
    os.replace(tmp, info_path)


def _labels(builder, source, split: str, *, name: str, label_key: str | None, where: str) -> np.ndarray:
  """Every label of the split (-1 where there is none), read once and cached beside the data."""
  cache = os.path.join(os.fspath(builder.data_dir), f"ssl_jax_labels-{split.replace('/', '_')}.npy")
  try:
    labels = np.load(cache)
    if labels.shape == (len(source),) and labels.dtype == np.int32:
      return labels
  except (OSError, ValueError):
    pass

  def one(i: int) -> int:
    try:
      record = source[i]
    except Exception as e:  # ArrayRecord and protobuf errors come in many types
      raise ValueError(f"Record {i} of {where} cannot be read ({type(e).__name__}: {str(e)[:200]}); the prepared "
                       "data is damaged: delete its folder in data.tfds_data_dir and prepare it again.") from e
    if name == IMAGE_FOLDER and not bool(record["labelled"]):
      return -1
    return int(record[label_key]) if label_key is not None else -1

  labels = np.empty(len(source), np.int32)
  for start in range(0, len(labels), 8192):  # in chunks: a million futures at once would take a lot of memory
    stop = min(start + 8192, len(labels))
    labels[start:stop] = list(_pool().map(one, range(start, stop)))
  try:
    tmp = f"{cache}.incomplete-{os.getpid()}.npy"
    np.save(tmp, labels)
    os.replace(tmp, cache)
  except OSError:
    pass  # a read-only data dir: read them again next time
  return labels
