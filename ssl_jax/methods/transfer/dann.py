"""Domain-adversarial neural network, DANN (Ganin et al. 2016): labels of one domain, images of another.

A feature extractor f, a label predictor on f and a domain classifier d on f are trained on a labelled
source batch (x_s, y_s) and an unlabelled target batch x_t of the same size. The domain classifier sits
behind a gradient-reversal layer R_lambda (identity forward, -lambda times the gradient backward), so one
gradient step on

  L = CE(head(f(x_s)), y_s) + BCE(d(R_lambda(f(x))), domain(x)),   domain = 0 for source, 1 for target

trains the label predictor and the domain classifier to minimise their losses while the features learn
to *maximise* the domain loss (paper eq. 9-13): features on which the domains cannot be told apart, and
on which the source labels can be predicted. lambda follows the paper's schedule

  lambda_p = w * (2 / (1 + exp(-gamma p)) - 1),   p = step / total_steps in [0, 1], gamma = 10,

which starts at 0 (the domain classifier's early noise does not reach the features) and tends to w. With
`anneal_lr` the learning rate is the paper's annealing mu_p = mu_0 / (1 + alpha p)^beta (alpha = 10,
beta = 0.75) with SGD and momentum (`optim.lr` is mu_0).

`domain_weight=0` is the source-only baseline: the same network, schedule and augmentation trained on
the source labels alone (the target images are not even forwarded, so the BatchNorm statistics are the
source's). Trained with the target's own dataset as source, it is the upper bound of the target accuracy.
The `accuracy` suite scores the label predictor on the target's test split.

Config section `dann`: `target` (dataset of the target domain), `target_data_dir`, `domain_weight` (w),
`gamma`, `domain_hidden_dim` (the domain classifier's hidden width; the paper's 100 for digits),
`anneal_lr`, `lr_alpha`, `lr_beta`, `views` (weak augmentation of both domains; only its weak part is used).
References: Ganin et al. 2016, "Domain-Adversarial Training of Neural Networks", JMLR 17(59),
arXiv:1505.07818; Ganin & Lempitsky 2015, arXiv:1409.7495.
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
from ssl_jax.models import heads

SUITES = ("accuracy",)


@jax.custom_vjp
def gradient_reversal(x: jax.Array, lam: jax.Array) -> jax.Array:
  """The gradient-reversal layer R_lambda: R(x) = x forward, dR/dx = -lambda I backward.

  Args:
    x: any array (the features).
    lam: scalar weight lambda of the reversed gradient; it gets no gradient itself.
  Returns:
    `x` unchanged.
  References: Ganin & Lempitsky 2015, arXiv:1409.7495, eq. 12-13.
  """
  del lam
  return x


def _reversal_fwd(x, lam):
  return x, lam


def _reversal_bwd(lam, g):
  return (-lam * g).astype(g.dtype), jnp.zeros_like(lam)


gradient_reversal.defvjp(_reversal_fwd, _reversal_bwd)


def adaptation_weight(progress: jax.Array, *, gamma: float = 10.0) -> jax.Array:
  """The paper's lambda_p = 2 / (1 + exp(-gamma p)) - 1 for training progress p in [0, 1] (0 -> 0, 1 -> ~1)."""
  return 2.0 / (1.0 + jnp.exp(-gamma * progress)) - 1.0


def annealed_lr(lr: float, total_steps: int, *, alpha: float = 10.0, beta: float = 0.75) -> optax.Schedule:
  """The paper's learning rate mu_p = mu_0 / (1 + alpha p)^beta, p = step / total_steps."""
  total = max(int(total_steps), 1)
  return lambda step: lr / (1.0 + alpha * jnp.asarray(step, jnp.float32) / total) ** beta


def config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "target": "digits28",
      "target_data_dir": "",
      "domain_weight": 1.0,
      "gamma": 10.0,
      "domain_hidden_dim": 100,
      "anneal_lr": True,
      "lr_alpha": 10.0,
      "lr_beta": 0.75,
      "views": views_lib.to_config(views_lib.WeakStrongViews(flip_p=0.0, num_ops=0, cutout=0.0)),
  })


def digits_recipe(c: ml_collections.ConfigDict, *, source: str, target: str,
                  domain_weight: float = 0.3) -> ml_collections.ConfigDict:
  """`c` (a `base_config("dann")`) made the digit-domain experiment of `configs/transfer/dann_<source>_to_<target>.py`.

  A small ConvNet (widths 16-32-64) with a linear label head and a domain classifier (100 hidden units)
  behind the gradient reversal layer, lambda_p = w (2 / (1 + exp(-10 p)) - 1), and the paper's annealed SGD
  learning rate; 800 steps of 64 source + 64 target images. `domain_weight=0` gives the source-only baseline
  and `source == target` the upper bound trained on the target's own labels.
  """
  c.total_steps = 800
  c.batch_size = 64
  c.checkpoint_every_steps = 400
  c.eval_every_steps = 400
  c.log_every_steps = 50

  c.data.name = source
  c.dann.target = target
  c.dann.domain_weight = domain_weight
  c.dann.gamma = 10.0
  c.dann.domain_hidden_dim = 100

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64)

  c.optim.name = "sgd"
  c.optim.lr = 0.01
  c.optim.momentum = 0.9
  c.optim.scale_lr_with_batch = False
  c.optim.weight_decay = 5e-4
  return c


def stream(config) -> streams.SourceTarget:
  return streams.SourceTarget(target=config.dann.target, target_data_dir=config.dann.target_data_dir)


@dataclasses.dataclass(frozen=True)
class DANN:
  net: classifier.Classifier
  domain: heads.MLPHead
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  domain_weight: float
  gamma: float
  total_steps: int


def make(config, info) -> DANN:
  s = config.dann
  if s.domain_weight < 0 or s.gamma <= 0 or s.domain_hidden_dim < 1:
    raise ValueError(f"dann needs domain_weight >= 0, gamma > 0 and domain_hidden_dim >= 1; got "
                     f"{s.domain_weight}, {s.gamma} and {s.domain_hidden_dim}.")
  if s.anneal_lr:
    if config.optim.name != "sgd":
      raise ValueError(f"dann.anneal_lr trains with SGD and momentum as the paper does; set optim.name=sgd "
                       f"(now {config.optim.name!r}) or dann.anneal_lr=false.")
    schedule = annealed_lr(config.optim.lr, config.total_steps, alpha=s.lr_alpha, beta=s.lr_beta)
    tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay, mask=optim_lib.decay_mask),
                     optax.sgd(schedule, momentum=config.optim.momentum or None, nesterov=config.optim.nesterov))
    if config.optim.grad_clip_norm:
      tx = optax.chain(optax.clip_by_global_norm(config.optim.grad_clip_norm), tx)
  else:
    tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                            total_steps=config.total_steps)
  return DANN(net=classifier.make(config, info),
              domain=heads.MLPHead((s.domain_hidden_dim,), 1, use_bn=False), tx=tx, schedule=schedule,
              views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
              domain_weight=float(s.domain_weight), gamma=float(s.gamma), total_steps=int(config.total_steps))


def init(m: DANN, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_net, k_dom, k_aug = jax.random.split(rng, 3)
  params, batch_stats = classifier.init(m.net, k_net)
  feats, _ = common.apply(m.net.encoder, params["encoder"], batch_stats["encoder"],
                          jnp.zeros((2, *m.net.image_shape), jnp.float32), train=False)
  params["domain"], _ = common.init_module(m.domain, k_dom, feats)
  params, batch_stats = common.load_pretrained(params, batch_stats, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def step(m: DANN, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"source": {"image", "label"} [B], "target": {"image"} [B]}."""
  k_s, k_t = jax.random.split(common.step_key(state))
  xs = views_lib.weak_view(k_s, batch["source"]["image"], m.views)
  ys = batch["source"]["label"]
  b = xs.shape[0]
  lam = m.domain_weight * adaptation_weight(state.step / m.total_steps, gamma=m.gamma)
  adapt = m.domain_weight > 0
  x = jnp.concatenate([xs, views_lib.weak_view(k_t, batch["target"]["image"], m.views)]) if adapt else xs

  def loss_fn(params):
    feats, enc_stats = common.apply(m.net.encoder, params["encoder"], state.batch_stats["encoder"], x,
                                    train=True)
    logits = m.net.head.apply({"params": params["classifier"]}, feats[:b]).astype(jnp.float32)
    label_loss = optax.softmax_cross_entropy_with_integer_labels(logits, ys).mean()
    metrics = {"train/label_loss": label_loss, "train/source_top1": common.top1(logits, ys),
               "train/lambda": lam}
    loss = label_loss
    if adapt:
      d = m.domain.apply({"params": params["domain"]}, gradient_reversal(feats, lam), train=True)
      d = d[:, 0].astype(jnp.float32)
      domain = jnp.concatenate([jnp.zeros(b), jnp.ones(b)])
      domain_loss = optax.sigmoid_binary_cross_entropy(d, domain).mean()
      loss = label_loss + domain_loss
      metrics["train/domain_loss"] = domain_loss
      metrics["train/domain_top1"] = jax.lax.stop_gradient(jnp.mean(((d > 0) == (domain > 0.5)).astype(jnp.float32)))
    return loss, (metrics, {**state.batch_stats, "encoder": enc_stats})

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: DANN, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """{"logits"} of the label predictor (the `accuracy` suite scores them on the target's test split)."""
  return classifier.predict(m.net, state, images)
