"""Redundancy-reduction and spreading losses: Barlow Twins, VICReg and the KoLeo regulariser.

All are batch-coupled: they depend on the whole (global) batch, so they return a scalar.
Under `jax.shard_map`, pass `axis_name=` and every statistic (means, variances, the cross-correlation and
covariance matrices) is summed over the devices with `psum` of sums and counts, and KoLeo's nearest
neighbours are searched in the gathered global batch, so the value and gradient on 8 devices equal those of
one device holding the whole batch.

All arithmetic runs in float32 at least (bfloat16/float16 inputs are upcast), and the d x d matrix products
use `Precision.HIGHEST`, so that TPUs and TF32-capable GPUs do not silently round them to bfloat16/TF32.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from ssl_jax.losses._utils import all_gather, axis_index, check_ndim, check_same_shape, psum, shape_error

_HIGHEST = jax.lax.Precision.HIGHEST


def _check_nonneg(loss: str, name: str, value) -> None:
  """Raise if a concrete hyperparameter is negative (traced values are not checked)."""
  if isinstance(value, numbers.Real) and not value >= 0:
    raise ValueError(f"{loss}: `{name}` must be >= 0; got {name}={value!r}.")


def _check_inputs(loss: str, z1: jax.Array, z2: jax.Array) -> jax.Array:
  """Check the two views and return the computation dtype (float32 at least)."""
  check_ndim(loss, 2, z1=z1, z2=z2)
  check_same_shape(loss, z1=z1, z2=z2)
  if z1.shape[0] < 1 or z1.shape[1] < 1:
    raise shape_error(loss, "`z1` and `z2` must have at least one row and one column", z1=z1, z2=z2)
  return jnp.promote_types(jnp.result_type(z1, z2), jnp.float32)


def _global_count(n_local: int, axis_name: str | None, dtype) -> jax.Array:
  """Number of rows in the global batch (sum of the per-device counts)."""
  return psum(jnp.asarray(n_local, dtype), axis_name)


def _center(z: jax.Array, n: jax.Array, axis_name: str | None) -> jax.Array:
  """Subtract the global per-dimension mean."""
  return z - psum(jnp.sum(z, axis=0), axis_name) / n


@jax.custom_jvp
def _gram(x: jax.Array) -> jax.Array:
  """x^T x for x of shape [n, d], with a derivative that needs one matmul in the backward pass, not two.

  Plain autodiff transposes `x.T @ x` as two products (one per operand), x ct^T + x ct. The tangent written
  here, s + s^T with s = x^T dx, transposes to x (ct + ct^T): one [n, d] x [d, d] matmul. Being a custom
  JVP (not a VJP), forward-mode and higher-order derivatives keep working.
  """
  return jnp.matmul(x.T, x, precision=_HIGHEST)


@_gram.defjvp
def _gram_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  s = jnp.matmul(x.T, dx, precision=_HIGHEST)
  return _gram(x), s + s.T


def _off_diagonal_sq_sum(c: jax.Array) -> jax.Array:
  """Sum of the squared off-diagonal entries of a square matrix (masked, no cancellation)."""
  eye = jnp.eye(c.shape[0], dtype=bool)
  return jnp.sum(jnp.where(eye, 0.0, c * c))


def barlow_twins(z1: jax.Array, z2: jax.Array, *, lambda_: float = 5e-3, eps: float = 1e-5,
                 axis_name: str | None = None) -> jax.Array:
  r"""Barlow Twins loss: the cross-correlation of the two views pushed to the identity; a scalar.

  Each embedding dimension is standardised over the global batch of N rows, as the official code's
  `BatchNorm1d(affine=False)` does in training mode (synchronised across GPUs there), i.e. with the *biased*
  (population, divide-by-N) variance and `eps` inside the square root:

    zn = (z - mean_n z) / sqrt(var_n z + eps),    var_n z = mean_n (z - mean_n z)^2
    C_ij = (1/N) sum_n zn1_ni zn2_nj
    L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2

  Batch-coupled, so it returns a scalar (not per-example values).

  Args:
    z1: projections of the first view, shape [b, d] (per device when `axis_name` is set).
    z2: projections of the second view, shape [b, d]; row n of z1 and row n of z2 are the same image.
    lambda_: weight of the off-diagonal (redundancy-reduction) term.
    eps: added to the variance before the square root, as in `BatchNorm1d` (default 1e-5).
    axis_name: mesh axis that shards the batch inside `shard_map`: means, variances and C are computed
      over the global batch (psum of sums and counts); None under plain `jit`.

  Returns:
    The loss, a scalar of dtype float32 (or wider), identical on every device.

  Raises:
    ValueError: if z1 and z2 are not rank 2 or do not have the same shape.

  References:
    Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021,
    arXiv:2103.03230; facebookresearch/barlowtwins main.py.
  """
  loss = "barlow_twins"
  dtype = _check_inputs(loss, z1, z2)
  _check_nonneg(loss, "lambda_", lambda_)
  _check_nonneg(loss, "eps", eps)
  z1 = z1.astype(dtype)
  z2 = z2.astype(dtype)
  n = _global_count(z1.shape[0], axis_name, dtype)

  def standardise(z):
    zc = _center(z, n, axis_name)
    var = psum(jnp.sum(zc * zc, axis=0), axis_name) / n
    return zc * jax.lax.rsqrt(var + eps)

  c = psum(jnp.matmul(standardise(z1).T, standardise(z2), precision=_HIGHEST), axis_name) / n
  on_diag = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
  return on_diag + lambda_ * _off_diagonal_sq_sum(c)


def vicreg_terms(z1: jax.Array, z2: jax.Array, *, eps: float = 1e-4,
                 axis_name: str | None = None) -> dict[str, jax.Array]:
  r"""The three unweighted terms of VICReg (invariance, variance, covariance), as in the official code.

  With N the global batch size, d the dimension, and z-bar the z centred over the global batch:

    invariance = (1/(N d)) sum_{n,i} (z1_ni - z2_ni)^2                       (F.mse_loss)
    Cov(z)     = z-bar^T z-bar / (N - 1)                                     (unbiased)
    std_i(z)   = sqrt(Cov(z)_ii + eps)
    variance   = (mean_i relu(1 - std_i(z1)) + mean_i relu(1 - std_i(z2))) / 2
    covariance = (sum_{i != j} Cov(z1)_ij^2 + sum_{i != j} Cov(z2)_ij^2) / d

  Note the asymmetry of the released code, kept here: the variance term averages the two branches, the
  covariance term sums them.

  Args:
    z1: embeddings of the first view, shape [b, d] (per device when `axis_name` is set).
    z2: embeddings of the second view, shape [b, d].
    eps: added to the variance before the square root (1e-4 in the official code).
    axis_name: mesh axis that shards the batch inside `shard_map`; all statistics are global (psum of
      sums and counts); None under plain `jit`.

  Returns:
    A dict with scalar entries "invariance", "variance" and "covariance" (float32 or wider).

  Raises:
    ValueError: if z1 and z2 are not rank 2, do not have the same shape, or (without `axis_name`) have
      fewer than 2 rows.

  References:
    Bardes et al., "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
    ICLR 2022, arXiv:2105.04906; facebookresearch/vicreg main_vicreg.py.
  """
  loss = "vicreg"
  dtype = _check_inputs(loss, z1, z2)
  _check_nonneg(loss, "eps", eps)
  z1 = z1.astype(dtype)
  z2 = z2.astype(dtype)
  b, d = z1.shape
  if axis_name is None and b < 2:
    raise shape_error(loss, "the unbiased (N-1) variance needs a batch of at least 2 rows", z1=z1, z2=z2)
  n = _global_count(b, axis_name, dtype)

  invariance = psum(jnp.sum(jnp.square(z1 - z2)), axis_name) / (n * d)

  def var_cov(z):
    zc = _center(z, n, axis_name)
    cov = psum(_gram(zc), axis_name) / (n - 1.0)
    std = jnp.sqrt(jnp.diagonal(cov) + eps)
    return jnp.mean(jax.nn.relu(1.0 - std)), _off_diagonal_sq_sum(cov) / d

  std1, cov1 = var_cov(z1)
  std2, cov2 = var_cov(z2)
  return {"invariance": invariance, "variance": (std1 + std2) / 2.0, "covariance": cov1 + cov2}


def vicreg(z1: jax.Array, z2: jax.Array, *, sim_coeff: float = 25.0, std_coeff: float = 25.0,
           cov_coeff: float = 1.0, eps: float = 1e-4, axis_name: str | None = None) -> jax.Array:
  r"""VICReg loss: invariance + variance + covariance regularisation; a scalar.

    L = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance

  with the terms of `vicreg_terms` (MSE between the views; hinge on the per-dimension std, averaged over
  the two branches; squared off-diagonal covariances / d, summed over the two branches; unbiased N-1
  estimators over the global batch). Batch-coupled, so it returns a scalar. Call `vicreg_terms` to log the
  three terms separately.

  Args:
    z1: embeddings of the first view, shape [b, d] (per device when `axis_name` is set).
    z2: embeddings of the second view, shape [b, d].
    sim_coeff: weight of the invariance (MSE) term (lambda in the paper).
    std_coeff: weight of the variance term (mu in the paper).
    cov_coeff: weight of the covariance term (nu in the paper).
    eps: added to the variance before the square root.
    axis_name: mesh axis that shards the batch inside `shard_map`; None under plain `jit`.

  Returns:
    The loss, a scalar of dtype float32 (or wider), identical on every device.

  Raises:
    ValueError: as `vicreg_terms`.

  References:
    Bardes et al., "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
    ICLR 2022, arXiv:2105.04906; facebookresearch/vicreg main_vicreg.py.
  """
  terms = vicreg_terms(z1, z2, eps=eps, axis_name=axis_name)
  return (sim_coeff * terms["invariance"] + std_coeff * terms["variance"]
          + cov_coeff * terms["covariance"])


def koleo(x: jax.Array, *, eps: float = 1e-8, axis_name: str | None = None) -> jax.Array:
  r"""KoLeo regulariser: the Kozachenko-Leonenko differential-entropy estimate, negated; a scalar.

    L = -(1/n) sum_i log(min_{j != i} ||x_i/||x_i|| - x_j/||x_j|| || + eps)

  over the n rows of the global batch. Minimising it pushes every L2-normalised embedding away from its
  nearest neighbour in the batch, spreading the batch uniformly over the sphere (a high-entropy, high-rank
  embedding). DINOv2 adds it to DINO's loss on the student's backbone features of each global crop, weight
  0.1. The nearest neighbour is an argmax of cosines (integer, no gradient); the gradient flows through
  the distance to it, which is computed from the difference of the two rows (no cancellation in 2 - 2 cos).
  Duplicate rows give distance 0, the finite loss -log(eps) and a zero (not infinite) gradient.

  Args:
    x: embeddings, shape [b, d] (per device when `axis_name` is set; n = the global number of rows >= 2).
    eps: added to each distance inside the log (DINOv2's 1e-8), and the floor of each row's norm.
    axis_name: mesh axis that shards the batch inside `shard_map`: each device searches the neighbours of
      its rows in the rows of all devices (`all_gather`), so the result equals one device holding the
      whole batch. None under plain `jit`.

  Returns:
    The loss, a scalar of dtype float32 (or wider), identical on every device.

  Raises:
    ValueError: if x is not rank 2, has no column, or (without `axis_name`) has fewer than 2 rows.

  References:
    Sablayrolles et al., "Spreading vectors for similarity search", ICLR 2019, arXiv:1806.03198;
    Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", 2023, arXiv:2304.07193
    (facebookresearch/dinov2 dinov2/loss/koleo_loss.py).
  """
  check_ndim("koleo", 2, x=x)
  b, d = x.shape
  if d < 1 or (axis_name is None and b < 2):
    raise shape_error("koleo", "`x` needs at least 2 rows (each row's nearest neighbour is another row) and 1 "
                      "column", x=x)
  _check_nonneg("koleo", "eps", eps)
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  x = x.astype(dtype)
  x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), jnp.asarray(eps, dtype) ** 2))
  everyone = all_gather(x, axis_name)  # [n, d]; the local rows are rows [i b, (i + 1) b)
  cos = jnp.matmul(jax.lax.stop_gradient(x), jax.lax.stop_gradient(everyone).T, precision=_HIGHEST)  # [b, n]
  own = axis_index(axis_name) * b + jnp.arange(b)
  cos = jnp.where(jnp.arange(everyone.shape[0])[None, :] == own[:, None], -jnp.inf, cos)
  neighbour = everyone[jnp.argmax(cos, axis=1)]
  sq = jnp.sum(jnp.square(x - neighbour), axis=-1)
  dist = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)  # sqrt with gradient 0, not inf, at 0
  n = _global_count(b, axis_name, dtype)
  return -psum(jnp.sum(jnp.log(dist + eps)), axis_name) / n
