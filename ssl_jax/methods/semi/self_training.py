"""Self-training with a noised student (Noisy Student: Xie et al. 2020, arXiv:1911.04252), in rounds.

Round 0 trains a teacher on the labelled split alone. Each later round r = 1..R starts from the checkpoint
that ends round r-1: the teacher is frozen as that network, the student starts from the same weights with a
fresh optimizer and learning-rate schedule, and trains on the labelled batch and on the unlabelled batch
labelled by the teacher:

  L = mean_b CE(f(weak(x_b)), y_b) + lambda_u mean_u m_u CE(f(strong(u)), q(u)),
  q(u) = softmax(f_teacher(clean(u)) / T)  (soft, the paper's default)  or  onehot(argmax)  (hard),
  m_u = [max q(u) >= threshold]  (the paper's confidence filter, 0.3 on ImageNet)

The teacher sees the un-noised image (the evaluation view, as the paper: "the teacher is not noised when it
generates pseudo labels") and runs in inference mode; the student is noised by the strong view (RandAugment-
style with cutout, `views.WeakStrongViews`). The pseudo labels of a fixed teacher are computed on the fly for
each unlabelled batch: the same labels an offline pass would write, without a second copy of the data.

All rounds are one run of `total_steps = (rounds + 1) x steps_per_round` steps: the round is a function of
the step, the teacher lives in `state.extra["teacher"]`, and the switch to the next round happens inside the
jitted step, so a run killed in any round resumes exactly (the checkpoint holds the teacher and the round).
The EMA model of the student is evaluated beside it (`ema_test_top1`).

Config section `self_training`: `labels`, `label_seed`, `unlabelled` (0: every other training image; N: N of
them), `mu`, `rounds`, `soft_targets`, `temperature`, `threshold`, `lambda_u`, `ema_decay`, `views`.
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
  """The `self_training` section: the paper's soft targets and confidence filter, 3 student rounds."""
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "unlabelled": 0,        # 0: every training image outside the split; N: N of them
      "mu": 7,
      "rounds": 3,            # student rounds after the teacher's round 0
      "soft_targets": True,
      "temperature": 1.0,     # of the teacher's softmax
      "threshold": 0.3,       # keep unlabelled images whose teacher confidence is at least this
      "lambda_u": 1.0,
      "ema_decay": 0.999,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def stream(config) -> streams.LabelledUnlabelled:
  s = config.self_training
  return classifier.semi_stream(s)


@dataclasses.dataclass(frozen=True)
class SelfTraining:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  steps_per_round: int
  soft_targets: bool
  temperature: float
  threshold: float
  lambda_u: float
  ema_decay: float


def make(config, info) -> SelfTraining:
  s = config.self_training
  if s.rounds < 1:
    raise ValueError(f"self_training.rounds counts the student rounds after the teacher's; it must be at least "
                     f"1, got {s.rounds}.")
  if config.total_steps % (s.rounds + 1):
    raise ValueError(f"total_steps={config.total_steps} does not split into rounds + 1 = {s.rounds + 1} equal "
                     f"rounds; use a multiple of {s.rounds + 1}.")
  classifier.check_mu("self_training", s.mu)
  classifier.check_fraction("self_training", "threshold", s.threshold)
  if s.temperature <= 0:
    raise ValueError(f"self_training.temperature must be positive, got {s.temperature}.")
  classifier.check_fraction("self_training", "ema_decay", s.ema_decay, upper_open=True)
  steps_per_round = config.total_steps // (s.rounds + 1)
  # Every round has its own schedule: the optimizer state (and with it optax's step count) restarts.
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=steps_per_round)
  return SelfTraining(net=classifier.make(config, info), tx=tx, schedule=schedule,
                      views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                      steps_per_round=steps_per_round, soft_targets=bool(s.soft_targets),
                      temperature=float(s.temperature), threshold=float(s.threshold),
                      lambda_u=float(s.lambda_u), ema_decay=float(s.ema_decay))


def init(m: SelfTraining, rng: jax.Array, pretrained=None) -> common.TrainState:
  state = classifier.init_state(m.net, m.tx, rng, pretrained)
  teacher = {"params": state.params, "batch_stats": state.batch_stats}
  return state.replace(extra={**state.extra, "teacher": teacher})


def current_round(m: SelfTraining, step: jax.Array) -> jax.Array:
  """The round a step belongs to: 0 (the teacher on labels alone), then 1..rounds (students)."""
  return step // m.steps_per_round


def start_round(m: SelfTraining, state: common.TrainState) -> common.TrainState:
  """At the first step of rounds 1..R: the network that ended the last round becomes the frozen teacher, and
  the student continues from it with a fresh optimizer state (so a fresh schedule). Otherwise unchanged."""
  new_round = (state.step > 0) & (state.step % m.steps_per_round == 0)
  pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(new_round, a, b), new, old)
  teacher = pick({"params": state.params, "batch_stats": state.batch_stats}, state.extra["teacher"])
  opt_state = pick(m.tx.init(state.params), state.opt_state)
  return state.replace(opt_state=opt_state, extra={**state.extra, "teacher": teacher})


def teacher_targets(m: SelfTraining, teacher: dict, u_clean: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(targets [U, C], mask [U]) of the frozen teacher on un-noised unlabelled images: soft or one-hot."""
  logits, _ = classifier.logits(m.net, teacher["params"], teacher["batch_stats"], u_clean, train=False)
  probs = jax.nn.softmax(logits / m.temperature)
  mask = (jnp.max(probs, axis=-1) >= m.threshold).astype(jnp.float32)
  if not m.soft_targets:
    probs = jax.nn.one_hot(jnp.argmax(probs, axis=-1), probs.shape[-1], dtype=probs.dtype)
  return jax.lax.stop_gradient(probs), mask


def step(m: SelfTraining, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]}."""
  state = start_round(m, state)
  k_l, k_u = jax.random.split(common.step_key(state))
  x_l = views_lib.weak_view(k_l, batch["labelled"]["image"], m.views)
  u_images = batch["unlabelled"]["image"]
  _, u_strong = views_lib.weak_strong_views(k_u, u_images, m.views)
  u_clean = views_lib.eval_view(u_images, mean=m.views.mean, std=m.views.std)
  targets, mask = teacher_targets(m, state.extra["teacher"], u_clean)
  labels, b = batch["labelled"]["label"], x_l.shape[0]
  x = jnp.concatenate([x_l, u_strong])
  round_ = current_round(m, state.step)
  weight = jnp.where(round_ > 0, m.lambda_u, 0.0)  # round 0 is the teacher: labels only

  def loss_fn(params):
    logits, stats = classifier.logits(m.net, params, state.batch_stats, x, train=True)
    l_lab, l_u = logits[:b], logits[b:]
    sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, labels).mean()
    unsup = jnp.mean(mask * optax.softmax_cross_entropy(l_u, targets))
    metrics = {"train/sup_loss": sup, "train/unsup_loss": unsup, "train/mask_ratio": mask.mean(),
               "train/round": round_.astype(jnp.float32), "train/labelled_top1": common.top1(l_lab, labels)}
    return sup + weight * unsup, (metrics, stats)

  # The schedule restarts every round, as the optimizer state does.
  schedule = lambda step: m.schedule(step % m.steps_per_round)
  state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=schedule)
  return state.replace(extra={**state.extra, "ema": classifier.update_ema(state, m.ema_decay)}), metrics


def predict(m: SelfTraining, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
