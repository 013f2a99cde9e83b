"""An image classifier (encoder + linear head) with an EMA copy: the network of the semi-supervised
methods, of the labelled-only baseline, of fine-tuning and of domain adaptation.

    net = classifier.make(config, info)                   # encoder from config.model, head for the classes
    params, stats = classifier.init(net, key, pretrained)  # {"encoder", "classifier"}
    logits, stats = classifier.logits(net, params, stats, x, train=True)
    predictions = classifier.predict(net, state, images)   # {"logits", "ema_logits"}
    weight = classifier.rampup(state.step, 0.4 * total_steps, "linear")  # of an unlabelled loss

The EMA model (`state.extra["ema"]`, parameters averaged with `common.ema`, BatchNorm statistics copied
from the online model as FixMatch's `ModelEMA` does) is what FixMatch and USB evaluate; the `accuracy`
suite reports both as `test_top1` and `ema_test_top1`.
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
from ssl_jax.methods import common
from ssl_jax.models import heads


@dataclasses.dataclass(frozen=True)
class Classifier:
  encoder: nn.Module
  head: nn.Module
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]


def make(config, info) -> Classifier:
  mean, std = common.normalizer(config)
  return Classifier(encoder=common.make_encoder(config, info), head=heads.LinearHead(info.num_classes),
                    image_shape=tuple(info.image_shape), mean=mean, std=std)


def init(net: Classifier, key: jax.Array, pretrained=None) -> tuple[dict, dict]:
  """Fresh (params, batch_stats) {"encoder", "classifier"}, with `pretrained` parts loaded over them."""
  k_enc, k_head = jax.random.split(key)
  x = jnp.zeros((2, *net.image_shape), jnp.float32)
  enc_params, enc_stats = common.init_module(net.encoder, k_enc, x)
  feats, _ = common.apply(net.encoder, enc_params, enc_stats, x, train=False)
  head_params, _ = common.init_module(net.head, k_head, feats)
  return common.load_pretrained({"encoder": enc_params, "classifier": head_params},
                                {"encoder": enc_stats}, pretrained)


def init_state(net: Classifier, tx, rng: jax.Array, pretrained=None) -> common.TrainState:
  """A fresh train state of the classifier, with an EMA model (`extra["ema"]`) equal to it."""
  k_net, k_aug = jax.random.split(rng)
  params, batch_stats = init(net, k_net, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=tx.init(params), rng=k_aug,
                           extra={"ema": {"params": params, "batch_stats": batch_stats}})


def logits(net: Classifier, params, batch_stats, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
  """Float32 logits of normalised images x, and the BatchNorm statistics (updated when training)."""
  feats, enc_stats = common.apply(net.encoder, params["encoder"], batch_stats["encoder"], x, train=train)
  out = net.head.apply({"params": params["classifier"]}, feats)
  return out.astype(jnp.float32), {"encoder": enc_stats}


def update_ema(state: common.TrainState, decay) -> dict:
  """The EMA model after an update: averaged parameters, BatchNorm statistics copied from the online model."""
  return {"params": common.ema(state.extra["ema"]["params"], state.params, decay),
          "batch_stats": state.batch_stats}


RAMPUPS = ("linear", "sigmoid")


def rampup(step, length, shape: str = "linear") -> jax.Array:
  """The weight in [0, 1] of an unlabelled loss at `step`, a pure function of the step.

    t = clip(step / length, 0, 1);  linear: w = t (USB's `unsup_warm_up`);
    sigmoid: w = exp(-5 (1 - t)^2) (Laine & Aila 2017, Tarvainen & Valpola 2017).
  `length` <= 0 gives w = 1 from the first step.
  """
  if shape not in RAMPUPS:
    raise ValueError(f"Unknown ramp-up shape {shape!r}; use one of {', '.join(RAMPUPS)}.")
  if length <= 0:
    return jnp.ones((), jnp.float32)
  t = jnp.clip(jnp.asarray(step, jnp.float32) / float(length), 0.0, 1.0)
  return t if shape == "linear" else jnp.exp(-5.0 * jnp.square(1.0 - t))


def check_fraction(section: str, field: str, value: float, *, upper_open: bool = False) -> None:
  """Raise a ValueError unless 0 <= value <= 1 (< 1 with `upper_open`), naming `section.field`."""
  if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
    raise ValueError(f"{section}.{field} must lie in [0, 1{')' if upper_open else ']'}, got {value}.")


def check_mu(section: str, mu: int) -> None:
  if mu < 1:
    raise ValueError(f"{section}.mu must be at least 1 (unlabelled batch = mu x batch_size), got {mu}.")


def semi_stream(s, **kwargs) -> streams.LabelledUnlabelled:
  """The labelled + unlabelled stream of a semi-supervised config section.

  Reads `labels`, `label_seed`, `mu` and, when the section has it, `unlabelled` (the number of unlabelled
  images; 0: all); `kwargs` go to `streams.LabelledUnlabelled` (e.g. `with_indices=True`).
  """
  if "unlabelled" in s:
    kwargs.setdefault("num_unlabelled", s.unlabelled)
  return streams.LabelledUnlabelled(num_labels=s.labels, split_seed=s.label_seed, mu=s.mu, **kwargs)


def consistency_config(*, lambda_u: float, mu: int = 1) -> ml_collections.ConfigDict:
  """The config section of a consistency method (Pi-model, Mean Teacher), USB's classic-CV defaults."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,
      "mu": mu,
      "lambda_u": lambda_u,
      "unsup_warmup": 0.4,
      "rampup": "sigmoid",
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


@dataclasses.dataclass(frozen=True)
class Consistency:
  """A classifier trained with a ramped-up consistency loss on weak views (Pi-model, Mean Teacher)."""
  net: Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  lambda_u: float
  rampup_steps: float
  rampup: str
  ema_decay: float

  def unsup_weight(self, step) -> jax.Array:
    """lambda_u w(k): the unlabelled loss's weight at `step`."""
    return self.lambda_u * rampup(step, self.rampup_steps, self.rampup)


def make_consistency(config, info, section: str) -> Consistency:
  """The `Consistency` method of `config.<section>`, its fields checked (one ValueError per mistake)."""
  s = config[section]
  check_fraction(section, "unsup_warmup", s.unsup_warmup)
  check_fraction(section, "ema_decay", s.ema_decay, upper_open=True)
  check_mu(section, s.mu)
  if s.rampup not in RAMPUPS:
    raise ValueError(f"{section}.rampup must be one of {', '.join(RAMPUPS)}, got {s.rampup!r}.")
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return Consistency(net=make(config, info), tx=tx, schedule=schedule,
                     views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                     lambda_u=s.lambda_u, rampup_steps=s.unsup_warmup * config.total_steps, rampup=s.rampup,
                     ema_decay=s.ema_decay)


def predict(net: Classifier, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """{"logits"} of the online model and, when the state keeps one, {"ema_logits"} of the EMA model."""
  x = views_lib.eval_view(images, mean=net.mean, std=net.std)
  out = {"logits": logits(net, state.params, state.batch_stats, x, train=False)[0]}
  if "ema" in state.extra:
    ema = state.extra["ema"]
    out["ema_logits"] = logits(net, ema["params"], ema["batch_stats"], x, train=False)[0]
  return out
