"""RankMe (Garrido, Balestriero, Najman & LeCun 2023, arXiv:2210.02885): a label-free collapse monitor.

The effective rank of a batch of embeddings Z [N, d] is the exponential of the entropy of its normalised
singular values,

    RankMe(Z) = exp(-sum_k p_k log p_k),   p_k = sigma_k / ||sigma||_1 + eps,

between 1 (every embedding on one line: complete collapse) and min(N, d) (singular values all equal). A
self-supervised run whose RankMe falls towards 1 is collapsing, whatever its loss says, and the paper shows
that a higher RankMe goes with a better linear probe for the same method. No labels are needed.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7  # the paper's epsilon


def rankme(embeddings: np.ndarray, *, eps: float = EPS) -> float:
  """The effective rank of `embeddings` [N, d] (N >= 1), computed in float64 on the host."""
  z = np.asarray(embeddings, np.float64)
  if z.ndim != 2 or z.shape[0] < 1:
    raise ValueError(f"rankme needs embeddings of shape [N, d] with N >= 1; got {z.shape}.")
  sigma = np.linalg.svd(z, compute_uv=False)
  total = sigma.sum()
  if total <= 0:
    return 1.0  # all zero: no direction at all, as collapsed as it gets
  p = sigma / total + eps
  return float(np.exp(-np.sum(p * np.log(p))))
