"""Virtual Adversarial Training (Miyato et al. 2018, arXiv:1704.03976): smoothness against the worst
small perturbation of each unlabelled input.

For an unlabelled (weakly augmented, normalised) image u with prediction q = softmax f(u) (no gradient),
the virtual adversarial perturbation is the direction that changes the prediction most, found by power
iteration on the Hessian of D(r) = KL(q || softmax f(u + r)) at r = 0:

  d ~ N(0, I);  repeat `power_iterations` times: d <- grad_r D(r) at r = xi d / ||d||  (~ xi H d);
  r_adv = eps d / ||d||            (per example: every r_adv has L2 norm eps over its pixels)

  L = mean_b CE(f(x_b), y_b) + lambda_u w(k) mean_u KL(q_u || softmax f(u + r_adv_u))
      + lambda_ent mean_u H(softmax f(u)),

r_adv a constant (no gradient flows through its search), w(k) the linear ramp-up over the first
`unsup_warmup` fraction of training, and the entropy term the paper's "VAT + EntMin" option (0 disables it).
`xi` = 0 (our default) takes the power iteration's limit xi -> 0 exactly, d <- H d from Jacobian-vector and
vector-Jacobian products: at the paper's xi = 1e-6 the float32 finite difference is mostly rounding noise
(the direction then even changes with the number of devices the batch is split over). As USB does, the
labelled batch has its own forward pass (its BatchNorm statistics are the ones kept); the unlabelled passes
run in training mode on the unlabelled batch's statistics, which are discarded. An EMA of the parameters
(`ema_decay`) is evaluated beside the online model.

Config section `vat`: `labels`, `label_seed`, `unlabelled` (0: every training image is unlabelled data; N: N
images outside the labelled split), `mu`, `eps`, `xi`, `power_iterations`, `lambda_u`, `lambda_ent`,
`unsup_warmup`, `ema_decay`, `views` (weak part used). Defaults are USB's (semilearn/algorithms/vat and its
classic-CV config: eps 6, one power iteration, lambda_u 1 as the paper's alpha, entropy weight 0.06, warm-up
0.4, uratio 1), but xi = 0 (USB's is 1e-6).
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
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)


def config() -> ml_collections.ConfigDict:
  """The `vat` section with USB's defaults."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,
      "mu": 1,
      "eps": 6.0,
      "xi": 0.0,
      "power_iterations": 1,
      "lambda_u": 1.0,
      "lambda_ent": 0.06,
      "unsup_warmup": 0.4,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.vat
  return classifier.semi_stream(s)


@dataclasses.dataclass(frozen=True)
class VAT:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  eps: float
  xi: float
  power_iterations: int
  lambda_u: float
  lambda_ent: float
  rampup_steps: float
  ema_decay: float

  def unsup_weight(self, step) -> jax.Array:
    return self.lambda_u * classifier.rampup(step, self.rampup_steps, "linear")


def make(config, info) -> VAT:
  s = config.vat
  if not (s.eps > 0 and s.xi >= 0):
    raise ValueError(f"vat.eps (perturbation norm) must be positive and vat.xi (finite-difference step, 0 for the "
                     f"exact Hessian product) non-negative, got eps={s.eps}, xi={s.xi}.")
  if s.power_iterations < 1:
    raise ValueError(f"vat.power_iterations must be at least 1, got {s.power_iterations}.")
  if s.lambda_ent < 0:
    raise ValueError(f"vat.lambda_ent is a loss weight (0 disables entropy minimisation), got {s.lambda_ent}.")
  classifier.check_fraction("vat", "unsup_warmup", s.unsup_warmup)
  classifier.check_fraction("vat", "ema_decay", s.ema_decay, upper_open=True)
  classifier.check_mu("vat", s.mu)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return VAT(net=classifier.make(config, info), tx=tx, schedule=schedule,
             views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
             eps=s.eps, xi=s.xi, power_iterations=s.power_iterations, lambda_u=s.lambda_u,
             lambda_ent=s.lambda_ent, rampup_steps=s.unsup_warmup * config.total_steps, ema_decay=s.ema_decay)


def init(m: VAT, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def _kl(q_logits: jax.Array, p_logits: jax.Array) -> jax.Array:
  """KL(softmax q || softmax p) per row, from log-softmaxes."""
  log_q = jax.nn.log_softmax(q_logits.astype(jnp.float32), axis=-1)
  log_p = jax.nn.log_softmax(p_logits.astype(jnp.float32), axis=-1)
  return jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1)


def _unit(d: jax.Array, fallback: jax.Array) -> jax.Array:
  """d / ||d|| per example (L2 over every axis but the first); `fallback`'s direction where d is 0."""
  axes = tuple(range(1, d.ndim))
  norm = jnp.sqrt(jnp.sum(jnp.square(d), axis=axes, keepdims=True))
  f_norm = jnp.sqrt(jnp.sum(jnp.square(fallback), axis=axes, keepdims=True))
  return jnp.where(norm > 0, d / jnp.where(norm > 0, norm, 1.0), fallback / f_norm)


def adversarial_perturbation(m: VAT, params, batch_stats, u: jax.Array, logits_u: jax.Array,
                             key: jax.Array) -> jax.Array:
  """r_adv of each unlabelled input u [n, H, W, C] (L2 norm eps per example), without gradient.

  `logits_u` are the model's logits on u (the target q). Power iteration from a Gaussian direction d on the
  Hessian H of D(r) = sum_u KL(q_u || softmax f(u + r_u)) at r = 0: with `xi` > 0 the paper's finite
  difference d <- grad D(xi d / ||d||); with `xi` = 0 the exact product d <- H d = J^T (diag p - p p^T) J d
  (J the Jacobian of the logits in the input, J d as the transpose of v -> J^T v), its xi -> 0 limit.
  """
  params, q = jax.lax.stop_gradient(params), jax.lax.stop_gradient(logits_u)
  d0 = jax.random.normal(key, u.shape, jnp.float32)
  f = lambda x: classifier.logits(m.net, params, batch_stats, x, train=True)[0]

  def divergence(r):
    return jnp.sum(_kl(q, f(u + r)))  # a sum, so each example's gradient is its own

  d = d0
  if m.xi > 0:
    for _ in range(m.power_iterations):
      d = jax.grad(divergence)(m.xi * _unit(d, d0))
  else:
    p = jax.nn.softmax(q, axis=-1)
    _, f_vjp = jax.vjp(f, u)
    jt = lambda v: f_vjp(v)[0]  # v -> J^T v, linear in v
    _, j = jax.vjp(jt, jnp.zeros_like(q))  # its transpose, d -> J d (no forward mode: the convolution's
    for _ in range(m.power_iterations):    # fast CPU gradient is a custom_vjp)
      (jd,) = j(_unit(d, d0))
      d = jt(p * (jd - jnp.sum(p * jd, axis=-1, keepdims=True)))
  return jax.lax.stop_gradient(m.eps * _unit(d, d0))


def inputs(m: VAT, state: common.TrainState, batch) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(weak labelled views, weak unlabelled views, key of the perturbation's random start)."""
  k_l, k_u, k_d = jax.random.split(common.step_key(state), 3)
  return (views_lib.weak_view(k_l, batch["labelled"]["image"], m.views),
          views_lib.weak_view(k_u, batch["unlabelled"]["image"], m.views), k_d)


def step(m: VAT, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  x_l, u, k_d = inputs(m, state, batch)
  labels = batch["labelled"]["label"]
  weight = m.unsup_weight(state.step)

  def loss_fn(params):
    l_lab, stats = classifier.logits(m.net, params, state.batch_stats, x_l, train=True)
    l_u, _ = classifier.logits(m.net, params, state.batch_stats, u, train=True)
    r_adv = adversarial_perturbation(m, params, state.batch_stats, u, l_u, k_d)
    l_adv, _ = classifier.logits(m.net, params, state.batch_stats, u + r_adv, train=True)
    sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels).mean()
    lds = _kl(jax.lax.stop_gradient(l_u), l_adv).mean()
    log_p = jax.nn.log_softmax(l_u, axis=-1)
    entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1).mean()
    metrics = {"train/sup_loss": sup, "train/unsup_loss": lds, "train/entropy": entropy,
               "train/unsup_weight": weight, "train/labelled_top1": common.top1(l_lab, labels)}
    return sup + weight * lds + m.lambda_ent * entropy, (metrics, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  return state.replace(extra={"ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: VAT, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
