"""Linear SVM on frozen features (scikit-learn's `LinearSVC`), its C chosen on a validation split.

The features are standardised with the training rows' mean and standard deviation; a one-vs-rest linear
SVM (squared hinge loss, L2 penalty)

  min_w 1/2 ||w_c||^2 + C sum_i max(0, 1 - y_ic w_c^T z_i)^2          for every class c

is trained for every C of a grid on a stratified `1 - val_fraction` of the training rows and scored on the
rest; the best C is retrained on every training row and scored on the test rows. The "frozen feature
extractor with an SVM" of transfer learning (Donahue et al. 2014; Razavian et al. 2014).
References: Fan et al. 2008, "LIBLINEAR", JMLR 9; Razavian et al. 2014, arXiv:1403.6382.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class ProbeResult:
  """Test top-1 of a probe, the hyperparameter chosen on the validation rows and every candidate's score."""
  top1: float
  best: float
  val_top1: dict[float, float]


def _check(train_x, train_y, test_x, test_y, where: str) -> None:
  shapes = [np.shape(a) for a in (train_x, train_y, test_x, test_y)]
  if (len(shapes[0]) != 2 or len(shapes[2]) != 2 or shapes[0][1] != shapes[2][1] or shapes[1] != shapes[0][:1]
      or shapes[3] != shapes[2][:1] or shapes[0][0] < 4 or shapes[2][0] < 1):
    raise ValueError(f"{where}: need features [N, d] (N >= 4) and [M, d] with one label per row; got "
                     f"train {shapes[0]} {shapes[1]}, test {shapes[2]} {shapes[3]}.")


def standardize(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """(x - mean) / std with the training rows' statistics (constant features -> 0), for every array."""
  mean, std = train_x.mean(0), train_x.std(0)
  scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 0.0)
  return [((x - mean) * scale).astype(np.float32) for x in (train_x, *others)]


def validation_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Stratified (fit rows, validation rows) of a labelled set; every class keeps a row in each part."""
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  rows = np.arange(len(labels))
  counts = np.bincount(labels)
  stratify = labels if counts[counts > 0].min() >= 2 else None
  n_val = max(int(round(val_fraction * len(labels))), len(np.unique(labels)) if stratify is not None else 1)
  return train_test_split(rows, test_size=n_val, random_state=seed, stratify=stratify)


def svm_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
              cs: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0), val_fraction: float = 0.2, seed: int = 0,
              max_iter: int = 2000) -> ProbeResult:
  """Test accuracy of a linear SVM on frozen features, C picked on a stratified validation split.

  Args:
    train_x, train_y: training features [N, d] and integer labels [N].
    test_x, test_y: test features [M, d] and labels [M].
    cs: the grid of C (inverse regularisation strength).
    val_fraction: fraction of the training rows held out to choose C.
    seed: seed of the split and of the solver.
    max_iter: LIBLINEAR iterations per fit.
  Returns:
    `ProbeResult(top1, best=C, val_top1={C: accuracy})`.
  """
  from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top
  _check(train_x, train_y, test_x, test_y, "svm_probe")
  if not cs or min(cs) <= 0 or not 0 < val_fraction < 1:
    raise ValueError(f"svm_probe: need positive C values and 0 < val_fraction < 1; got {tuple(cs)} and "
                     f"{val_fraction}.")
  train_x, test_x = standardize(np.asarray(train_x, np.float32), np.asarray(test_x, np.float32))
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  fit, val = validation_split(train_y, val_fraction, seed)
  fit_x = standardize(train_x[fit], train_x[val])
  scores = {}
  for c in cs:
    model = LinearSVC(C=c, max_iter=max_iter, random_state=seed).fit(fit_x[0], train_y[fit])
    scores[float(c)] = float(np.mean(model.predict(fit_x[1]) == train_y[val]))
  best = max(scores, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
  model = LinearSVC(C=best, max_iter=max_iter, random_state=seed).fit(train_x, train_y)
  return ProbeResult(top1=float(np.mean(model.predict(test_x) == test_y)), best=best, val_top1=scores)
