"""Streamed datasets (`ssl_jax.data.streamed`): read by index from ArrayRecord files, equal to the in-memory path.

Fashion-MNIST here is its first 512 training and 128 test images (from Debian's IDX files when installed, else
random images in the same files), prepared in a temporary TFDS folder, so each test takes seconds.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from ssl_jax import data as data_lib
from ssl_jax.data import streamed as S
from ssl_jax.data import streams
from ssl_jax.errors import UserError
from ssl_jax.train import config as config_lib
from ssl_jax.train import trainer

from tests.data.test_datasets import FMNIST, HAVE_FMNIST, write_idx
from tests.methods.cases import tiny_config
from tests.methods.test_protocol import _sigterm_when


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
  """(IDX folder, TFDS folder) of a small Fashion-MNIST: 512 training and 128 test images."""
  from ssl_jax.data import idx
  root = str(tmp_path_factory.mktemp("fmnist_idx"))
  rng = np.random.default_rng(0)
  for prefix, n in (("train", 512), ("t10k", 128)):
    if HAVE_FMNIST:
      images = idx.read_idx(os.path.join(FMNIST, f"{prefix}-images-idx3-ubyte.gz"))[:n]
      labels = idx.read_idx(os.path.join(FMNIST, f"{prefix}-labels-idx1-ubyte.gz"))[:n]
    else:
      images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10
    write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte"), images, gz=True)
    write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte"), labels.astype(np.uint8), gz=True)
  return root, str(tmp_path_factory.mktemp("fmnist_tfds"))


@pytest.fixture(scope="module")
def both(fmnist):
  """The same splits in memory and streamed: {"memory": Data, "streamed": Data}."""
  root, tfds_dir = fmnist
  out = {}
  for key, load in (("streamed", S.load_streamed), ("memory", data_lib.load_arrays)):
    train, test = (load("fashion_mnist", split, data_dir=root, tfds_data_dir=tfds_dir) for split in ("train", "test"))
    out[key] = streams.Data(train, test, name="fashion_mnist")
  return out


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


SPECS = {
    "images": streams.Images(with_indices=True),
    "labelled_unlabelled": streams.LabelledUnlabelled(num_labels=50, split_seed=1, mu=2, with_indices=True),
    "bags": streams.Bags(target_class=9, num_train_bags=40, num_test_bags=12),
    "class_balanced": streams.ClassBalanced(classes_per_batch=4, classes=(0, 1, 2, 3, 4)),
    "nodes": streams.Nodes(num_labels=50),
}


def test_streamed_dataset_is_the_in_memory_dataset_read_by_index(both):
  mem, st = both["memory"].train, both["streamed"].train
  assert isinstance(st.images, S.LazyImages) and S.is_streamed(st) and not S.is_streamed(mem)
  assert (len(st), st.image_shape, st.num_classes) == (len(mem), mem.image_shape, mem.num_classes)
  assert (len(st), st.image_shape) == (512, (28, 28, 1))
  np.testing.assert_array_equal(st.labels, mem.labels)
  rows = np.array([[5, 0], [511, 7]])
  np.testing.assert_array_equal(st.images[rows], mem.images[rows])
  view = st.images[100:110]  # a slice reads nothing: a view, as in NumPy
  assert isinstance(view, S.LazyImages) and view.shape == (10, 28, 28, 1)
  np.testing.assert_array_equal(np.asarray(view), mem.images[100:110])
  sub = st.take(np.array([3, 1, 4]))
  np.testing.assert_array_equal(sub.images[np.arange(3)], mem.images[[3, 1, 4]])
  np.testing.assert_array_equal(sub.labels, mem.labels[[3, 1, 4]])
  padded = st.images.gather(np.array([[2, -1]]))  # -1: a zero image (padding of bags)
  np.testing.assert_array_equal(np.asarray(padded)[0, 0], mem.images[2])
  assert not np.asarray(padded)[0, 1].any()


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_streamed_batches_equal_in_memory_batches(both, kind):
  """Every stream gives the same batches (and evaluation data) on both paths, for several steps."""
  built = {k: SPECS[kind].build(d, batch_size=20 if kind == "class_balanced" else 16, seed=3) for k, d in both.items()}
  for step in (0, 1, 2, 31, 32):
    _assert_trees_equal(built["streamed"].global_batch(step), built["memory"].global_batch(step))
  for key in built["memory"].eval_data:
    a, b = built["streamed"].eval_data[key], built["memory"].eval_data[key]
    if isinstance(b, dict):
      _assert_trees_equal(a, b)
    else:
      np.testing.assert_array_equal(np.asarray(a.images), b.images)
      np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("kind", ["images", "labelled_unlabelled", "bags"])
def test_two_processes_read_disjoint_halves_of_each_global_batch(both, kind):
  built = {k: SPECS[kind].build(d, batch_size=16, seed=5) for k, d in both.items()}
  for step in (0, 7):
    whole = built["memory"].global_batch(step)
    halves = [built["streamed"].local_batch(step, process_index=p, process_count=2) for p in (0, 1)]
    for p, half in enumerate(halves):
      _assert_trees_equal(half, built["memory"].local_batch(step, process_index=p, process_count=2))
    _assert_trees_equal(jax.tree.map(lambda a, b: np.concatenate([a, b]), *halves), whole)


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["train/loss"] for r in map(json.loads, f) if "train/loss" in r}


def test_streamed_run_equals_in_memory_run_and_resumes_exactly_after_a_kill(fmnist, tmp_path):
  """SimCLR on Fashion-MNIST: forced streaming gives the in-memory run's losses and results; a streamed run
  killed (SIGTERM) and resumed repeats the uninterrupted one, loss for loss."""
  root, tfds_dir = fmnist
  common = {"data.name": "fashion_mnist", "data.data_dir": root, "data.tfds_data_dir": tfds_dir, "total_steps": 12,
            "eval_every_steps": 4, "eval.train_examples": 300}
  runs = {}
  for mode in ("no", "yes"):
    workdir = str(tmp_path / mode)
    results = trainer.train_and_evaluate(tiny_config("simclr", **common, **{"data.streamed": mode}), workdir)
    runs[mode] = (_losses(workdir), results)
  assert sorted(runs["yes"][0]) == list(range(1, 13))
  np.testing.assert_allclose([runs["yes"][0][s] for s in range(1, 13)], [runs["no"][0][s] for s in range(1, 13)],
                             rtol=1e-6)
  for key in ("linear_probe_top1", "knn_top1"):
    np.testing.assert_allclose(runs["yes"][1][key], runs["no"][1][key], atol=1e-6, err_msg=key)
  from ssl_jax import evaluate  # `ssl_jax.evaluate` of a streamed run reads it streamed too
  assert evaluate.main([f"--workdir={tmp_path / 'yes'}", "--config.eval.pixel_baseline=false"]) == 0
  with open(tmp_path / "yes" / "eval_results.json") as f:
    evaluated = json.load(f)["step_12 eval.pixel_baseline=false"]
  np.testing.assert_allclose(evaluated["knn_top1"], runs["yes"][1]["knn_top1"], atol=1e-6)

  killed = str(tmp_path / "killed")
  config = tiny_config("simclr", **{**common, "data.streamed": "yes", "eval.final": False, "eval_every_steps": 0})
  watcher = _sigterm_when(lambda: os.path.join(killed, "checkpoints", "4"))
  with pytest.raises(trainer.Interrupted, match=r"Stopped by SIGTERM at step (\d+); the checkpoint of step"):
    trainer.train_and_evaluate(config, killed)
  watcher.join()
  assert max(int(s) for s in os.listdir(os.path.join(killed, "checkpoints")) if s.isdigit()) < 12
  trainer.train_and_evaluate(config, killed)
  got = _losses(killed)
  np.testing.assert_allclose([got[s] for s in range(1, 13)], [runs["yes"][0][s] for s in range(1, 13)], rtol=1e-6)


def test_imagenet_runs_streamed_on_mocked_tfds(tmp_path):
  """`data.name=imagenet2012` (JPEGs of varying sizes) for a few steps on `tfds.testing.mock_data`, whose
  mocked `as_data_source` serves the records: decoded, resized and centre-cropped to 32 x 32 on the host."""
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=48):
    train = S.load_streamed("imagenet2012", "train", image_size=32)
    batch = train.images[np.arange(6)]
    assert batch.shape == (6, 32, 32, 3) and batch.dtype == np.uint8 and batch.std() > 0
    assert len(train) == 48 and train.num_classes == 1000 and ((0 <= train.labels) & (train.labels < 1000)).all()
    config = tiny_config("simclr", **{"data.name": "imagenet2012", "data.image_size": 32, "batch_size": 16,
                                      "total_steps": 3, "eval_every_steps": 0, "checkpoint_every_steps": 3})
    results = trainer.train_and_evaluate(config, str(tmp_path / "imagenet"))
  losses = _losses(str(tmp_path / "imagenet"))
  assert sorted(losses) == [1, 2, 3] and all(np.isfinite(v) for v in losses.values())
  assert 0.0 <= results["linear_probe_top1"] <= 1.0 and results["data"] == "imagenet2012"


def test_auto_streams_large_datasets_and_each_mistake_is_one_sentence():
  info = data_lib.dataset_info("imagenet2012")
  assert S.use_streaming("auto", info) and S.use_streaming("yes", data_lib.dataset_info("digits"))
  assert not S.use_streaming("auto", data_lib.dataset_info("cifar10"))
  big = data_lib.DatasetInfo((512, 512, 3), 2, "train", "test", rgb=True, train_examples=20_000)  # 15 GiB
  assert S.use_streaming("auto", big) and not S.use_streaming("no", big)
  config = tiny_config("simclr", **{"data.name": "imagenet2012"})
  with pytest.raises(UserError, match=r"vary in size; set --config.data.image_size=S"):
    trainer.preflight(config)
  config.data.image_size, config.data.streamed = 32, "no"
  with pytest.raises(UserError, match=r"can only be streamed; set --config.data.streamed=auto"):
    trainer.preflight(config)
  config.data.streamed = "sometimes"
  with pytest.raises(UserError, match=r"`data.streamed` must be one of auto, yes, no, got 'sometimes'"):
    config_lib.validate(config)


def test_a_record_that_does_not_decode_is_one_sentence_naming_it():
  from PIL import Image
  import io
  png = io.BytesIO()
  Image.fromarray(np.full((4, 4), 7, np.uint8)).save(png, format="PNG")
  source = [{"image": png.getvalue()}, {"image": b"\x89PNG but cut short"}]
  images = S.LazyImages(S.RecordReader(source, image_key="image", shape=(4, 4, 1), resize=False, where="mine[train]"))
  assert (images[np.array([0])] == 7).all()
  with pytest.raises(ValueError, match=r"Record 1 of mine\[train\] cannot be read as an image .*prepare it again"):
    images[np.array([0, 1])]
  with pytest.raises(IndexError, match=r"positions must lie in \[0, 2\)"):
    images.reader.read(np.array([2]))


@pytest.mark.slow
def test_imagenet_config_traces_on_mocked_tfds():
  """configs/ssl/simclr_imagenet.py (ResNet-50, 224 crops of 256 host-resized images): stream, init and step."""
  import functools  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  config = config_lib.load_config(os.path.join(root, "configs/ssl/simclr_imagenet.py"))
  assert config.data.name == "imagenet2012" and config.total_steps == 31200
  config.batch_size = 8
  with tfds.testing.mock_data(num_examples=64):
    plan = trainer.preflight(config)
    assert plan.streamed
    batch = trainer.load_stream(plan).global_batch(0)
  assert batch["image"].shape == (8, 256, 256, 3) and batch["image"].dtype == np.uint8
  state = jax.eval_shape(functools.partial(plan.module.init, plan.method), jax.random.PRNGKey(0))
  _, metrics = jax.eval_shape(functools.partial(plan.module.step, plan.method), state, batch)
  assert metrics["train/loss"].shape == ()
