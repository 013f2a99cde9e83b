"""Reconstruction objectives: the VAE evidence lower bound, the contractive penalty, masked autoencoding.

All losses are per example (shape [b]); the caller takes the mean. They are computed in float32 at
least, whatever the input dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from ssl_jax.losses._utils import check_ndim, shape_error


def _f32(x: jax.Array) -> jax.Array:
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _sum_per_example(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL divergence of a diagonal Gaussian posterior from the standard normal prior, per example.

    KL( N(mu, diag(exp(logvar))) || N(0, I) ) = 1/2 sum_j ( mu_j^2 + exp(lv_j) - 1 - lv_j )

  `exp(lv) - 1 - lv` is evaluated as `expm1(lv) - lv`, exact near lv = 0 (the optimum).

  Args:
    mean: posterior means, [b, ...latent].
    logvar: posterior log-variances, same shape as `mean`.
  Returns:
    KL of shape [b], summed over all latent dimensions.
  References: Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv:1312.6114, appendix B.
  """
  if jnp.ndim(mean) < 1 or jnp.shape(mean) != jnp.shape(logvar):
    raise shape_error("gaussian_kl", "`mean` and `logvar` must have the same shape [b, ...latent]",
                      mean=mean, logvar=logvar)
  mu, lv = _f32(mean), _f32(logvar)
  return 0.5 * _sum_per_example(mu * mu + jnp.expm1(lv) - lv)


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """Sample z = mean + exp(logvar / 2) * eps, eps ~ N(0, I): differentiable in mean and logvar.

  Args:
    key: a JAX PRNG key.
    mean: posterior means, [b, ...latent].
    logvar: posterior log-variances, same shape as `mean`.
  Returns:
    One sample per example, same shape and dtype as `mean`.
  References: Kingma & Welling 2014, arXiv:1312.6114, section 2.4.
  """
  if jnp.shape(mean) != jnp.shape(logvar):
    raise shape_error("reparameterize", "`mean` and `logvar` must have the same shape",
                      mean=mean, logvar=logvar)
  mean = jnp.asarray(mean)
  eps = jax.random.normal(key, mean.shape, mean.dtype)
  return mean + jnp.exp(0.5 * jnp.asarray(logvar)) * eps


def vae_elbo(recon: jax.Array, x: jax.Array, mean: jax.Array, logvar: jax.Array, *,
             likelihood: str = "bernoulli", beta: float = 1.0, sigma: float = 1.0) -> jax.Array:
  """Negative evidence lower bound of a VAE (beta-VAE when beta != 1), per example.

    -ELBO(x) = -log p(x | z) + beta * KL( q(z | x) || N(0, I) )

  with -log p(x | z) summed over all data dimensions and one sample z behind `recon`:
    bernoulli: sum_k [ -x_k log sigmoid(l_k) - (1 - x_k) log sigmoid(-l_k) ]   (l = recon logits;
               stable for any logit; x may be in [0, 1], not only binary)
    gaussian:  sum_k [ (x_k - m_k)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2 ]   (m = recon mean,
               the full log-likelihood with its constant, so the value is a true bound in nats)

  Args:
    recon: decoder output for a sample z ~ q(z | x): logits (bernoulli) or means (gaussian),
      same shape as `x`.
    x: data, [b, ...].
    mean: posterior means, [b, ...latent].
    logvar: posterior log-variances, same shape as `mean`.
    likelihood: "bernoulli" or "gaussian".
    beta: weight of the KL term.
    sigma: fixed standard deviation of the Gaussian likelihood, > 0.
  Returns:
    Negative ELBO of shape [b] in nats; the caller takes the mean.
  References: Kingma & Welling 2014, arXiv:1312.6114; Higgins et al. 2017, "beta-VAE" (ICLR).
  """
  if jnp.ndim(x) < 1 or jnp.shape(recon) != jnp.shape(x):
    raise shape_error("vae_elbo", "`recon` must have the same shape as `x`, [b, ...]", recon=recon, x=x)
  if jnp.ndim(mean) < 1 or jnp.shape(mean)[:1] != jnp.shape(x)[:1]:
    raise shape_error("vae_elbo", "`mean` must have shape [b, ...latent] with the batch size of `x`",
                      x=x, mean=mean)
  if likelihood == "bernoulli":
    nll = optax.sigmoid_binary_cross_entropy(_f32(recon), _f32(x))
  elif likelihood == "gaussian":
    if isinstance(sigma, (int, float)) and not sigma > 0:
      raise ValueError(f"vae_elbo: `sigma` must be > 0; got sigma={sigma}.")
    z = (_f32(x) - _f32(recon)) / sigma
    nll = 0.5 * z * z + jnp.log(sigma) + 0.5 * math.log(2 * math.pi)
  else:
    raise ValueError(f"vae_elbo: `likelihood` must be 'bernoulli' or 'gaussian'; got {likelihood!r}.")
  return _sum_per_example(nll) + beta * gaussian_kl(mean, logvar)


def contractive_penalty(encode: Callable[[jax.Array], jax.Array], x: jax.Array, *,
                        mode: str = "auto") -> jax.Array:
  """Squared Frobenius norm of the encoder Jacobian at each example (contractive auto-encoder).

    ||J_f(x_b)||_F^2 = sum_{j, i} ( d h_j / d x_i )^2,   h = encode(x_b)

  The Jacobian of one example is built with `jax.jacrev` (one VJP per hidden unit) or `jax.jacfwd`
  (one JVP per input dimension) and vmapped over the batch. "auto" picks the mode with fewer passes:
  reverse mode when the code is smaller than the input (an under-complete encoder), forward mode
  otherwise (Rifai et al. use over-complete codes, where forward mode is cheaper).
  Differentiate through it for the CAE loss: to train the encoder, close over its parameters inside
  the loss function, e.g. `contractive_penalty(lambda xi: enc.apply(params, xi), x)`.

  Args:
    encode: maps ONE example, shape x.shape[1:], to its code (any shape, typically [h]).
    x: inputs, [b, ...].
    mode: "auto", "rev" or "fwd".
  Returns:
    Penalties of shape [b]; the CAE objective is reconstruction + lambda * penalty.
  References: Rifai et al. 2011, "Contractive Auto-Encoders: Explicit Invariance During Feature
    Extraction" (ICML).
  """
  if jnp.ndim(x) < 1:
    raise shape_error("contractive_penalty", "`x` must have a leading batch dimension, [b, ...]", x=x)
  if mode not in ("auto", "rev", "fwd"):
    raise ValueError(f"contractive_penalty: `mode` must be 'auto', 'rev' or 'fwd'; got {mode!r}.")
  x = _f32(x)
  if mode == "auto":
    out = jax.eval_shape(encode, jax.ShapeDtypeStruct(x.shape[1:], x.dtype))
    mode = "rev" if math.prod(out.shape) < math.prod(x.shape[1:]) else "fwd"
  jac = jax.jacrev(encode) if mode == "rev" else jax.jacfwd(encode)

  def one(xi):
    j = _f32(jac(xi))
    return jnp.sum(j * j)

  return jax.vmap(one)(x)


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """Cut images into non-overlapping square patches, flattened in (row, column, channel) order.

  The layout is that of the MAE code: patch k = (k // (w/p), k % (w/p)) in raster order, and within
  a patch index (u * p + v) * c + ch for pixel (u, v), channel ch.

  Args:
    images: [b, h, w, c] with h and w divisible by `patch_size`.
    patch_size: p.
  Returns:
    Patches of shape [b, (h/p) * (w/p), p * p * c].
  References: He et al. 2021, arXiv:2111.06377 (models_mae.py, `patchify`).
  """
  check_ndim("patchify", 4, images=images)
  b, h, w, c = images.shape
  p = int(patch_size)
  if p < 1 or h % p or w % p:
    raise ValueError(f"patchify: image height and width must be divisible by `patch_size`; got "
                     f"images{tuple(images.shape)} and patch_size={patch_size}.")
  x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: jax.Array, patch_size: int, *,
               image_size: tuple[int, int] | None = None) -> jax.Array:
  """Inverse of `patchify`.

  Args:
    patches: [b, n, p * p * c].
    patch_size: p.
    image_size: (h, w); None means square images, h = w = p * sqrt(n).
  Returns:
    Images of shape [b, h, w, c].
  """
  check_ndim("unpatchify", 3, patches=patches)
  b, n, d = patches.shape
  p = int(patch_size)
  if image_size is None:
    g = math.isqrt(n)
    image_size = (g * p, g * p)
  h, w = image_size
  if p < 1 or h % p or w % p or (h // p) * (w // p) != n or d % (p * p):
    raise ValueError(f"unpatchify: patches{tuple(patches.shape)} do not tile an image of size "
                     f"{tuple(image_size)} with patch_size={patch_size}; pass the right `image_size`.")
  c = d // (p * p)
  x = patches.reshape(b, h // p, w // p, p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h, w, c)


def random_masking(key: jax.Array, b: int, num_patches: int, *,
                   mask_ratio: float = 0.75) -> tuple[jax.Array, jax.Array]:
  """MAE's per-example random masking: keep int(num_patches * (1 - mask_ratio)) random patches.

  As in the MAE code, patches are ranked by uniform noise; the first `len_keep` of the ranking are
  kept (visible). `ids_keep = jnp.argsort(ids_restore, axis=1)[:, :len_keep]` are the indices of the
  visible patches (to gather the encoder input); `ids_restore` unshuffles the decoder tokens.

  Args:
    key: a JAX PRNG key.
    b: number of examples.
    num_patches: patches per example.
    mask_ratio: fraction of patches to mask, in [0, 1).
  Returns:
    (mask, ids_restore): mask float32 [b, num_patches], 1 = masked (loss computed) and 0 = visible,
    exactly num_patches - len_keep ones per row; ids_restore int32 [b, num_patches].
  References: He et al. 2021, arXiv:2111.06377 (models_mae.py, `random_masking`).
  """
  if not 0 <= mask_ratio < 1:
    raise ValueError(f"random_masking: `mask_ratio` must be in [0, 1); got mask_ratio={mask_ratio}.")
  len_keep = int(num_patches * (1 - mask_ratio))
  noise = jax.random.uniform(key, (b, num_patches))
  ids_shuffle = jnp.argsort(noise, axis=1)
  ids_restore = jnp.argsort(ids_shuffle, axis=1).astype(jnp.int32)
  mask = (ids_restore >= len_keep).astype(jnp.float32)
  return mask, ids_restore


def masked_reconstruction(pred: jax.Array, target: jax.Array, mask: jax.Array, *,
                          normalize_target: bool = True, eps: float = 1e-6) -> jax.Array:
  """Masked-autoencoder loss: mean squared error on the masked patches, per example.

    t = (target - mean_k target) / sqrt(var_k target + eps)     if normalize_target
        (statistics over the patch_dim pixels of each patch, var unbiased as torch's `var`)
    l_{b, n} = mean_k (pred_{b, n, k} - t_{b, n, k})^2
    L_b = sum_n mask_{b, n} l_{b, n} / sum_n mask_{b, n}

  Per example (the MAE code averages over all masked patches of the batch, which is the same when
  every example masks the same number of patches, as `random_masking` does). Patches with mask 0
  are excluded with `jnp.where`, so their predictions may hold anything; an example with no masked
  patch gets loss 0. Fractional mask values act as weights.

  Args:
    pred: decoder predictions, [b, num_patches, patch_dim].
    target: patchified images (see `patchify`), same shape.
    mask: [b, num_patches], 1 = masked (loss computed), 0 = visible.
    normalize_target: the "norm_pix_loss" target of MAE (per-patch normalised pixels).
    eps: added to the variance.
  Returns:
    Losses of shape [b]; the caller takes the mean.
  References: He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners", arXiv:2111.06377
    (models_mae.py, `forward_loss`).
  """
  check_ndim("masked_reconstruction", 3, pred=pred, target=target)
  if jnp.shape(pred) != jnp.shape(target) or jnp.shape(mask) != jnp.shape(pred)[:2]:
    raise shape_error("masked_reconstruction", "`pred` and `target` must have the same shape "
                      "[b, num_patches, patch_dim] and `mask` shape [b, num_patches]",
                      pred=pred, target=target, mask=mask)
  if normalize_target and pred.shape[-1] < 2:
    raise shape_error("masked_reconstruction", "`normalize_target=True` needs patch_dim >= 2 (the "
                      "unbiased per-patch variance); pass normalize_target=False", target=target)
  t = _f32(target)
  if normalize_target:
    mu = jnp.mean(t, axis=-1, keepdims=True)
    var = jnp.var(t, axis=-1, keepdims=True, ddof=1)
    t = (t - mu) / jnp.sqrt(var + eps)
  m = _f32(mask)
  keep = m != 0
  err = jnp.mean(jnp.square(jnp.where(keep[..., None], _f32(pred), 0) - t), axis=-1)
  num = jnp.sum(jnp.where(keep, err * m, 0), axis=1)
  den = jnp.sum(m, axis=1)
  return num / jnp.where(den != 0, den, 1)
