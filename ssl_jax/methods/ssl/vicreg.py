"""VICReg (Bardes et al. 2022, arXiv:2105.04906): variance, invariance and covariance regularisation.

encoder -> expander (Linear-BN-ReLU, Linear-BN-ReLU, Linear) -> z1, z2 for the two views of each image:

  loss = sim_coeff * (1/(N d)) ||z1 - z2||^2                                  (invariance)
       + std_coeff * 1/2 sum_v mean_i relu(1 - sqrt(Var_n(z_v)_i + eps))      (variance)
       + cov_coeff * sum_v (1/d) sum_{i != j} Cov_n(z_v)_ij^2                 (covariance)

(`losses.vicreg`, the official code's estimators: unbiased, over the global batch of N images). The
variance hinge keeps every dimension alive, the covariance term decorrelates them; no negatives, no
predictor, no target network, no normalisation of z. The statistics are those of the whole global batch,
computed on the global arrays inside the jitted step (the same on any mesh). The three terms are logged
unweighted as `train/invariance`, `train/variance`, `train/covariance`.

Config section `vicreg`: `sim_coeff`, `std_coeff`, `cov_coeff`, `proj_hidden_dim`, `proj_dim`,
`proj_layers` (hidden layers of the expander), `views`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.losses.redundancy import vicreg_terms
from ssl_jax.methods import common
from ssl_jax.models import heads

SUITES = ("representation",)

# solo-learn's CIFAR views for VICReg: crops of 20-100 %, colour jitter, solarize on 10 %, no blur.
VIEWS = views_lib.SimCLRViews(crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
                              blur_p=(0.0, 0.0), solarize_p=(0.1, 0.1))


def config() -> ml_collections.ConfigDict:
  """The `vicreg` section with the paper's coefficients and solo-learn's CIFAR sizes."""
  return ml_collections.ConfigDict({
      "sim_coeff": 25.0,
      "std_coeff": 25.0,
      "cov_coeff": 1.0,
      "proj_hidden_dim": 2048,
      "proj_dim": 2048,
      "proj_layers": 2,
      "views": views_lib.to_config(VIEWS),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class VICReg:
  encoder: nn.Module
  projector: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  coeffs: tuple[float, float, float]


def make(config, info) -> VICReg:
  s = config.vicreg
  coeffs = (float(s.sim_coeff), float(s.std_coeff), float(s.cov_coeff))
  if min(coeffs) < 0:
    raise ValueError(f"vicreg's sim_coeff, std_coeff and cov_coeff must be non-negative; got {coeffs}.")
  if s.proj_layers < 0 or min(s.proj_hidden_dim, s.proj_dim) < 1:
    raise ValueError(f"vicreg needs proj_layers >= 0 and positive widths; got {s.proj_layers}, "
                     f"{s.proj_hidden_dim} and {s.proj_dim}.")
  if config.batch_size < 2:
    raise ValueError(f"vicreg's variance and covariance are over the batch: batch_size must be at least 2, "
                     f"got {config.batch_size}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return VICReg(
      encoder=common.make_encoder(config, info),
      projector=heads.MLPHead((s.proj_hidden_dim,) * s.proj_layers, s.proj_dim, dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, views=views_lib.from_config(views_lib.SimCLRViews, s.views, config.data.name),
      image_shape=tuple(info.image_shape), coeffs=coeffs)


def init(m: VICReg, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_proj, k_probe, k_aug = jax.random.split(rng, 4)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "projector": m.projector}, (k_enc, k_proj),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def step(m: VICReg, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on a global batch {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  def pair_loss(z1, z2, labels):
    del labels
    terms = vicreg_terms(z1, z2)
    sim, std, cov = m.coeffs
    loss = sim * terms["invariance"] + std * terms["variance"] + cov * terms["covariance"]
    return loss, {f"train/{k}": jax.lax.stop_gradient(v) for k, v in terms.items()}

  return common.two_view_step(m, state, batch, pair_loss)


def predict(m: VICReg, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Encoder features (before the expander) of uint8 images."""
  return common.encoder_features(m, state, images)
