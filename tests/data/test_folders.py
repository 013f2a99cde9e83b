"""Your own images as a dataset (`data.name=image_folder`): the layouts, the resizing and conversion, the
preparation cache, the one-sentence errors, and a short run of one method of every family on a folder."""

import os

import numpy as np
import pytest
from PIL import Image

from ssl_jax.data import datasets as D
from ssl_jax.data import folders
from ssl_jax.data.tf_setup import DatasetNotFoundError
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


def _digits():
  from sklearn.datasets import load_digits
  d = load_digits()
  return np.rint(d.images * 255 / 16).astype(np.uint8), d.target


def _write(path, image: np.ndarray, *, rgb_jpeg: bool = False):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if rgb_jpeg:  # another format, mode and size: converted to grayscale and resized back to 8x8
    Image.fromarray(image).convert("RGB").resize((16, 16), Image.NEAREST).save(path[:-4] + ".jpg", quality=100)
  else:
    Image.fromarray(image).save(path)


@pytest.fixture(scope="module")
def digit_tree(tmp_path_factory):
  """scikit-learn's digits as ROOT/train/<digit>/*.png (a few as 16x16 RGB JPEGs) and ROOT/test/<digit>/."""
  root = tmp_path_factory.mktemp("folder") / "digits"
  images, labels = _digits()
  for i, (image, label) in enumerate(zip(images, labels)):
    split = "test" if i % 6 == 0 else "train"
    _write(str(root / split / str(label) / f"{i}.png"), image, rgb_jpeg=i % 50 == 1)
  return root, images, labels


def test_class_per_folder_with_splits(digit_tree, tmp_path):
  root, images, labels = digit_tree
  tfds_dir = str(tmp_path / "tfds")
  kw = dict(data_dir=str(root), tfds_data_dir=tfds_dir, image_size=8, channels=1)
  info = D.dataset_info("image_folder", **kw)
  assert info.image_shape == (8, 8, 1) and info.num_classes == 10 and not info.rgb
  train = D.load_arrays("image_folder", "train", **kw)
  test = D.load_arrays("image_folder", "test", **kw)
  assert len(train) == sum(1 for i in range(len(images)) if i % 6) and len(test) == (len(images) + 5) // 6
  assert train.num_classes == 10 and set(np.unique(train.labels)) == set(range(10))
  # PNGs come back exactly; the image of each file matches its class folder's label.
  pngs = {images[i].tobytes(): labels[i] for i in range(len(images)) if i % 50 != 1}
  exact = [(img, lab) for img, lab in zip(test.images[..., 0], test.labels) if img.tobytes() in pngs]
  assert len(exact) > 250 and all(pngs[img.tobytes()] == lab for img, lab in exact)
  from ssl_jax.data import augment
  mean, std = augment.mean_std("image_folder")
  np.testing.assert_allclose(mean, [train.images.mean() / 255], atol=2e-3)
  np.testing.assert_allclose(std, [train.images.std() / 255], atol=2e-3)


def test_resize_and_rgb_are_configurable_and_a_changed_folder_is_prepared_again(tmp_path):
  root = tmp_path / "photos"
  rng = np.random.default_rng(0)
  for c in ("cat", "dog"):
    for i in range(5):
      _write(str(root / c / f"{i}.png"), rng.integers(0, 255, (20 + i, 30, 3), np.uint8))
  tfds_dir = str(tmp_path / "tfds")
  with pytest.raises(ValueError, match="not all square of one size.*data.image_size=S"):
    D.dataset_info("image_folder", data_dir=str(root), tfds_data_dir=tfds_dir)
  info = D.dataset_info("image_folder", data_dir=str(root), image_size=12, tfds_data_dir=tfds_dir)
  assert info.image_shape == (12, 12, 3) and info.rgb and info.num_classes == 2
  kw = dict(data_dir=str(root), image_size=12, tfds_data_dir=tfds_dir)
  train, test = D.load_arrays("image_folder", "train", **kw), D.load_arrays("image_folder", "test", **kw)
  assert len(train) == 8 and len(test) == 2 and sorted(test.labels) == [0, 1]  # a seeded 10% of each class
  gray = D.load_arrays("image_folder", "train", channels=1, **{**kw, "image_size": 6})
  assert gray.images.shape == (8, 6, 6, 1)
  _write(str(root / "dog" / "5.png"), rng.integers(0, 255, (9, 9, 3), np.uint8))
  assert len(D.load_arrays("image_folder", "train", **kw)) + len(D.load_arrays("image_folder", "test", **kw)) == 11


def test_one_folder_of_unlabelled_images(tmp_path):
  images, _ = _digits()
  for i in range(40):
    _write(str(tmp_path / "u" / f"{i}.png"), images[i])
  kw = dict(data_dir=str(tmp_path / "u"), tfds_data_dir=str(tmp_path / "t"))
  assert D.dataset_info("image_folder", **kw).image_shape == (8, 8, 1)  # all grayscale and 8x8: kept so
  train = D.load_arrays("image_folder", "train", **kw)
  assert len(train) == 36 and train.num_classes == 0 and np.all(train.labels == -1)


def test_bad_folders_are_one_sentence(tmp_path, digit_tree):
  with pytest.raises(DatasetNotFoundError, match="does not exist; pass --config.data.data_dir="):
    folders.scan(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="pass --config.data.data_dir=<folder>"):
    D.dataset_info("image_folder")
  (tmp_path / "a" / "train" / "cat").mkdir(parents=True)
  with pytest.raises(ValueError, match=r"class folder .*cat holds no image files"):
    folders.scan(str(tmp_path / "a"))
  images, _ = _digits()
  _write(str(tmp_path / "b" / "train" / "cat" / "0.png"), images[0])
  _write(str(tmp_path / "b" / "test" / "cow" / "0.png"), images[1])
  with pytest.raises(ValueError, match="classes that training does not: cow"):
    folders.scan(str(tmp_path / "b"))
  _write(str(tmp_path / "c" / "cat" / "0.png"), images[0])
  (tmp_path / "c" / "cat" / "1.png").write_bytes(b"not an image at all")
  with pytest.raises(ValueError, match=r"The image file .*1.png does not decode .*; replace or remove it"):
    D.dataset_info("image_folder", data_dir=str(tmp_path / "c"), tfds_data_dir=str(tmp_path / "t"))


@pytest.mark.parametrize("method", ["simclr", "supervised", "mil", "triplet"])
def test_every_family_trains_on_a_folder(method, digit_tree, tmp_path):
  root, _, _ = digit_tree
  config = tiny_config(method, **{"data.name": "image_folder", "data.data_dir": str(root),
                                  "data.tfds_data_dir": str(tmp_path / "tfds"), "data.image_size": 8,
                                  "data.channels": 1, "total_steps": 4,
                                  "eval_every_steps": 0})
  results = trainer.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["data"].startswith("image_folder") and results["steps"] == 4
