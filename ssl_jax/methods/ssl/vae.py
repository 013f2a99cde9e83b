"""Variational auto-encoder (Kingma & Welling 2014, arXiv:1312.6114): maximise the evidence lower bound.

encoder f -> features h -> a linear posterior head -> (mu, log sigma^2) of q(z | x) = N(mu, diag sigma^2);
z = mu + sigma * eps, eps ~ N(0, I) (the reparameterisation: the sample is differentiable in mu and sigma);
`ConvDecoder` g -> the likelihood p(x | z) (Bernoulli logits, or Gaussian means with a fixed sigma):

  loss = 1/B sum_i -ELBO(x_i) = 1/B sum_i [ -log p(x_i | z_i) + beta KL( q(z | x_i) || N(0, I) ) ]

in nats per image, from `ssl_jax.losses.reconstruction.vae_elbo` (the KL in closed form, `gaussian_kl`; the
sample from `reparameterize`, drawn on device from `fold_in(state.rng, state.step)`). The KL pulls every
posterior towards the prior, so the latent space is smooth and `g(z)`, z ~ N(0, I), draws new images. The
probes read the encoder's features h (before the posterior head), as for the other methods.

`predict(m, state, images)` gives the features; `predict(m, state, {"image": images})` also the
reconstructions (the decoder's mean at z = mu) and one sample from the prior per row (a fixed key, so the
same latent draws at every evaluation), which the `reconstruction` suite scores and draws (`samples.png`).

Config section `vae`: `latent_dim`, `beta` (1: the VAE; other values: the beta-VAE of Higgins et al. 2017),
`likelihood` ("bernoulli" for pixels in [0, 1] as MNIST-like data, or "gaussian"), `sigma` (the Gaussian
likelihood's fixed standard deviation), `decoder_widths`.
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
from ssl_jax.losses.reconstruction import gaussian_kl, reparameterize, vae_elbo
from ssl_jax.methods import common
from ssl_jax.models import heads
from ssl_jax.models.decoder import ConvDecoder

SUITES = ("representation", "reconstruction")
SAMPLE_SEED = 0


def config() -> ml_collections.ConfigDict:
  """The `vae` section with its defaults."""
  return ml_collections.ConfigDict({
      "latent_dim": 32,
      "beta": 1.0,
      "likelihood": "bernoulli",
      "sigma": 0.1,
      "decoder_widths": (64, 32, 16),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class VAE:
  encoder: nn.Module
  posterior: nn.Module   # features -> [mu, logvar] concatenated, [b, 2 latent_dim]
  decoder: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  latent_dim: int
  beta: float
  likelihood: str
  sigma: float


def make(config, info) -> VAE:
  s = config.vae
  if s.latent_dim < 1 or s.beta < 0 or s.sigma <= 0:
    raise ValueError(f"vae needs latent_dim >= 1, beta >= 0 and sigma > 0; got {s.latent_dim}, {s.beta} and "
                     f"{s.sigma}.")
  if s.likelihood not in ("bernoulli", "gaussian"):
    raise ValueError(f"vae.likelihood must be 'bernoulli' or 'gaussian'; got {s.likelihood!r}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  return VAE(encoder=common.make_encoder(config, info),
             posterior=heads.MLPHead((), 2 * s.latent_dim, use_bn=False, dtype=dtype),
             decoder=ConvDecoder(tuple(info.image_shape), tuple(s.decoder_widths), dtype=dtype),
             probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx,
             schedule=schedule, image_shape=tuple(info.image_shape), mean=mean, std=std,
             latent_dim=int(s.latent_dim), beta=float(s.beta), likelihood=s.likelihood, sigma=float(s.sigma))


def init(m: VAE, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_post, k_dec, k_probe, k_step = jax.random.split(rng, 5)
  params, batch_stats, feats = common.init_chain({"encoder": m.encoder, "posterior": m.posterior},
                                                 (k_enc, k_post), jnp.zeros((2, *m.image_shape), jnp.float32))
  params["decoder"], batch_stats["decoder"] = common.init_module(m.decoder, k_dec,
                                                                 jnp.zeros((2, m.latent_dim), jnp.float32))
  if m.probe is not None:
    params["probe"] = m.probe.init(k_probe, feats)["params"]
  params, batch_stats = common.load_pretrained(params, batch_stats, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_step)


def posterior(m: VAE, params, batch_stats, x: jax.Array, *, train: bool):
  """(features, mu, logvar, encoder batch_stats) of normalised images `x`; mu and logvar in float32."""
  feats, stats = common.apply(m.encoder, params["encoder"], batch_stats["encoder"], x, train=train)
  out, _ = common.apply(m.posterior, params["posterior"], {}, feats, train=train)
  mu, logvar = jnp.split(out.astype(jnp.float32), 2, axis=-1)
  return feats, mu, logvar, stats


def decode_mean(m: VAE, logits: jax.Array) -> jax.Array:
  """The likelihood's mean as pixels in [0, 1]: sigmoid of the Bernoulli logits, clipped Gaussian means."""
  logits = logits.astype(jnp.float32)
  return jax.nn.sigmoid(logits) if m.likelihood == "bernoulli" else jnp.clip(logits, 0.0, 1.0)


def step(m: VAE, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  x01 = augment_lib.to_float(batch["image"])
  x = augment_lib.normalize(x01, m.mean, m.std)
  key = common.step_key(state)

  def loss_fn(params):
    feats, mu, logvar, enc_stats = posterior(m, params, state.batch_stats, x, train=True)
    z = reparameterize(key, mu, logvar)
    logits, _ = common.apply(m.decoder, params["decoder"], {}, z, train=True)
    neg_elbo = vae_elbo(logits, x01, mu, logvar, likelihood=m.likelihood, beta=m.beta, sigma=m.sigma)
    kl = gaussian_kl(mu, logvar)
    loss = jnp.mean(neg_elbo)
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats, batch["label"])
    metrics = {"train/loss": loss, "train/kl": jnp.mean(kl), "train/recon_nll": jnp.mean(neg_elbo - m.beta * kl),
               **metrics}
    return loss + probe_loss, (metrics, {"encoder": enc_stats, "posterior": {}, "decoder": {}})

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: VAE, state: common.TrainState, inputs) -> dict[str, jax.Array]:
  """Encoder features of uint8 images; given {"image": images}, also the reconstructions at z = mu and one
  sample from the prior per row, as pixels in [0, 1]."""
  images = inputs["image"] if isinstance(inputs, dict) else inputs
  x = augment_lib.normalize(images, m.mean, m.std)
  feats, mu, _, _ = posterior(m, state.params, state.batch_stats, x, train=False)
  feats = feats.astype(jnp.float32)
  if not isinstance(inputs, dict):
    return {"features": feats}
  decode = lambda z: decode_mean(m, common.apply(m.decoder, state.params["decoder"], {}, z, train=False)[0])
  z = jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED), mu.shape, jnp.float32)
  return {"features": feats, "reconstructions": decode(mu), "samples": decode(z)}
