"""Linear probe: separable data, agreement with scikit-learn, sharded == unsharded, bad input."""

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from ssl_jax.evaluation.linear_probe import LinearProbeResult, linear_probe


def _mesh():
  return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _blobs(n, d=16, c=4, seed=0, spread=0.3):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(c, d)) * 3.0
  y = rng.integers(0, c, size=n)
  return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


@pytest.fixture(scope="module")
def digits():
  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  perm = np.random.default_rng(0).permutation(len(x))
  tr, te = perm[:1200], perm[1200:]
  return x[tr], y[tr], x[te], y[te]


def test_separable_data_is_solved():
  x, y = _blobs(603)
  r = linear_probe(x[:403], y[:403], x[403:], y[403:], num_classes=4, weight_decays=(1e-4, 1e-3),
                   batch_size=64, epochs=5, min_steps=100)
  assert isinstance(r, LinearProbeResult)
  assert r.top1 >= 0.99 and r.train_top1 >= 0.99
  assert r.top5 is None  # only 4 classes
  assert set(r.val_top1) == {1e-4, 1e-3} and r.best_weight_decay in r.val_top1


def test_matches_sklearn_on_digits(digits):
  xtr, ytr, xte, yte = digits
  sk = LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte)
  r = linear_probe(xtr, ytr, xte, yte, num_classes=10, batch_size=128, weight_decays=(1e-4, 1e-3, 1e-2))
  assert sk > 0.94
  assert abs(r.top1 - sk) <= 0.025, (r, sk)
  assert r.top5 is not None and r.top5 >= r.top1 and r.top5 > 0.99
  assert r.train_top1 >= r.top1 - 0.01


def test_sharded_equals_unsharded_full_batch(digits):
  # With batch_size >= N every step uses all rows, so both runs follow the same trajectory.
  xtr, ytr, xte, yte = digits
  xtr, ytr = xtr[:1001], ytr[:1001]  # not a multiple of 8: pad rows must be ignored
  kw = dict(num_classes=10, batch_size=2048, epochs=1, min_steps=150, weight_decays=(1e-3, 1e-1))
  single = linear_probe(xtr, ytr, xte, yte, **kw)
  sharded = linear_probe(xtr, ytr, xte, yte, mesh=_mesh(), **kw)
  # Same trajectory up to float summation order: at most one borderline row may flip.
  assert sharded.best_weight_decay == single.best_weight_decay
  for w in kw["weight_decays"]:
    assert sharded.val_top1[w] == pytest.approx(single.val_top1[w], abs=1.01 / 100)
  assert sharded.top1 == pytest.approx(single.top1, abs=1.01 / len(yte))
  assert sharded.train_top1 == pytest.approx(single.train_top1, abs=1.01 / len(ytr))
  assert single.top1 > 0.9


def test_sharded_minibatch_same_accuracy(digits):
  xtr, ytr, xte, yte = digits
  kw = dict(num_classes=10, batch_size=128, weight_decays=(1e-3,))
  single = linear_probe(xtr, ytr, xte, yte, **kw)
  sharded = linear_probe(jax.numpy.asarray(xtr), ytr, xte, yte, mesh=_mesh(), **kw)
  assert single.val_top1 == {} and single.best_weight_decay == 1e-3
  assert abs(sharded.top1 - single.top1) <= 0.015


@pytest.mark.parametrize("change, match", [
    (dict(train_y=np.zeros(9, int)), "same number of rows"),
    (dict(test_x=np.zeros((5, 4), np.float32)), "same dimension d"),
    (dict(train_x=np.zeros((10,), np.float32)), "must be 2-D"),
    (dict(train_y=np.full(10, 3)), r"\[0, num_classes=3\)"),
    (dict(train_y=np.zeros(10, np.float32)), "integer class ids"),
    (dict(weight_decays=()), "non-empty grid"),
    (dict(val_fraction=0.0), "val_fraction"),
])
def test_bad_input_raises(change, match):
  args = dict(train_x=np.zeros((10, 3), np.float32), train_y=np.zeros(10, int),
              test_x=np.zeros((5, 3), np.float32), test_y=np.zeros(5, int), num_classes=3)
  args.update(change)
  with pytest.raises(ValueError, match=match):
    linear_probe(**args)
