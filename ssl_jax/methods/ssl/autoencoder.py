"""Auto-encoder (Hinton & Salakhutdinov 2006, Science 313:504): reconstruct the image from the encoder's features.

encoder f (the run's `model.encoder`) -> features h = f(x) -> `ConvDecoder` g -> x_hat = sigmoid(g(h)):

  loss = 1/B sum_i mean_k ( x_hat_ik - x_ik )^2          (pixels in [0, 1], mean over the H W C pixels)

The code is the encoder's pooled features (512 values for the small ConvNet: under-complete for 784- and
3072-pixel images), the same vector the linear probe and kNN read. Nothing else shapes it: with no
augmentation and no negatives the features keep whatever helps to redraw the pixels (position, brightness,
silhouette), which is why auto-encoders usually land near the raw-pixel probe rather than above it.

This file also holds the machinery of its two variants, which differ only in what reaches the encoder and
in an extra term (`AutoEncoder.noise` and `.contractive_weight`):
`denoising_autoencoder` (Vincent et al. 2008) corrupts the input and reconstructs the clean image;
`contractive_autoencoder` (Rifai et al. 2011) adds lambda ||J_f(x)||_F^2.

`predict(m, state, images)` gives the features; `predict(m, state, {"image": images})` also the
reconstructions (float32 in [0, 1]) that the `reconstruction` suite scores and draws.

Config section `autoencoder`: `decoder_widths` (`ConvDecoder.widths`, coarsest grid first).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import augment as augment_lib
from ssl_jax.data import streams
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.losses.reconstruction import contractive_penalty
from ssl_jax.methods import common
from ssl_jax.models.decoder import ConvDecoder

SUITES = ("representation", "reconstruction")
NOISES = ("none", "masking", "gaussian")


def config() -> ml_collections.ConfigDict:
  """The `autoencoder` section with its defaults."""
  return ml_collections.ConfigDict({
      "decoder_widths": (64, 32, 16),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class AutoEncoder:
  """Static parts of the auto-encoders (plain, denoising, contractive).

  Attributes:
    noise: "none", "masking" (each pixel set to 0 with probability `noise_level`, Vincent et al.'s masking
      noise) or "gaussian" (add N(0, noise_level^2) to the pixels in [0, 1], then clip).
    noise_level: the masking probability or the Gaussian standard deviation.
    contractive_weight: lambda of the contractive penalty; 0 for none.
    penalty_examples: how many examples of the batch (the first ones) the penalty is computed on (0: all):
      one Jacobian costs one backward pass per feature, so a few examples estimate the batch mean.
  """
  encoder: nn.Module
  decoder: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  noise: str = "none"
  noise_level: float = 0.0
  contractive_weight: float = 0.0
  penalty_examples: int = 0


def build(config, info, *, decoder_widths, **variant) -> AutoEncoder:
  """The static parts from the run's config; `variant` sets the noise or the penalty fields."""
  if variant.get("noise", "none") not in NOISES:
    raise ValueError(f"The auto-encoder noise must be one of {', '.join(NOISES)}; got {variant['noise']!r}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  return AutoEncoder(encoder=common.make_encoder(config, info),
                     decoder=ConvDecoder(tuple(info.image_shape), tuple(decoder_widths), dtype=dtype),
                     probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx,
                     schedule=schedule, image_shape=tuple(info.image_shape), mean=mean, std=std, **variant)


def make(config, info) -> AutoEncoder:
  return build(config, info, decoder_widths=config.autoencoder.decoder_widths)


def init(m: AutoEncoder, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_dec, k_probe, k_step = jax.random.split(rng, 4)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "decoder": m.decoder}, (k_enc, k_dec),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_step)


def corrupt(m: AutoEncoder, key: jax.Array, x01: jax.Array) -> jax.Array:
  """The encoder's input before normalisation: `x01` (pixels in [0, 1]) with the denoising noise."""
  if m.noise == "masking":
    return jnp.where(jax.random.bernoulli(key, m.noise_level, x01.shape), 0.0, x01)
  if m.noise == "gaussian":
    return jnp.clip(x01 + m.noise_level * jax.random.normal(key, x01.shape, x01.dtype), 0.0, 1.0)
  return x01


def penalty(m: AutoEncoder, params, batch_stats, x: jax.Array) -> jax.Array:
  """Rifai's ||J_f(x)||_F^2 per example of `x` (normalised inputs) for the encoder in inference mode.

  The Jacobian is that of the per-example map the probes evaluate: BatchNorm with its running statistics
  (in training mode an example's features would depend on the rest of the batch).
  """
  def encode(xi):
    out, _ = common.apply(m.encoder, params, batch_stats, xi[None], train=False)
    return out[0].astype(jnp.float32)

  # Reverse mode: one VJP per feature (the CPU `Conv`'s custom kernel gradient has no forward mode).
  return contractive_penalty(encode, x, mode="rev")


def step(m: AutoEncoder, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  x01 = augment_lib.to_float(batch["image"])
  x = augment_lib.normalize(corrupt(m, common.step_key(state), x01), m.mean, m.std)

  def loss_fn(params):
    feats, enc_stats = common.apply(m.encoder, params["encoder"], state.batch_stats["encoder"], x, train=True)
    logits, _ = common.apply(m.decoder, params["decoder"], {}, feats, train=True)
    recon = jax.nn.sigmoid(logits.astype(jnp.float32))
    loss = jnp.mean(jnp.square(recon - x01))
    metrics = {"train/recon_mse": loss}
    if m.contractive_weight:
      n = m.penalty_examples or x.shape[0]
      jac = jnp.mean(penalty(m, params["encoder"], jax.lax.stop_gradient(enc_stats), x[:n]))
      metrics["train/contractive_penalty"] = jac
      loss = loss + m.contractive_weight * jac
    probe_loss, probe_metrics = common.online_probe(m.probe, params.get("probe"), feats, batch["label"])
    return loss + probe_loss, ({"train/loss": loss, **metrics, **probe_metrics},
                               {"encoder": enc_stats, "decoder": {}})

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: AutoEncoder, state: common.TrainState, inputs) -> dict[str, jax.Array]:
  """Encoder features of uint8 images; given {"image": images}, also their reconstructions in [0, 1]."""
  images = inputs["image"] if isinstance(inputs, dict) else inputs
  feats = common.encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"], images,
                        mean=m.mean, std=m.std)
  if not isinstance(inputs, dict):
    return {"features": feats}
  logits, _ = common.apply(m.decoder, state.params["decoder"], {}, feats, train=False)
  return {"features": feats, "reconstructions": jax.nn.sigmoid(logits.astype(jnp.float32))}
