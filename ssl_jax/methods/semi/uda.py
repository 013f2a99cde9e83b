"""UDA, Unsupervised Data Augmentation (Xie et al. 2020, arXiv:1904.12848): sharpened predictions on weak
views teach strongly augmented views.

Each step sees a labelled batch of B and an unlabelled batch of mu B; the labelled images and a weak view
(flip and translate) and a strong view (RandAugment-style with cutout, `views.WeakStrongViews`) of every
unlabelled image go through the network in one forward pass:

  q_u = softmax(f(weak(u)) / T) (no gradient),  m_u = [max softmax f(weak(u)) > beta],
  L = 1/B sum_b [p(y_b | x_b) <= eta_k] CE(f(x_b), y_b) + lambda_u mean_u m_u KL(q_u || softmax f(strong(u)))

(`losses.uda`: sharpening by the temperature T and confidence masking by beta on the unsharpened
prediction). Training Signal Annealing (TSA, optional) drops the labelled examples the model already
predicts with a probability of their true class above eta_k = a_k (1 - 1/C) + 1/C, with a_k = t (linear),
1 - exp(-5 t) (log) or exp(5 (t - 1)) (exp), t = k / K; "none" keeps every example. USB's TSA masks on the
maximum probability; we follow the paper and its code (the true class's probability). An EMA of the
parameters (`ema_decay`) is evaluated beside the online model.

Config section `uda`: `labels`, `label_seed`, `unlabelled` (0: every training image is unlabelled data; N: N
images outside the labelled split), `mu`, `temperature` (T), `threshold` (beta), `lambda_u`, `tsa` ("none" |
"linear" | "log" | "exp"), `ema_decay`, `views`. Defaults are USB's (semilearn/algorithms/ uda, classic CV:
uratio 7, T 0.4, p_cutoff 0.8, lambda_u 1, TSA none).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.losses.semi_supervised import uda as uda_loss
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)
TSA_SCHEDULES = ("none", "linear", "log", "exp")


def config() -> ml_collections.ConfigDict:
  """The `uda` section with USB's defaults."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,
      "mu": 7,
      "temperature": 0.4,
      "threshold": 0.8,
      "lambda_u": 1.0,
      "tsa": "none",
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.uda
  return classifier.semi_stream(s)


def tsa_threshold(schedule: str, step, total_steps: int, num_classes: int) -> jax.Array:
  """eta_k = a_k (1 - 1/C) + 1/C of Training Signal Annealing (1 for "none"), a pure function of the step."""
  if schedule == "none":
    return jnp.ones((), jnp.float32)
  t = jnp.asarray(step, jnp.float32) / max(int(total_steps), 1)
  alpha = {"linear": lambda: t, "log": lambda: 1.0 - jnp.exp(-5.0 * t),
           "exp": lambda: jnp.exp(5.0 * (t - 1.0))}[schedule]()
  return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


@dataclasses.dataclass(frozen=True)
class UDA:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  temperature: float
  threshold: float
  lambda_u: float
  tsa: str
  total_steps: int
  num_classes: int
  ema_decay: float


def make(config, info) -> UDA:
  s = config.uda
  if not s.temperature > 0:
    raise ValueError(f"uda.temperature must be positive (< 1 sharpens), got {s.temperature}.")
  if s.tsa not in TSA_SCHEDULES:
    raise ValueError(f"uda.tsa must be one of {', '.join(TSA_SCHEDULES)}, got {s.tsa!r}.")
  classifier.check_fraction("uda", "threshold", s.threshold)
  classifier.check_fraction("uda", "ema_decay", s.ema_decay, upper_open=True)
  classifier.check_mu("uda", s.mu)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return UDA(net=classifier.make(config, info), tx=tx, schedule=schedule,
             views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
             temperature=s.temperature, threshold=s.threshold, lambda_u=s.lambda_u, tsa=s.tsa,
             total_steps=config.total_steps, num_classes=info.num_classes, ema_decay=s.ema_decay)


def init(m: UDA, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def inputs(m: UDA, state: common.TrainState, batch) -> jax.Array:
  """The step's network input: weak labelled views, weak unlabelled views, strong unlabelled views."""
  k_l, k_u = jax.random.split(common.step_key(state))
  u_weak, u_strong = views_lib.weak_strong_views(k_u, batch["unlabelled"]["image"], m.views)
  return jnp.concatenate([views_lib.weak_view(k_l, batch["labelled"]["image"], m.views), u_weak, u_strong])


def step(m: UDA, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  x = inputs(m, state, batch)
  labels = batch["labelled"]["label"]
  b = labels.shape[0]
  ub = (x.shape[0] - b) // 2
  eta = tsa_threshold(m.tsa, state.step, m.total_steps, m.num_classes)

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    l_lab, l_weak, l_strong = logits[:b], logits[b:b + ub], logits[b + ub:]
    ce = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels)
    keep = (jnp.exp(-jax.lax.stop_gradient(ce)) <= eta).astype(ce.dtype)  # p(y | x) = exp(-CE)
    sup = jnp.mean(ce * keep)
    unsup, mask = uda_loss(jax.lax.stop_gradient(l_weak), l_strong, temperature=m.temperature,
                           threshold=m.threshold)
    unsup = unsup.mean()
    metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/mask_ratio": mask.mean(),
               "train/tsa_threshold": eta, "train/tsa_kept": keep.mean(),
               "train/labelled_top1": common.top1(l_lab, labels)}
    return sup + m.lambda_u * unsup, (metrics, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: UDA, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
