"""kNN: naive NumPy loop reference, blockwise == one block, sharded == unsharded, bad input."""

import jax
import numpy as np
import pytest

from ssl_jax.evaluation.knn import knn_accuracy, knn_classify


def _naive_knn(train_x, train_y, test_x, *, num_classes, k, temperature, weighting):
  """Explicit loops over test points: cosine similarities, top k, weighted vote, argmax."""
  preds = []
  for q in test_x.astype(np.float64):
    sims = []
    for t in train_x.astype(np.float64):
      sims.append(np.dot(q, t) / (np.linalg.norm(q) * np.linalg.norm(t)))
    sims = np.array(sims)
    nearest = np.argsort(-sims, kind="stable")[:min(k, len(sims))]
    votes = np.zeros(num_classes)
    for j in nearest:
      votes[train_y[j]] += 1.0 if weighting == "uniform" else np.exp(sims[j] / temperature)
    preds.append(int(np.argmax(votes)))
  return np.array(preds)


def _data(n=61, m=23, d=8, c=5, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, c, n),
          rng.normal(size=(m, d)).astype(np.float32), rng.integers(0, c, m))


def _mesh():
  return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


@pytest.mark.parametrize("k, temperature, weighting", [
    (5, 0.07, "distance"), (20, 0.5, "distance"), (7, 0.07, "uniform"), (200, 0.1, "distance")])
def test_matches_naive_loop(k, temperature, weighting):
  xtr, ytr, xte, _ = _data()
  kw = dict(num_classes=5, k=k, temperature=temperature, weighting=weighting)
  want = _naive_knn(xtr, ytr, xte, **kw)
  np.testing.assert_array_equal(knn_classify(xtr, ytr, xte, batch_size=8, **kw), want)


def test_blockwise_equals_single_block_and_sharded():
  xtr, ytr, xte, _ = _data(n=203, m=37, d=16, c=7, seed=1)
  kw = dict(num_classes=7, k=10)
  one_block = knn_classify(xtr, ytr, xte, batch_size=1000, **kw)
  np.testing.assert_array_equal(knn_classify(xtr, ytr, xte, batch_size=5, **kw), one_block)
  # Train rows split over 8 devices (203 is not a multiple of 8: pad rows must never be neighbours).
  np.testing.assert_array_equal(knn_classify(xtr, ytr, xte, batch_size=5, mesh=_mesh(), **kw), one_block)
  np.testing.assert_array_equal(
      knn_classify(xtr, ytr, xte, batch_size=5, mesh=_mesh(), weighting="uniform", **kw),
      _naive_knn(xtr, ytr, xte, temperature=0.07, weighting="uniform", **kw))


def test_accuracy_on_clusters():
  rng = np.random.default_rng(0)
  centers = rng.normal(size=(4, 32))
  ytr, yte = rng.integers(0, 4, 300), rng.integers(0, 4, 50)
  xtr = centers[ytr] + 0.3 * rng.normal(size=(300, 32))
  xte = centers[yte] + 0.3 * rng.normal(size=(50, 32))
  assert knn_accuracy(xtr, ytr, xte, yte, num_classes=4, k=20) == 1.0
  # Shuffled labels: accuracy is a real measurement, not a constant.
  assert knn_accuracy(xtr, rng.permutation(ytr), xte, yte, num_classes=4, k=20) < 0.7


@pytest.mark.parametrize("change, match", [
    (dict(train_y=np.zeros(9, int)), "one label per row of `train_x`"),
    (dict(test_x=np.zeros((5, 4), np.float32)), "same dimension d"),
    (dict(test_y=np.zeros(4, int)), "one label per row of `test_x`"),
    (dict(train_y=np.full(10, 3)), r"\[0, num_classes=3\)"),
    (dict(weighting="cosine"), "weighting"),
    (dict(temperature=0.0), "temperature > 0"),
])
def test_bad_input_raises(change, match):
  args = dict(train_x=np.zeros((10, 3), np.float32), train_y=np.zeros(10, int),
              test_x=np.zeros((5, 3), np.float32), test_y=np.zeros(5, int), num_classes=3)
  args.update(change)
  with pytest.raises(ValueError, match=match):
    knn_accuracy(**args)
