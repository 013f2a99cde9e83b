"""Denoising auto-encoder (Vincent et al. 2008, ICML, "Extracting and Composing Robust Features with Denoising
Autoencoders"): reconstruct the clean image from a corrupted one.

x~ ~ q(x~ | x) (masking noise: each pixel set to 0 with probability nu; or Gaussian noise), then

  loss = 1/B sum_i mean_k ( sigmoid(g(f(x~_i)))_k - x_ik )^2

An identity map no longer solves the task: to undo the corruption the code must capture the dependencies
between pixels (strokes, textures, the shape of a garment), not the pixels themselves. The corruption is drawn
on device from `fold_in(state.rng, state.step)`; the probes and the `reconstruction` suite read clean images.
Shares the encoder, `ConvDecoder` and step of `autoencoder` (this file sets its noise).

Config section `denoising_autoencoder`: `noise` ("masking", the paper's, or "gaussian"), `noise_level` (the
masking probability nu, or the Gaussian standard deviation on pixels in [0, 1]), `decoder_widths`.
"""

from __future__ import annotations

import ml_collections

from ssl_jax.methods.ssl import autoencoder
from ssl_jax.methods.ssl.autoencoder import init, predict, step, stream  # noqa: F401  (the protocol)

SUITES = autoencoder.SUITES


def config() -> ml_collections.ConfigDict:
  """The `denoising_autoencoder` section with its defaults."""
  return ml_collections.ConfigDict({
      "noise": "masking",
      "noise_level": 0.25,
      "decoder_widths": (64, 32, 16),
  })


def make(config, info) -> autoencoder.AutoEncoder:
  s = config.denoising_autoencoder
  if s.noise not in ("masking", "gaussian"):
    raise ValueError(f"denoising_autoencoder.noise must be 'masking' or 'gaussian'; got {s.noise!r}.")
  if not (0.0 < s.noise_level < 1.0 if s.noise == "masking" else s.noise_level > 0.0):
    raise ValueError(f"denoising_autoencoder.noise_level must be a probability in (0, 1) for masking noise and "
                     f"positive for Gaussian noise; got {s.noise_level} for {s.noise!r}.")
  return autoencoder.build(config, info, decoder_widths=s.decoder_widths, noise=s.noise,
                           noise_level=float(s.noise_level))
