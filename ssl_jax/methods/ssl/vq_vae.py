"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, arXiv:1711.00937): an auto-encoder with a discrete code
from a learned codebook; the tokenizer of BEiT (`beit`).

encoder E -> a grid of vectors z_e [b, g, g, D] (`ConvGridEncoder`; 7x7 for 28x28 images) -> each replaced by
its nearest codebook entry, k = argmin_j ||z_e - e_j||, z_q = e_k (codebook e [K, D]) -> `ConvDecoder` G on the
grid -> x_hat = sigmoid(G(z_q)). argmin has no gradient: the straight-through estimator copies the decoder's
gradient from z_q to z_e (z_q' = z_e + stopgrad(z_q - z_e): the value of z_q, the gradient of z_e). The
codebook learns from the codebook loss, and the encoder is held near its codes by the commitment loss:

  loss = mean_k (x_hat_k - x_k)^2  +  mean ||stopgrad(z_e) - z_q||^2  +  beta mean ||z_e - stopgrad(z_q)||^2

(the reconstruction on pixels in [0, 1], the two VQ terms averaged over the g x g codes and the D dimensions;
beta = 0.25 as the paper). `train/perplexity` = exp(entropy of the batch's code histogram) counts the codes in
use. The tokenizer (encoder and codebook) is the `encoder` part of the state: params["encoder"] =
{"net": ..., "codebook": [K, D]}, which a BEiT run loads with `init_from` (`tokens` gives the code indices).
The probes read z_e flattened (g g D values per image, before quantisation).

`predict(m, state, images)` gives the features; `predict(m, state, {"image": images})` also the reconstructions
from the quantised codes, which the `reconstruction` suite scores and draws.

Config section `vq_vae`: `codebook_size` (K), `embed_dim` (D), `beta`, `encoder_widths` (`ConvGridEncoder`:
len - 1 pools), `decoder_widths` (`ConvDecoder`: the same number of upsamplings).
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
from ssl_jax.methods import common
from ssl_jax.models.decoder import ConvDecoder, ConvGridEncoder

SUITES = ("representation", "reconstruction")


def config() -> ml_collections.ConfigDict:
  """The `vq_vae` section with its defaults."""
  return ml_collections.ConfigDict({
      "codebook_size": 512,
      "embed_dim": 32,
      "beta": 0.25,
      "encoder_widths": (32, 64, 64),
      "decoder_widths": (64, 32, 16),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


class Tokenizer(nn.Module):
  """Images to (z_e [b, g, g, D], the codebook [K, D]): the part of a VQ-VAE that BEiT loads."""
  widths: tuple[int, ...]
  codebook_size: int
  embed_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False):
    z_e = ConvGridEncoder(self.widths, self.embed_dim, dtype=self.dtype, name="net")(x, train=train)
    codebook = self.param("codebook", nn.initializers.variance_scaling(1.0, "fan_in", "uniform"),
                          (self.codebook_size, self.embed_dim), jnp.float32)
    return z_e.astype(jnp.float32), codebook


def quantize(z_e: jax.Array, codebook: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(indices [...] of the nearest codebook rows, the quantised vectors z_q [..., D]) of z_e [..., D]."""
  d2 = (jnp.sum(z_e ** 2, -1, keepdims=True) - 2 * z_e @ codebook.T + jnp.sum(codebook ** 2, -1))
  idx = jnp.argmin(d2, axis=-1)
  return idx, codebook[idx]


def vq_losses(z_e: jax.Array, z_q: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(straight-through codes z_e + sg(z_q - z_e), codebook loss ||sg(z_e) - z_q||^2, commitment loss
  ||z_e - sg(z_q)||^2), the losses averaged over every element."""
  sg = jax.lax.stop_gradient
  return (z_e + sg(z_q - z_e), jnp.mean(jnp.square(sg(z_e) - z_q)), jnp.mean(jnp.square(z_e - sg(z_q))))


@dataclasses.dataclass(frozen=True)
class VQVAE:
  tokenizer: Tokenizer
  decoder: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  beta: float


def make_tokenizer(section, image_shape, dtype) -> Tokenizer:
  """The `Tokenizer` of a `vq_vae` config section, checked against the images."""
  h, w, _ = image_shape
  f = 2 ** (len(section.encoder_widths) - 1)
  if h % f or w % f or len(section.decoder_widths) != len(section.encoder_widths):
    raise ValueError(f"vq_vae.encoder_widths ({len(section.encoder_widths)} widths: {f}x downsampling) must divide "
                     f"the {h}x{w} images, and decoder_widths must have as many widths to upsample back.")
  if section.codebook_size < 2 or section.embed_dim < 1:
    raise ValueError(f"vq_vae needs codebook_size >= 2 and embed_dim >= 1; got {section.codebook_size} and "
                     f"{section.embed_dim}.")
  return Tokenizer(tuple(section.encoder_widths), int(section.codebook_size), int(section.embed_dim), dtype=dtype)


def make(config, info) -> VQVAE:
  s = config.vq_vae
  if s.beta < 0:
    raise ValueError(f"vq_vae.beta (the commitment weight) must be >= 0, got {s.beta}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  return VQVAE(tokenizer=make_tokenizer(s, info.image_shape, dtype),
               decoder=ConvDecoder(tuple(info.image_shape), tuple(s.decoder_widths), dtype=dtype),
               probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx, schedule=schedule,
               image_shape=tuple(info.image_shape), mean=mean, std=std, beta=float(s.beta))


def init(m: VQVAE, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_dec, k_probe, k_step = jax.random.split(rng, 4)
  x = jnp.zeros((2, *m.image_shape), jnp.float32)
  params = {"encoder": m.tokenizer.init(k_enc, x)["params"]}
  z_e, _ = m.tokenizer.apply({"params": params["encoder"]}, x)
  params["decoder"] = m.decoder.init(k_dec, z_e)["params"]
  batch_stats = {"encoder": {}, "decoder": {}}
  if m.probe is not None:
    params["probe"] = m.probe.init(k_probe, z_e.reshape(2, -1))["params"]
  params, batch_stats = common.load_pretrained(params, batch_stats, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_step)


def tokens(tokenizer: Tokenizer, params, x: jax.Array) -> jax.Array:
  """The code indices [b, g * g] (raster order) of normalised images x under a tokenizer's parameters."""
  z_e, codebook = tokenizer.apply({"params": params}, x)
  idx, _ = quantize(z_e, codebook)
  return idx.reshape(idx.shape[0], -1)


def step(m: VQVAE, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  x01 = augment_lib.to_float(batch["image"])
  x = augment_lib.normalize(x01, m.mean, m.std)

  def loss_fn(params):
    z_e, codebook = m.tokenizer.apply({"params": params["encoder"]}, x)
    idx, z_q = quantize(z_e, codebook)
    z_st, codebook_loss, commitment_loss = vq_losses(z_e, z_q)
    logits = m.decoder.apply({"params": params["decoder"]}, z_st)
    recon = jnp.mean(jnp.square(jax.nn.sigmoid(logits.astype(jnp.float32)) - x01))
    loss = recon + codebook_loss + m.beta * commitment_loss
    counts = jnp.bincount(idx.reshape(-1), length=codebook.shape[0])
    p = counts / idx.size
    perplexity = jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), z_e.reshape(x.shape[0], -1),
                                              batch["label"])
    metrics = {"train/loss": loss, "train/recon_mse": recon, "train/codebook_loss": codebook_loss,
               "train/commitment_loss": commitment_loss, "train/perplexity": perplexity, **metrics}
    return loss + probe_loss, (metrics, state.batch_stats)

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: VQVAE, state: common.TrainState, inputs) -> dict[str, jax.Array]:
  """z_e flattened, of uint8 images; given {"image": images}, also the reconstructions from z_q in [0, 1]."""
  images = inputs["image"] if isinstance(inputs, dict) else inputs
  x = augment_lib.normalize(images, m.mean, m.std)
  z_e, codebook = m.tokenizer.apply({"params": state.params["encoder"]}, x)
  feats = z_e.reshape(z_e.shape[0], -1)
  if not isinstance(inputs, dict):
    return {"features": feats}
  _, z_q = quantize(z_e, codebook)
  logits = m.decoder.apply({"params": state.params["decoder"]}, z_q)
  return {"features": feats, "reconstructions": jax.nn.sigmoid(logits.astype(jnp.float32))}
