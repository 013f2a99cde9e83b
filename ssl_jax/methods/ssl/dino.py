"""DINO (Caron et al. 2021, arXiv:2104.14294): self-distillation with no labels, a student and an EMA teacher.

student: encoder -> DINO head g_s -> f_s for every crop (2 global, `num_local` local; `multi_crop_views`);
teacher: EMA copy -> g_t on the 2 global crops only (no gradient). With P_t = softmax((g_t - c) / tau_t),

  loss = mean_b 1/(T (S - 1)) sum_{t, s != t} -sum_k P_t[b, k] log softmax_k(f_s[b] / tau_s)   (`losses.dino`)

The DINO head is an MLP (Linear-GELU, Linear-GELU, Linear to a `bottleneck_dim` bottleneck; with
`use_bn_in_head` a BatchNorm after each hidden Linear, the authors' option for ResNets), an L2
normalisation and a weight-normalised last layer to `num_prototypes` outputs, W[:, k] = g_k V[:, k] / ||V[:, k]||,
as in the authors' code: with `norm_last_layer` (their default) g is fixed to 1, so every output is a cosine;
without it g is a learned [K] parameter (what the authors use for ViT-S: better, if less stable). Collapse is
avoided by the two operations on the teacher's outputs: centring, with the centre c an EMA of the mean teacher
output over the global batch (`losses.dino_center`, momentum `center_momentum`, in `state.extra["center"]`),
and sharpening, with the teacher temperature tau_t warmed up linearly from `warmup_teacher_temperature` to
`teacher_temperature` over `warmup_teacher_temperature_steps` steps. The teacher's parameters are an EMA of
the student's with the momentum rising from `tau_base` to `tau_final` on BYOL's cosine schedule
(`common.cosine_ema_schedule`). The last layer gets no update for the first `freeze_last_layer_steps`
steps (the paper's first epoch). With `koleo_weight` w > 0 the loss gains DINOv2's KoLeo regulariser
(Oquab et al. 2023, `losses.koleo`) on the student's encoder features of each global crop,
w sum_{global crops g} koleo(features_g), which spreads the features of the batch over the sphere (DINOv2: w =
0.1; 0, the default, is DINO as published). The encoder is `model.encoder`, a ViT in the paper (`vit_tiny` with
`model.patch_size`); a BatchNorm encoder's teacher runs in training mode and keeps its own statistics.

Config section `dino`: `num_prototypes`, `hidden_dim`, `bottleneck_dim`, `student_temperature`,
`teacher_temperature`, `warmup_teacher_temperature`, `warmup_teacher_temperature_steps`,
`center_momentum`, `tau_base`, `tau_final`, `freeze_last_layer_steps`, `norm_last_layer`, `use_bn_in_head`,
`koleo_weight`, `views` (a `MultiCropViews`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.losses.clustering import dino, dino_center
from ssl_jax.losses.redundancy import koleo
from ssl_jax.methods import common
from ssl_jax.models.heads import batch_norm

SUITES = ("representation",)
PARTS = ("encoder", "head")
LAST_LAYER = ("last_layer", "last_layer_g")  # frozen for the first `freeze_last_layer_steps` steps


def config() -> ml_collections.ConfigDict:
  """The `dino` section with the paper's defaults (solo-learn's 4096 prototypes for CIFAR)."""
  return ml_collections.ConfigDict({
      "num_prototypes": 4096,
      "hidden_dim": 2048,
      "bottleneck_dim": 256,
      "student_temperature": 0.1,
      "teacher_temperature": 0.04,
      "warmup_teacher_temperature": 0.04,
      "warmup_teacher_temperature_steps": 0,
      "center_momentum": 0.9,
      "tau_base": 0.996,
      "tau_final": 1.0,
      "freeze_last_layer_steps": 0,
      "norm_last_layer": True,
      "use_bn_in_head": False,
      "koleo_weight": 0.0,    # DINOv2's KoLeo on the student's encoder features of each global crop (0: off)
      "views": views_lib.to_config(views_lib.DINO),
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


class DINOHead(nn.Module):
  """MLP (Linear-[BN]-GELU x (num_layers - 1), Linear to bottleneck), L2 norm, weight-normalised last layer.

  Attributes:
    num_prototypes: outputs of the last layer (K).
    hidden_dim: width of the hidden layers.
    bottleneck_dim: width before the last layer.
    num_layers: linear layers of the MLP (3 in DINO).
    norm_last_layer: fix the norm g of every last-layer column to 1 (else g is the parameter `last_layer_g`).
    use_bn: BatchNorm after each hidden linear layer (the authors' `--use_bn_in_head`, solo-learn's default
      for ResNets); its statistics are over all the rows given, every crop of the batch.
    dtype: compute dtype; the last layer and its normalisation run in float32.
  """
  num_prototypes: int
  hidden_dim: int = 2048
  bottleneck_dim: int = 256
  num_layers: int = 3
  norm_last_layer: bool = True
  use_bn: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    init = nn.initializers.truncated_normal(0.02)
    for i in range(self.num_layers - 1):
      x = nn.Dense(self.hidden_dim, kernel_init=init, dtype=self.dtype, name=f"dense_{i}")(x)
      if self.use_bn:
        x = batch_norm(x, train=train, dtype=self.dtype, name=f"bn_{i}")
      x = nn.gelu(x, approximate=False)
    x = nn.Dense(self.bottleneck_dim, kernel_init=init, dtype=self.dtype, name=f"dense_{self.num_layers - 1}")(x)
    x = x.astype(jnp.float32)
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    v = self.param("last_layer", init, (self.bottleneck_dim, self.num_prototypes), jnp.float32)
    w = v / jnp.linalg.norm(v, axis=0, keepdims=True)  # weight norm: unit columns, times g
    if not self.norm_last_layer:
      # g starts at 1, as in the authors' code (`weight_g.data.fill_(1)`).
      w = w * self.param("last_layer_g", nn.initializers.ones, (self.num_prototypes,), jnp.float32)
    return x @ w


@dataclasses.dataclass(frozen=True)
class DINO:
  encoder: nn.Module
  head: nn.Module
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  tau: optax.Schedule
  teacher_temperature: optax.Schedule
  views: views_lib.MultiCropViews
  image_shape: tuple[int, int, int]
  student_temperature: float
  center_momentum: float
  freeze_last_layer_steps: int
  koleo_weight: float


def make(config, info) -> DINO:
  s = config.dino
  temps = (s.student_temperature, s.teacher_temperature, s.warmup_teacher_temperature)
  if min(temps) <= 0:
    raise ValueError(f"dino's student_temperature, teacher_temperature and warmup_teacher_temperature must be "
                     f"positive; got {temps}.")
  if not 0 <= s.center_momentum <= 1:
    raise ValueError(f"dino.center_momentum must be in [0, 1]; got {s.center_momentum}.")
  if not s.koleo_weight >= 0:
    raise ValueError(f"dino.koleo_weight must be >= 0 (0: no KoLeo term); got {s.koleo_weight}.")
  if s.warmup_teacher_temperature_steps < 0 or s.freeze_last_layer_steps < 0:
    raise ValueError(f"dino.warmup_teacher_temperature_steps and dino.freeze_last_layer_steps must be >= 0; "
                     f"got {s.warmup_teacher_temperature_steps} and {s.freeze_last_layer_steps}.")
  views = views_lib.from_config(views_lib.MultiCropViews, s.views, config.data.name)
  if views.num_global < 1 or views.num_global + views.num_local < 2:
    raise ValueError(f"dino needs at least 1 global crop and 2 crops in all; got num_global="
                     f"{views.num_global}, num_local={views.num_local}.")
  dtype = common.DTYPES[config.model.dtype]
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  teacher_temperature = optax.linear_schedule(s.warmup_teacher_temperature, s.teacher_temperature,
                                              max(int(s.warmup_teacher_temperature_steps), 1))
  return DINO(
      encoder=common.make_encoder(config, info),
      head=DINOHead(s.num_prototypes, s.hidden_dim, s.bottleneck_dim, norm_last_layer=bool(s.norm_last_layer),
                    use_bn=bool(s.use_bn_in_head), dtype=dtype),
      probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None,
      tx=tx, schedule=schedule, tau=common.cosine_ema_schedule(s.tau_base, config.total_steps, s.tau_final),
      teacher_temperature=teacher_temperature, views=views, image_shape=tuple(info.image_shape),
      student_temperature=float(s.student_temperature), center_momentum=float(s.center_momentum),
      freeze_last_layer_steps=int(s.freeze_last_layer_steps), koleo_weight=float(s.koleo_weight))


def init(m: DINO, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_head, k_probe, k_aug = jax.random.split(rng, 4)
  params, batch_stats = common.init_parts(
      {"encoder": m.encoder, "head": m.head}, (k_enc, k_head),
      jnp.zeros((2, *m.image_shape), jnp.float32), probe=m.probe, probe_key=k_probe, pretrained=pretrained)
  teacher = {"params": {k: params[k] for k in PARTS}, "batch_stats": {k: batch_stats[k] for k in PARTS}}
  extra = {"teacher": teacher, "center": jnp.zeros((m.head.num_prototypes,), jnp.float32)}
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug, extra=extra)


def forward(m: DINO, params, batch_stats, groups: list[jax.Array]) -> tuple[jax.Array, jax.Array, dict]:
  """Encoder on each group of same-size crops, then the head once on all their features (the authors'
  `MultiCropWrapper`), in training mode: (features of the first group, outputs [sum of group sizes, K] in
  float32, new statistics)."""
  enc_stats, feats = batch_stats["encoder"], []
  for x in groups:
    f, enc_stats = common.apply(m.encoder, params["encoder"], enc_stats, x, train=True)
    feats.append(f)
  out, head_stats = common.apply(m.head, params["head"], batch_stats["head"], jnp.concatenate(feats), train=True)
  return feats[0], out.astype(jnp.float32), {"encoder": enc_stats, "head": head_stats}


def step(m: DINO, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}."""
  globals_, locals_ = views_lib.multi_crop_views(common.step_key(state), batch["image"], m.views)
  b, n_global = globals_[0].shape[0], len(globals_)
  groups = [jnp.concatenate(globals_)] + ([jnp.concatenate(locals_)] if locals_ else [])
  teacher = state.extra["teacher"]
  _, teacher_out, teacher_stats = forward(m, teacher["params"], teacher["batch_stats"], groups[:1])
  teacher_out = jax.lax.stop_gradient(teacher_out.reshape(n_global, b, -1))
  center = state.extra["center"]
  tau_t = m.teacher_temperature(state.step)
  frozen = state.step < m.freeze_last_layer_steps

  def loss_fn(params):
    head = params["head"]
    params = {**params, "head": {**head, **{k: jnp.where(frozen, jax.lax.stop_gradient(head[k]), head[k])
                                            for k in LAST_LAYER if k in head}}}
    feats, student_out, stats = forward(m, params, state.batch_stats, groups)
    student_out = student_out.reshape(-1, b, student_out.shape[-1])
    loss = dino(student_out, teacher_out, center, student_temperature=m.student_temperature,
                teacher_temperature=tau_t)
    logs = {}
    if m.koleo_weight > 0:
      spread = sum(koleo(feats[g * b:(g + 1) * b]) for g in range(n_global))
      loss, logs = loss + m.koleo_weight * spread, {"train/koleo": spread / n_global}
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), feats[:b], batch["label"])
    return loss + probe_loss, ({"train/loss": loss, **logs, **metrics}, stats)

  tau = m.tau(state.step)
  new_state, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  head = new_state.params["head"]
  head = {**head, **{k: jnp.where(frozen, state.params["head"][k], head[k]) for k in LAST_LAYER if k in head}}
  params = {**new_state.params, "head": head}
  student = {k: params[k] for k in PARTS}
  extra = {"teacher": {"params": common.ema(teacher["params"], student, tau), "batch_stats": teacher_stats},
           "center": dino_center(center, teacher_out, momentum=m.center_momentum)}
  metrics = {**metrics, "train/tau": tau, "train/teacher_temperature": tau_t,
             "train/teacher_entropy": _mean_entropy((teacher_out - center) / tau_t)}
  return new_state.replace(params=params, extra=extra), metrics


def _mean_entropy(logits: jax.Array) -> jax.Array:
  """Mean entropy of softmax(logits) over the rows (low: sharp, high: uniform; collapse shows at either end)."""
  logp = jax.nn.log_softmax(logits, axis=-1)
  return jnp.mean(-jnp.sum(jnp.exp(logp) * logp, axis=-1))


def predict(m: DINO, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """Student encoder features of uint8 images (the teacher's are as good; the student is what is trained)."""
  return common.encoder_features(m, state, images)
