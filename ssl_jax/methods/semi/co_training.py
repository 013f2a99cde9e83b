"""Co-training (Blum & Mitchell 1998; deep form as Qiao et al. 2018, arXiv:1803.05984): two networks on two
views of each image, each teaching the other with its confident predictions on unlabelled data.

Network A always sees view A of an image (the weak view: flip and translate) and network B view B (the
strong view: the weak one plus RandAugment-style ops and cutout, `views.WeakStrongViews`), so the two
networks look at the data differently and make different mistakes. With p_A(u), p_B(u) their predictions on
the two views of an unlabelled image,

  L = CE(A(x^A), y) + CE(B(x^B), y)
      + lambda_u mean_u [max p_B(u) >= tau] CE(A(u^A), argmax p_B(u))     (B teaches A)
      + lambda_u mean_u [max p_A(u) >= tau] CE(B(u^B), argmax p_A(u))     (A teaches B)

with every pseudo label computed without gradient, so a network is only ever taught by the other one. The
two networks start from different random initialisations (or both from `init_from`). The prediction is the
ensemble: the average of the two networks' probabilities on the clean image (`logits` = its log), and the
same for the EMA of both (`ema_logits`).

Config section `co_training`: `labels`, `label_seed`, `unlabelled` (0: every other training image; N: N of
them), `mu`, `threshold`, `lambda_u`, `ema_decay`, `views`.
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
NETS = ("net_a", "net_b")


def config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,        # 0: every training image outside the split; N: N of them
      "mu": 7,
      "threshold": 0.95,
      "lambda_u": 1.0,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.co_training
  return classifier.semi_stream(s)


@dataclasses.dataclass(frozen=True)
class CoTraining:
  net: classifier.Classifier  # the architecture of both networks
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  threshold: float
  lambda_u: float
  ema_decay: float


def make(config, info) -> CoTraining:
  s = config.co_training
  classifier.check_fraction("co_training", "threshold", s.threshold)
  classifier.check_mu("co_training", s.mu)
  classifier.check_fraction("co_training", "ema_decay", s.ema_decay, upper_open=True)
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  return CoTraining(net=classifier.make(config, info), tx=tx, schedule=schedule,
                    views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                    threshold=float(s.threshold), lambda_u=float(s.lambda_u), ema_decay=float(s.ema_decay))


def init(m: CoTraining, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_a, k_b, k_aug = jax.random.split(rng, 3)
  params, batch_stats = {}, {}
  for name, key in zip(NETS, (k_a, k_b)):
    params[name], batch_stats[name] = classifier.init(m.net, key, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug,
                           extra={"ema": {"params": params, "batch_stats": batch_stats}})


def cross_pseudo_labels(logits_teacher: jax.Array, threshold: float) -> tuple[jax.Array, jax.Array]:
  """(hard labels, mask) that a teacher's logits give the other network: argmax where confident."""
  probs = jax.nn.softmax(jax.lax.stop_gradient(logits_teacher))
  return jnp.argmax(probs, axis=-1), (jnp.max(probs, axis=-1) >= threshold).astype(jnp.float32)


def step(m: CoTraining, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update of both networks on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  k_la, k_lb, k_u = jax.random.split(common.step_key(state), 3)
  images, labels = batch["labelled"]["image"], batch["labelled"]["label"]
  _, x_b = views_lib.weak_strong_views(k_lb, images, m.views)
  x = {"net_a": views_lib.weak_view(k_la, images, m.views), "net_b": x_b}
  u_a, u_b = views_lib.weak_strong_views(k_u, batch["unlabelled"]["image"], m.views)
  u = {"net_a": u_a, "net_b": u_b}
  b = images.shape[0]

  def loss_fn(params):
    logits, stats = {}, {}
    for name in NETS:
      logits[name], stats[name] = classifier.logits(
          m.net, params[name], state.batch_stats[name], jnp.concatenate([x[name], u[name]]), train=True)
    metrics, total = {}, 0.0
    for me, other in (("net_a", "net_b"), ("net_b", "net_a")):
      sup = optax.softmax_cross_entropy_with_integer_labels(logits[me][:b], labels).mean()
      pseudo, mask = cross_pseudo_labels(logits[other][b:], m.threshold)
      unsup = jnp.mean(mask * optax.softmax_cross_entropy_with_integer_labels(logits[me][b:], pseudo))
      total = total + sup + m.lambda_u * unsup
      tag = me[-1]
      metrics |= {f"train/sup_loss_{tag}": sup, f"train/unsup_loss_{tag}": unsup,
                  f"train/mask_ratio_{tag}": mask.mean(), f"train/labelled_top1_{tag}": common.top1(
                      logits[me][:b], labels)}
    # How often the two networks agree on the unlabelled images: co-training needs them to differ at first.
    metrics["train/agreement"] = jnp.mean((jnp.argmax(logits["net_a"][b:], -1) ==
                                           jnp.argmax(logits["net_b"][b:], -1)).astype(jnp.float32))
    return total, (metrics, stats)

  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  ema = {"params": common.ema(state.extra["ema"]["params"], state.params, m.ema_decay),
         "batch_stats": state.batch_stats}
  return state.replace(extra={"ema": ema}), metrics


def ensemble_logits(m: CoTraining, params, batch_stats, x: jax.Array) -> jax.Array:
  """log of the mean of both networks' probabilities."""
  log_probs = [jax.nn.log_softmax(classifier.logits(m.net, params[n], batch_stats[n], x, train=False)[0])
               for n in NETS]
  return jax.scipy.special.logsumexp(jnp.stack(log_probs), axis=0) - jnp.log(2.0)


def predict(m: CoTraining, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  x = views_lib.eval_view(images, mean=m.net.mean, std=m.net.std)
  ema = state.extra["ema"]
  return {"logits": ensemble_logits(m, state.params, state.batch_stats, x),
          "ema_logits": ensemble_logits(m, ema["params"], ema["batch_stats"], x)}
