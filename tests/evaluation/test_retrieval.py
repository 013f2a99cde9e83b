"""Recall@K and MAP@R against a naive NumPy reference written from the definitions."""

import numpy as np
import pytest

from ssl_jax.evaluation.retrieval import retrieval_metrics


def naive(emb, labels, ks):
  emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  n = len(labels)
  recalls = {k: [] for k in ks}
  maps = []
  for q in range(n):
    sims = emb @ emb[q]
    order = [i for i in np.argsort(-sims, kind="stable") if i != q]
    hits = [labels[i] == labels[q] for i in order]
    r = sum(labels[i] == labels[q] for i in range(n) if i != q)
    if r == 0:
      continue
    for k in ks:
      recalls[k].append(float(any(hits[:k])))
    precision_sum = 0.0
    for i in range(r):
      if hits[i]:
        precision_sum += sum(hits[:i + 1]) / (i + 1)
    maps.append(precision_sum / r)
  out = {f"recall_at_{k}": float(np.mean(v)) for k, v in recalls.items()}
  out["map_at_r"] = float(np.mean(maps))
  return out


@pytest.mark.parametrize("n,d,classes,block", [(50, 8, 5, 256), (97, 4, 7, 16), (30, 16, 3, 7)])
def test_matches_the_definitions(n, d, classes, block):
  rng = np.random.default_rng(n)
  labels = rng.integers(0, classes, n)
  emb = rng.normal(size=(n, d)) + 0.8 * np.eye(classes, d)[labels % d if classes > d else labels]
  got = retrieval_metrics(emb, labels, ks=(1, 2, 4, 8), block_size=block)
  want = naive(emb, labels, (1, 2, 4, 8))
  for key in want:
    np.testing.assert_allclose(got[key], want[key], atol=1e-6, err_msg=key)


def test_perfect_and_singleton_classes():
  emb = np.repeat(np.eye(4), 3, axis=0) + 1e-3 * np.arange(12)[:, None]
  labels = np.repeat(np.arange(4), 3)
  got = retrieval_metrics(np.concatenate([emb, [[1.0, 1.0, 1.0, 1.0]]]), np.concatenate([labels, [9]]))
  assert got["recall_at_1"] == 1.0 and got["map_at_r"] == 1.0  # the lone item of class 9 is no query


def test_bad_input():
  with pytest.raises(ValueError, match="embeddings must be"):
    retrieval_metrics(np.zeros((4, 2)), np.zeros(3))
  with pytest.raises(ValueError, match="K < N"):
    retrieval_metrics(np.ones((4, 2)), np.zeros(4), ks=(8,))
