"""SimCLR (Chen et al. 2020, arXiv:2002.05709): the pattern every method follows.

A method is three things in one file:
  * `SimCLRState`, a pytree holding everything that changes during training;
  * `SimCLR`, the static parts (modules, optimizer, augmentation preset), built once from the config;
  * `init(method, rng) -> state` and a pure `step(state, batch, *, method) -> (state, metrics)`.

The trainer jits `functools.partial(step, method=method)` once, with the state donated, under the mesh. Both
augmented views are made on device inside the step from `fold_in(state.rng, state.step)`, so a step depends
only on the state and the batch: a resumed run repeats an uninterrupted one exactly.

The encoder never sees labels. When `eval.online_probe` is set, a linear head is trained on
`stop_gradient(features)` of the first view (as in BYOL) as a live measure of the representation; labels reach
only that head.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.data import views as views_lib
from ssl_jax.losses.contrastive import ntxent
from ssl_jax.models import heads, registry
from ssl_jax.train import optim as optim_lib

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class SimCLRState(flax.struct.PyTreeNode):
  step: jax.Array         # int32 scalar
  params: Any             # {"encoder", "projector", "probe"}
  batch_stats: Any        # BatchNorm statistics of encoder and projector
  opt_state: optax.OptState
  rng: jax.Array          # raw uint32 key; augmentations use fold_in(rng, step)


@dataclasses.dataclass(frozen=True)
class SimCLR:
  """Static parts of SimCLR: not traced, closed over by the jitted step."""
  encoder: nn.Module
  projector: nn.Module
  probe: nn.Module | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.SimCLRViews
  image_shape: tuple[int, int, int]
  temperature: float
  block_size: int | None


def make(config, *, image_shape: tuple[int, int, int], num_classes: int) -> SimCLR:
  """Build the static parts from a config (see configs/simclr/)."""
  dtype = DTYPES[config.model.dtype]
  kwargs = {"widths": tuple(config.model.widths)} if config.model.encoder == "convnet" else {}
  encoder = registry.make_encoder(config.model.encoder, dtype=dtype, **kwargs)
  hidden = (config.model.proj_hidden_dim,) * (config.model.proj_layers - 1)
  projector = heads.MLPHead(hidden_dims=hidden, out_dim=config.model.proj_dim, dtype=dtype)
  probe = heads.LinearHead(num_classes=num_classes) if config.eval.online_probe else None
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  v = config.views
  views = views_lib.for_dataset(views_lib.SimCLRViews(
      crop_scale=(v.crop_scale_min, v.crop_scale_max), flip_p=v.flip_p, brightness=v.brightness,
      contrast=v.contrast, saturation=v.saturation, hue=v.hue, jitter_p=v.jitter_p,
      grayscale_p=v.grayscale_p, blur_p=(v.blur_p, v.blur_p), solarize_p=(v.solarize_p, v.solarize_p)),
      config.data.name)
  return SimCLR(encoder=encoder, projector=projector, probe=probe, tx=tx, schedule=schedule, views=views,
                image_shape=tuple(image_shape), temperature=config.simclr.temperature,
                block_size=config.simclr.block_size or None)


def init(method: SimCLR, rng: jax.Array) -> SimCLRState:
  """A fresh state; jit it with `out_shardings` to create it already placed on the mesh."""
  k_enc, k_proj, k_probe, k_aug = jax.random.split(rng, 4)
  x = jnp.zeros((2, *method.image_shape), jnp.float32)
  enc_vars = method.encoder.init(k_enc, x, train=False)
  feats = method.encoder.apply(enc_vars, x, train=False)
  proj_vars = method.projector.init(k_proj, feats, train=False)
  params = {"encoder": enc_vars["params"], "projector": proj_vars["params"]}
  if method.probe is not None:
    params["probe"] = method.probe.init(k_probe, feats)["params"]
  batch_stats = {"encoder": enc_vars.get("batch_stats", {}), "projector": proj_vars.get("batch_stats", {})}
  return SimCLRState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=method.tx.init(params), rng=k_aug)


def preprocess(method: SimCLR, images: jax.Array) -> jax.Array:
  """uint8 images -> normalised float32, the un-augmented input used for evaluation."""
  return views_lib.eval_view(images, mean=method.views.mean, std=method.views.std)


def features(state: SimCLRState, images: jax.Array, *, method: SimCLR) -> jax.Array:
  """Encoder features (before the projector) of uint8 images, in inference mode, float32."""
  variables = {"params": state.params["encoder"], "batch_stats": state.batch_stats["encoder"]}
  return method.encoder.apply(variables, preprocess(method, images), train=False).astype(jnp.float32)


def step(state: SimCLRState, batch: dict[str, jax.Array], *, method: SimCLR
         ) -> tuple[SimCLRState, dict[str, jax.Array]]:
  """One SimCLR update on a global batch {"image": uint8 [B,H,W,C], "label": int32 [B]}."""
  key = jax.random.fold_in(state.rng, state.step)
  view1, view2 = views_lib.simclr_views(key, batch["image"], method.views)
  x = jnp.concatenate([view1, view2])  # one BatchNorm over both views, as SimCLR's global BN
  b = view1.shape[0]

  def loss_fn(params):
    feats, enc_upd = method.encoder.apply(
        {"params": params["encoder"], "batch_stats": state.batch_stats["encoder"]}, x, train=True,
        mutable=["batch_stats"])
    z, proj_upd = method.projector.apply(
        {"params": params["projector"], "batch_stats": state.batch_stats["projector"]}, feats, train=True,
        mutable=["batch_stats"])
    z = z.astype(jnp.float32)
    loss = jnp.mean(ntxent(z[:b], z[b:], temperature=method.temperature, block_size=method.block_size))
    aux = {"train/loss": loss}
    total = loss
    if method.probe is not None:
      logits = method.probe.apply({"params": params["probe"]},
                                  jax.lax.stop_gradient(feats[:b].astype(jnp.float32)))
      probe_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      aux["train/probe_loss"] = probe_loss
      aux["train/probe_top1"] = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
      total = total + probe_loss
    stats = {"encoder": enc_upd["batch_stats"], "projector": proj_upd["batch_stats"]}
    return total, (aux, stats)

  (_, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = method.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {**metrics, "train/lr": method.schedule(state.step),
             "train/l2_grads": optax.tree.norm(grads), "train/l2_params": optax.tree.norm(params)}
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state)
  return new_state, metrics
