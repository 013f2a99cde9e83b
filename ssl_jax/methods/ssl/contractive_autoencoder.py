"""Contractive auto-encoder (Rifai et al. 2011, ICML, "Contractive Auto-Encoders: Explicit Invariance During
Feature Extraction"): an auto-encoder whose code is penalised for moving with the input.

  loss = 1/B sum_i mean_k ( sigmoid(g(f(x_i)))_k - x_ik )^2  +  lambda * 1/n sum_{i<n} ||J_f(x_i)||_F^2,
  ||J_f(x)||_F^2 = sum_{j, k} ( d f_j(x) / d x_k )^2

The reconstruction term keeps the code informative; the Frobenius norm of the encoder's Jacobian makes it
locally invariant, so it can only vary along the directions the data actually vary in (the data manifold).
The penalty comes from `ssl_jax.losses.reconstruction.contractive_penalty` on the normalised input, for the
encoder in inference mode (BatchNorm with its running statistics: the per-example map the probes read; in
training mode an example's code depends on its batch). A deep encoder's Jacobian costs one backward pass per
feature, so `penalty_examples` (the first n of the batch) estimate its batch mean. Shares the encoder,
`ConvDecoder` and step of `autoencoder` (this file sets lambda).

Config section `contractive_autoencoder`: `weight` (lambda), `penalty_examples` (n; 0: the whole batch),
`decoder_widths`.
"""

from __future__ import annotations

import ml_collections

from ssl_jax.methods.ssl import autoencoder
from ssl_jax.methods.ssl.autoencoder import init, predict, step, stream  # noqa: F401  (the protocol)

SUITES = autoencoder.SUITES


def config() -> ml_collections.ConfigDict:
  """The `contractive_autoencoder` section with its defaults."""
  return ml_collections.ConfigDict({
      "weight": 0.1,
      "penalty_examples": 8,
      "decoder_widths": (64, 32, 16),
  })


def make(config, info) -> autoencoder.AutoEncoder:
  s = config.contractive_autoencoder
  if s.weight <= 0:
    raise ValueError(f"contractive_autoencoder.weight (lambda) must be positive, got {s.weight}; use the "
                     "autoencoder method for none.")
  if not 0 <= s.penalty_examples <= config.batch_size:
    raise ValueError(f"contractive_autoencoder.penalty_examples must be between 0 (the whole batch) and "
                     f"batch_size={config.batch_size}; got {s.penalty_examples}.")
  return autoencoder.build(config, info, decoder_widths=s.decoder_widths, contractive_weight=float(s.weight),
                           penalty_examples=int(s.penalty_examples))
