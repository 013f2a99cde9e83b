"""RankMe against its formula, written naively, and at its two ends: collapse and isotropy."""

import numpy as np
import pytest

from ssl_jax.evaluation.rankme import rankme


def _naive(z, eps=1e-7):
  s = np.linalg.svd(np.asarray(z, np.float64), compute_uv=False)
  p = [x / sum(s) + eps for x in s]
  return float(np.exp(-sum(q * np.log(q) for q in p)))


@pytest.mark.parametrize("shape", [(50, 8), (8, 50), (100, 100)])
def test_matches_the_formula(shape):
  z = np.random.default_rng(0).normal(size=shape) * np.linspace(0.1, 3, shape[1])
  np.testing.assert_allclose(rankme(z), _naive(z), rtol=1e-12)


def test_collapse_is_one_and_isotropy_is_full_rank():
  rng = np.random.default_rng(1)
  collapsed = np.outer(rng.normal(size=500), rng.normal(size=32))  # every embedding on one line
  assert rankme(collapsed) == pytest.approx(1.0, abs=1e-3)
  isotropic = rng.normal(size=(20000, 32))
  assert 31.5 < rankme(isotropic) <= 32.0
  two_dims = np.concatenate([rng.normal(size=(1000, 2)), np.zeros((1000, 30))], axis=1)
  assert rankme(two_dims) == pytest.approx(2.0, abs=0.05)
  assert rankme(np.zeros((4, 3))) == 1.0


def test_bad_shape_is_one_sentence():
  with pytest.raises(ValueError, match=r"rankme needs embeddings of shape \[N, d\]"):
    rankme(np.zeros(5))
