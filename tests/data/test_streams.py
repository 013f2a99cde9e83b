"""Training streams: pure functions of (seed, step), sliced per process, each with its family's layout."""

import dataclasses

import jax
import numpy as np
import pytest

from ssl_jax.data import streams
from ssl_jax.data.datasets import ArrayDataset, DatasetInfo
from ssl_jax.data.pipeline import BatchIterator, batch_indices, shard_batch
from ssl_jax.train import mesh as mesh_lib


def _dataset(n=200, classes=10, size=4, seed=0, name="toy"):
  rng = np.random.default_rng(seed)
  labels = np.arange(n, dtype=np.int32) % classes
  images = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256  # makes rows tell their index (mod 256)
  return ArrayDataset(images, labels, classes, name)


def _data():
  return streams.Data(_dataset(), _dataset(100, seed=1), name="toy")


SPECS = {
    "images": (streams.Images(), 40),
    "images_subset": (streams.Images(with_indices=True, subset=streams.Subset(3, 20, 30)), 16),
    "labelled_unlabelled": (streams.LabelledUnlabelled(num_labels=20, split_seed=3, mu=3), 16),
    "bags": (streams.Bags(target_class=9, mean_size=5, std_size=1, num_train_bags=50, num_test_bags=20), 8),
    "class_balanced": (streams.ClassBalanced(classes_per_batch=4, classes=(0, 1, 2, 3, 4)), 24),
}


def _equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_a_batch_is_a_pure_function_of_seed_and_step(kind):
  spec, b = SPECS[kind]
  one, two = spec.build(_data(), batch_size=b, seed=5), spec.build(_data(), batch_size=b, seed=5)
  _equal(one.global_batch(7), two.global_batch(7))
  _equal(one.global_batch(7), one.global_batch(7))
  other = spec.build(_data(), batch_size=b, seed=6)
  assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(one.global_batch(7)),
                                                         jax.tree.leaves(other.global_batch(7))))
  # Resuming at step s gives what an uninterrupted iterator gives at step s.
  it = BatchIterator(one.local_batch, start_step=0)
  got = [next(it) for _ in range(5)]
  it.close()
  resumed = BatchIterator(two.local_batch, start_step=3)
  _equal(next(resumed), got[3])
  resumed.close()


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_process_slices_make_up_the_global_batch(kind):
  spec, b = SPECS[kind]
  stream = spec.build(_data(), batch_size=b, seed=0)
  whole = stream.global_batch(2)
  parts = [stream.local_batch(2, process_index=p, process_count=4) for p in range(4)]
  _equal(whole, jax.tree.map(lambda *xs: np.concatenate(xs), *parts))
  for group, rows in stream.groups.items():
    leaf = whole[group] if group in whole and isinstance(whole[group], dict) else whole
    assert jax.tree.leaves(leaf)[0].shape[0] == rows


def test_labelled_split_is_class_balanced_named_and_recorded():
  stream = streams.LabelledUnlabelled(num_labels=20, split_seed=3, mu=3).build(_data(), batch_size=16, seed=0)
  assert stream.name == "toy.3@20"
  idx = stream.labelled_indices
  np.testing.assert_array_equal(np.bincount(_data().train.labels[idx], minlength=10), [2] * 10)
  again = streams.LabelledUnlabelled(num_labels=20, split_seed=3, mu=0).build(_data(), batch_size=4, seed=9)
  np.testing.assert_array_equal(again.labelled_indices, idx)  # the split depends on its own seed only
  assert stream.record()["labelled_indices"] == idx.tolist()
  batch = stream.global_batch(0)
  assert set(batch) == {"labelled", "unlabelled"} and "label" not in batch["unlabelled"]
  assert batch["labelled"]["image"].shape[0] == 16 and batch["unlabelled"]["image"].shape[0] == 48
  # Every labelled row comes from the split; 16 > 20 / 2 makes batches run across epochs of the split.
  seen = np.concatenate([stream.global_batch(s)["labelled"]["label"] for s in range(5)])
  assert len(seen) == 80 and set(np.bincount(seen, minlength=10)) == {8}
  with pytest.raises(ValueError, match="25 labels cannot be split evenly over the 10 classes"):
    streams.LabelledUnlabelled(num_labels=25).build(_data(), batch_size=4, seed=0)


def test_unlabelled_pool_outside_the_labelled_split():
  """`num_unlabelled`: a fixed pool of that many images outside the labelled split feeds the unlabelled batch."""
  data = _data()
  spec = streams.LabelledUnlabelled(num_labels=20, split_seed=3, mu=2, num_unlabelled=30)
  stream = spec.build(data, batch_size=8, seed=0)
  pool = stream.unlabelled_indices
  assert len(pool) == 30 and len(set(pool.tolist())) == 30 and stream.name == "toy.3@20+30u"
  assert not set(pool.tolist()) & set(stream.labelled_indices.tolist())
  assert stream.record()["num_unlabelled"] == 30 and len(stream.eval_data["unlabelled_train"]) == 30
  pool_images = {data.train.images[i].tobytes() for i in pool}
  seen = [im.tobytes() for s in range(6) for im in stream.global_batch(s)["unlabelled"]["image"]]
  assert len(seen) == 96 and set(seen) <= pool_images
  again = spec.build(data, batch_size=8, seed=7)
  np.testing.assert_array_equal(again.unlabelled_indices, pool)  # the pool depends on the split seed only
  with pytest.raises(ValueError, match="do not fit in the"):
    streams.LabelledUnlabelled(num_labels=20, num_unlabelled=10**6).build(data, batch_size=4, seed=0)


def test_image_subset_draws_exactly_the_images_of_the_labelled_split_and_its_pool():
  """`data.subset`: a label-free run sees only the images that the semi-supervised stream of that split draws."""
  data = _data()
  semi = streams.LabelledUnlabelled(num_labels=20, split_seed=3, mu=2, num_unlabelled=30).build(data, batch_size=8,
                                                                                                seed=0)
  wanted = set(semi.labelled_indices.tolist()) | set(semi.unlabelled_indices.tolist())
  assert len(wanted) == 50
  spec = streams.Images(subset=streams.Subset.parse(" 3@20 + 30 "))
  assert spec.subset == streams.Subset(3, 20, 30) and str(spec.subset) == "3@20+30"
  stream = spec.build(data, batch_size=16, seed=0)
  assert stream.name == "toy.3@20+30u" and stream.record()["subset"] == "3@20+30"
  assert stream.record()["num_images"] == 50 and len(stream.eval_data["train"]) == len(data.train)  # eval: whole split
  # Row i's first pixel is i mod 256 (200 rows): the pixel names the training row.
  seen = np.concatenate([stream.global_batch(s)["image"][:, 0, 0, 0] for s in range(6)])
  assert len(seen) == 96 and set(seen.tolist()) == wanted  # six batches of 16 cover the 50 images (3 epochs)
  # An epoch is a permutation of the 50 images: 3 batches of 16 hold 48 distinct ones.
  assert len(set(np.concatenate([stream.global_batch(s)["image"][:, 0, 0, 0] for s in range(3)]).tolist())) == 48
  for bad in ("3@20", "a@20+30", "3@20+30+1", ""):
    with pytest.raises(ValueError, match="SEED@LABELS\\+UNLABELLED, e.g. 0@5000\\+20000"):
      streams.Subset.parse(bad)
  with pytest.raises(ValueError, match="data.subset=3@25\\+30: 25 labels cannot be split evenly"):
    streams.Images(subset=streams.Subset(3, 25, 30)).build(data, batch_size=4, seed=0)
  with pytest.raises(ValueError, match="data.subset=3@20\\+500: 20 labelled \\+ 500 unlabelled images do not fit"):
    streams.Images(subset=streams.Subset(3, 20, 500)).build(data, batch_size=4, seed=0)
  with pytest.raises(ValueError, match="larger than the 50 images of data.subset=3@20\\+30; use --config.batch_size=50"):
    spec.build(data, batch_size=64, seed=0)


def test_bags_are_padded_masked_and_labelled_by_the_target_class():
  spec = streams.Bags(target_class=9, mean_size=5, std_size=1, num_train_bags=50, num_test_bags=20)
  data = _data()
  stream = spec.build(data, batch_size=8, seed=0)
  batch = stream.global_batch(3)
  n = spec.padded_size
  assert batch["instances"].shape == (8, n, 4, 4, 1) and batch["mask"].shape == (8, n)
  assert (batch["instances"][~batch["mask"]] == 0).all(), "padded slots hold zero images"
  lengths = batch["mask"].sum(1)
  assert (lengths >= 1).all() and all(batch["mask"][i, :k].all() for i, k in enumerate(lengths))
  bags = stream.train_bags
  for row in range(50):
    members = bags["index"][row][bags["mask"][row]]
    assert bags["label"][row] == int((data.train.labels[members] == 9).any())
  test = stream.eval_data["bags_test"]
  assert test["instances"].shape[0] == 20 and set(test) >= {"instances", "mask", "label", "instance_label"}
  assert 0 < bags["label"].sum() < 50
  with pytest.raises(ValueError, match="larger than the 50 training bags"):
    spec.build(data, batch_size=64, seed=0)


def test_balanced_bags_hold_the_asked_share_of_positives_each_a_uniform_bag_given_its_label():
  """At mean size 50 uniform bags of a 10% class are ~all positive; balanced ones are half, drawn as the
  uniform bag conditioned on its label (checked against rejection sampling of uniform bags)."""
  data = _data()
  spec = streams.Bags(target_class=9, mean_size=50, std_size=10, num_train_bags=60, num_test_bags=40,
                      positive_fraction=0.5)
  stream = spec.build(data, batch_size=8, seed=0)
  assert "50% positive" in stream.name
  uniform = streams.Bags(target_class=9, mean_size=50, std_size=10, num_train_bags=60).build(data, batch_size=8,
                                                                                            seed=0)
  assert uniform.train_bags["label"].mean() > 0.95  # the reason for the balance
  for bags, labels, total in ((stream.train_bags, data.train.labels, 60), (stream.test_bags, data.test.labels, 40)):
    assert bags["label"].sum() == total // 2
    for row in range(total):
      members = labels[bags["index"][row][bags["mask"][row]]]
      assert bags["label"][row] == int((members == 9).any())
      np.testing.assert_array_equal(bags["instance_label"][row][bags["mask"][row]], members == 9)
  # The number of target instances in a positive bag of n = 4 draws with p = 0.1: Binomial(4, 0.1) given >= 1,
  # against rejection sampling of uniform bags (an independent reference).
  labels = np.arange(1000) % 10
  drawn = streams.draw_bags(labels, num_bags=4000, target_class=9, mean_size=4, std_size=0, max_size=4,
                            seed=(3,), positive_fraction=0.5)
  pos = drawn["label"] == 1
  counts = np.bincount(drawn["instance_label"][pos].sum(1), minlength=5)[1:] / pos.sum()
  rng = np.random.default_rng(0)
  k = (rng.integers(0, 1000, (200_000, 4)) % 10 == 9).sum(1)
  reference = np.bincount(k[k >= 1], minlength=5)[1:] / (k >= 1).sum()
  np.testing.assert_allclose(counts, reference, atol=0.03)
  neg = drawn["index"][~pos]
  assert not (labels[neg] == 9).any() and len(np.unique(labels[neg])) == 9  # every other class appears
  with pytest.raises(ValueError, match="positive bags must lie in"):
    streams.Bags(positive_fraction=1.0).build(data, batch_size=8, seed=0)
  # The MNIST-bags config balances the paper's large bags and keeps the reference draw at mean size 10.
  from ssl_jax.methods.mil import mil  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  for size, fraction in ((10, 0.0), (50, 0.5), (100, 0.5)):
    config = config_lib.load_config(f"configs/mil/mil_mnist_bags.py:mean_bag_size={size}")
    assert mil.stream(config).positive_fraction == fraction
  assert mil.stream(config_lib.load_config("configs/mil/mil_mnist_bags.py:positive=0.3")).positive_fraction == 0.3


def test_pk_batches_hold_p_training_classes_and_hold_out_the_rest():
  spec, b = SPECS["class_balanced"]
  stream = spec.build(_data(), batch_size=b, seed=0)
  for step in range(20):
    labels = stream.global_batch(step)["label"]
    classes, counts = np.unique(labels, return_counts=True)
    assert len(classes) == 4 and set(counts) == {6} and set(classes) <= {0, 1, 2, 3, 4}
  held = stream.eval_data["retrieval"]
  assert set(np.unique(held.labels)) == {5, 6, 7, 8, 9} and stream.held_out == (5, 6, 7, 8, 9)
  with pytest.raises(ValueError, match="P x K batch of 25"):
    spec.check(batch_size=25, info=_data().info)


def test_source_target_stream_resizes_the_target_and_judges_on_it():
  source = _data()
  target = streams.Data(_dataset(60, size=2, seed=4, name="small"), _dataset(30, size=2, seed=5, name="small"))
  stream = streams.SourceTargetStream(source, target, batch_size=16, seed=0)
  batch = stream.global_batch(1)
  assert batch["source"]["image"].shape == (16, 4, 4, 1) and batch["target"]["image"].shape == (16, 4, 4, 1)
  assert "label" not in batch["target"]
  assert stream.eval_data["test"].image_shape == (4, 4, 1) and len(stream.eval_data["test"]) == 30
  flat = dataclasses.replace(target.train, images=np.full((60, 2, 2, 1), 77, np.uint8))
  np.testing.assert_array_equal(streams.match_images(flat, (4, 4, 1)).images, 77)  # resizing keeps a flat image


def test_images_stream_keeps_the_order_of_batch_indices():
  stream = streams.Images().build(_data(), batch_size=40, seed=3)
  rows = batch_indices(200, global_batch_size=40, step=6, seed=3)
  np.testing.assert_array_equal(stream.global_batch(6)["label"], _data().train.labels[rows])
  with pytest.raises(ValueError, match="larger than the 200 training images"):
    streams.Images().check(batch_size=256, info=_data().info)


def test_nested_batches_shard_like_flat_ones():
  stream = SPECS["labelled_unlabelled"][0].build(_data(), batch_size=16, seed=0)
  mesh = mesh_lib.make_mesh()
  batch = shard_batch(stream.global_batch(0), mesh)
  for leaf in jax.tree.leaves(batch):
    assert leaf.sharding == mesh_lib.batch_sharded(mesh) and len(leaf.sharding.device_set) == 8
  info = DatasetInfo((4, 4, 1), 10, "train", "test", rgb=False, train_examples=200)
  assert streams.LabelledUnlabelled(num_labels=20, mu=3).check(batch_size=16, info=info) == {
      "labelled": 16, "unlabelled": 48}
