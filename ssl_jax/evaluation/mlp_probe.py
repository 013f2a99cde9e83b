"""MLP probe: a one-hidden-layer network on frozen features (scikit-learn's `MLPClassifier`).

On standardised features z, p(y | z) = softmax(W_2 relu(W_1 z + b_1) + b_2), trained with Adam on the
cross-entropy plus alpha/2 ||W||^2; alpha is chosen on a stratified validation split of the training
rows, and the network with the best alpha is retrained on every training row and scored on the test rows.
A non-linear probe measures what a frozen representation holds beyond linear separability (e.g.
Kolesnikov et al. 2019 compare linear and MLP heads).
References: Kolesnikov, Zhai & Beyer 2019, arXiv:1901.09005.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssl_jax.evaluation.svm import ProbeResult, _check, standardize, validation_split


def mlp_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
              hidden_dim: int = 512, alphas: Sequence[float] = (1e-4, 1e-2), val_fraction: float = 0.2,
              max_iter: int = 100, seed: int = 0) -> ProbeResult:
  """Test accuracy of an MLP (one hidden ReLU layer of `hidden_dim`) on frozen features.

  Args:
    train_x, train_y, test_x, test_y: features [N, d], [M, d] and integer labels.
    hidden_dim: width of the hidden layer.
    alphas: L2 penalties tried on the validation rows.
    val_fraction: fraction of the training rows held out to choose alpha.
    max_iter: Adam epochs per fit.
    seed: seed of the split and of the network's initialisation and shuffles.
  Returns:
    `ProbeResult(top1, best=alpha, val_top1={alpha: accuracy})`.
  """
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  from sklearn.neural_network import MLPClassifier  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  _check(train_x, train_y, test_x, test_y, "mlp_probe")
  if hidden_dim < 1 or not alphas or min(alphas) < 0 or not 0 < val_fraction < 1:
    raise ValueError(f"mlp_probe: need hidden_dim >= 1, alphas >= 0 and 0 < val_fraction < 1; got {hidden_dim}, "
                     f"{tuple(alphas)} and {val_fraction}.")
  train_x, test_x = standardize(np.asarray(train_x, np.float32), np.asarray(test_x, np.float32))
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  fit, val = validation_split(train_y, val_fraction, seed)
  fit_x = standardize(train_x[fit], train_x[val])
  make = lambda alpha: MLPClassifier((hidden_dim,), alpha=alpha, max_iter=max_iter, random_state=seed)
  scores = {}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for alpha in alphas:
      scores[float(alpha)] = float(np.mean(make(alpha).fit(fit_x[0], train_y[fit]).predict(fit_x[1]) == train_y[val]))
    best = max(scores, key=lambda a: (scores[a], a))
    model = make(best).fit(train_x, train_y)
  return ProbeResult(top1=float(np.mean(model.predict(test_x) == test_y)), best=best, val_top1=scores)
