"""The pieces every method's step is made of, as plain functions: import them to write your own loop.

    state = TrainState(step, params, batch_stats, opt_state, rng, extra)   # one pytree for every method
    params, stats = init_parts(modules, keys, x, probe=probe, ...)        # encoder -> heads (+ probe, init_from)
    out, stats = apply(module, params, batch_stats, x, train=True)         # BatchNorm threaded here only
    state, metrics = gradient_step(state, loss_fn, tx=tx, schedule=lr)     # value-and-grad + update + metrics
    state, metrics, out = gradient_step(..., with_outputs=True)            # + arrays loss_fn returns for after
    target = ema(target, online, decay)                                    # optax.incremental_update
    decay = cosine_ema_schedule(0.99, total_steps)(step)                   # BYOL's tau(k), a pure function
    loss, metrics = online_probe(probe, params["probe"], features, labels) # linear head on frozen features

What a method file holds (see `ssl_jax/methods/__init__.py` for the list and the protocol):
`config()` (its own config section with defaults), `SUITES`, `stream(config)`, `make(config, info)`,
`init(m, rng, pretrained=None)`, a pure `step(m, state, batch)` and `predict(m, state, inputs)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.data import views as views_lib
from ssl_jax.evaluation.online_probe import OnlineProbe, probe_loss_and_accuracy
from ssl_jax.models import registry

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TrainState(flax.struct.PyTreeNode):
  """Everything that changes during training, for every method.

  Attributes:
    step: int32 scalar, the number of updates done.
    params: the trained parameters by part, e.g. {"encoder", "projector", "probe"}: the only tree the
      optimizer differentiates and updates.
    batch_stats: BatchNorm statistics by part (the same names as `params`; {} for parts without BN).
    opt_state: the optimizer's state for `params`.
    rng: a raw uint32 PRNG key; step k draws its randomness from `fold_in(rng, k)`.
    extra: what a method keeps beside them, by name: target networks, an EMA model, a queue, a centre,
      per-class thresholds. Never differentiated; checkpointed with the rest.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  extra: Any = flax.struct.field(default_factory=dict)


def step_key(state: TrainState) -> jax.Array:
  """The PRNG key of the current step: `fold_in(state.rng, state.step)` (same on resume)."""
  return jax.random.fold_in(state.rng, state.step)


def init_module(module: nn.Module, key: jax.Array, *args, **kwargs) -> tuple[Any, Any]:
  """(params, batch_stats) of a fresh `module` called on `args` in inference mode ({} if it has no BN)."""
  variables = module.init(key, *args, train=False, **kwargs)
  return variables["params"], variables.get("batch_stats", {})


def init_chain(modules: dict[str, nn.Module], keys: Sequence[jax.Array], x: jax.Array) -> tuple[dict, dict, Any]:
  """Fresh (params, batch_stats) of `modules` applied one after another to `x` (encoder -> projector ->
  predictor ...), keyed by their names, each initialised with its key; and the first module's output (the
  features, e.g. for an online probe)."""
  params, batch_stats, features = {}, {}, None
  for (name, module), key in zip(modules.items(), keys, strict=True):
    params[name], batch_stats[name] = init_module(module, key, x)
    x, _ = apply(module, params[name], batch_stats[name], x, train=False)
    features = x if features is None else features
  return params, batch_stats, features


def init_parts(modules: dict[str, nn.Module], keys: Sequence[jax.Array], x: jax.Array, *,
               probe: OnlineProbe | None = None, probe_key: jax.Array | None = None,
               pretrained: dict | None = None) -> tuple[dict, dict]:
  """The fresh (params, batch_stats) of a method's parts: `init_chain(modules, keys, x)`, an online probe on
  the first module's features (as `params["probe"]`, when `probe` is given) and `init_from`'s parts loaded
  over them (`load_pretrained`)."""
  params, batch_stats, features = init_chain(modules, keys, x)
  if probe is not None:
    params["probe"] = probe.init(probe_key, features)["params"]
  return load_pretrained(params, batch_stats, pretrained)


def apply(module: nn.Module, params: Any, batch_stats: Any, *args, train: bool,
          rngs: dict[str, jax.Array] | None = None, **kwargs) -> tuple[Any, Any]:
  """Call `module`; returns (output, batch_stats), the statistics updated when training.

  The one place BatchNorm statistics are threaded: in training mode the module runs with its
  "batch_stats" collection mutable and the updated statistics come back; in inference mode (or for a
  module without BatchNorm) the statistics come back unchanged.
  """
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
  if train and batch_stats:
    out, updates = module.apply(variables, *args, train=True, mutable=["batch_stats"], rngs=rngs, **kwargs)
    return out, updates["batch_stats"]
  return module.apply(variables, *args, train=train, rngs=rngs, **kwargs), batch_stats


def gradient_step(state: TrainState, loss_fn: Callable[[Any], tuple[jax.Array, tuple]], *,
                  tx: optax.GradientTransformation, schedule: optax.Schedule | None = None,
                  with_outputs: bool = False):
  """One optimizer update of `state.params` on `loss_fn`, and the standard metrics.

  Args:
    state: the current state.
    loss_fn: `params -> (total_loss, (metrics, batch_stats))`: the scalar to minimise, the method's own
      metrics (e.g. "train/loss" for the method's loss without an online probe's), and the updated
      BatchNorm statistics (from `apply`). With `with_outputs`, `(total_loss, (metrics, batch_stats,
      outputs))`: `outputs` are arrays the method needs after the update (the new keys of a queue, the
      embeddings of a memory bank, the predictions behind a per-class status), returned without gradient.
    tx: the optimizer.
    schedule: the learning-rate schedule, logged as "train/lr".
    with_outputs: whether `loss_fn` returns outputs (and this function returns them too).
  Returns:
    (state with new params, opt_state, batch_stats and step + 1; metrics with "train/loss" (the total
    when the method reports none), "train/lr", "train/l2_grads" and "train/l2_params"), and with
    `with_outputs` a third item, the outputs of `loss_fn` (stop-gradient).
  """
  (total, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics, batch_stats, *outputs = aux
  if len(outputs) != int(with_outputs):
    raise ValueError("gradient_step: loss_fn must return (loss, (metrics, batch_stats, outputs)) exactly when "
                     "with_outputs=True, and (loss, (metrics, batch_stats)) otherwise.")
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"train/loss": total, **metrics, "train/l2_grads": optax.tree.norm(grads),
             "train/l2_params": optax.tree.norm(params)}
  if schedule is not None:
    metrics["train/lr"] = schedule(state.step)
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
  if with_outputs:
    return new_state, metrics, jax.lax.stop_gradient(outputs[0])
  return new_state, metrics


def two_view_step(m: Any, state: TrainState, batch: dict,
                  pair_loss: Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, dict]]):
  """One update of an encoder + projector on two augmented views of each image (SimCLR's layout).

  The views of global batch {"image": uint8 [B, H, W, C], "label": int32 [B]} go through the encoder and
  projector together (one BatchNorm over 2B rows, as SimCLR's global BN); `pair_loss(z1, z2, labels)`
  gets the float32 projections of view 1 and view 2, [B, d] each, and returns (loss, metrics). The online
  probe reads view 1's stop-gradient features. Used by SimCLR, SupCon, Barlow Twins and VICReg, which differ
  only in `pair_loss`.

  Args:
    m: the method, with `encoder`, `projector`, `probe` (or None), `views`, `tx` and `schedule`.
    state: the current state; params and batch_stats hold "encoder" and "projector" (and "probe").
    batch: the global batch.
    pair_loss: `(z1, z2, labels) -> (loss, metrics)`; "train/loss" is set to `loss`.
  Returns:
    `gradient_step`'s (state, metrics).
  """
  view1, view2 = views_lib.simclr_views(step_key(state), batch["image"], m.views)
  x = jnp.concatenate([view1, view2])
  b = view1.shape[0]

  def loss_fn(params):
    feats, enc_stats = apply(m.encoder, params["encoder"], state.batch_stats["encoder"], x, train=True)
    z, proj_stats = apply(m.projector, params["projector"], state.batch_stats["projector"], feats, train=True)
    z = z.astype(jnp.float32)
    loss, metrics = pair_loss(z[:b], z[b:], batch["label"])
    probe_loss, probe_metrics = online_probe(m.probe, params.get("probe"), feats[:b], batch["label"])
    return loss + probe_loss, ({"train/loss": loss, **metrics, **probe_metrics},
                               {"encoder": enc_stats, "projector": proj_stats})

  return gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def encoder_features(m: Any, state: TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """`predict` of a method whose representation is its encoder's output: {"features": float32 [N, D]}.

  `m` has `encoder` and `views` (for the normalisation); the state holds the "encoder" part.
  """
  return {"features": encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"], images,
                             mean=m.views.mean, std=m.views.std)}


def ema(target: Any, online: Any, decay: jax.Array | float) -> Any:
  """Exponential moving average: target <- decay * target + (1 - decay) * online, leaf by leaf.

  `optax.incremental_update(online, target, step_size=1 - decay)`; integer leaves (counters) are
  copied from `online`.
  """
  def one(new, old):
    if not jnp.issubdtype(jnp.asarray(new).dtype, jnp.floating):
      return new
    return optax.incremental_update(new, old, step_size=1.0 - decay)

  return jax.tree.map(one, online, target)


def cosine_ema_schedule(base: float, total_steps: int, final: float = 1.0) -> optax.Schedule:
  """BYOL's decay schedule: tau(k) = final - (final - base) (cos(pi k / K) + 1) / 2, k = 0..K.

  Written as `1 - optax.cosine_decay_schedule(1 - base, K, alpha)`, so it is a pure function of the step:
  tau(0) = base, tau(K) = final. References: Grill et al. 2020, arXiv:2006.07733, section 3.2.
  """
  if not 0.0 <= base <= final <= 1.0:
    raise ValueError(f"An EMA schedule needs 0 <= base <= final <= 1, got base={base}, final={final}.")
  if base == 1.0:
    return optax.constant_schedule(1.0)
  decay = optax.cosine_decay_schedule(1.0 - base, max(int(total_steps), 1), alpha=(1.0 - final) / (1.0 - base))
  return lambda step: 1.0 - decay(step)


def online_probe(probe: OnlineProbe | None, params: Any, features: jax.Array,
                 labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The online linear probe's loss on `stop_gradient(features)` and its metrics.

  Returns (0, {}) when there is no probe. Labels reach only the probe's weights: `OnlineProbe` stops the
  gradient at its input, so the encoder's gradient is the method's own.
  """
  if probe is None:
    return jnp.zeros((), jnp.float32), {}
  logits = probe.apply({"params": params}, features)
  loss, top1 = probe_loss_and_accuracy(logits, labels)
  return loss, {"train/probe_loss": loss, "train/probe_top1": top1}


def make_encoder(config, info) -> nn.Module:
  """The encoder named by `config.model.encoder`, with the model fields that apply to it."""
  model = config.model
  kwargs: dict[str, Any] = {"dtype": DTYPES[model.dtype]}
  if model.encoder in ("convnet", "mlp"):
    kwargs["widths"] = tuple(model.widths)
  if model.encoder.startswith("vit"):
    kwargs["patch_size"] = model.patch_size
    kwargs["image_size"] = int(info.image_shape[0])
  return registry.make_encoder(model.encoder, **kwargs)


def normalizer(config) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) per channel of the run's dataset, for `views_lib.eval_view` and the presets."""
  from ssl_jax.data.augment import mean_std  # pylint: disable=g-import-not-at-top
  return mean_std(config.data.name)


def encode(encoder: nn.Module, params: Any, batch_stats: Any, images: jax.Array, *,
           mean: tuple[float, ...], std: tuple[float, ...]) -> jax.Array:
  """Inference-mode float32 features of uint8 images, normalised like the training views."""
  x = views_lib.eval_view(images, mean=mean, std=std)
  out, _ = apply(encoder, params, batch_stats, x, train=False)
  return out.astype(jnp.float32)


def load_pretrained(params: dict, batch_stats: dict, pretrained: dict | None) -> tuple[dict, dict]:
  """`params` and `batch_stats` with the parts in `pretrained` replaced by its arrays.

  Args:
    params, batch_stats: fresh trees by part name ({"encoder": ..., "classifier": ...}).
    pretrained: None, or {"params": {part: tree}, "batch_stats": {part: tree}} from another run
      (`--config.init_from`); every part it holds must exist here with the same structure and shapes.
  Raises:
    ValueError: a part is missing here or its shapes differ (say which).
  """
  if not pretrained:
    return params, batch_stats
  out = {"params": dict(params), "batch_stats": dict(batch_stats)}
  for kind in ("params", "batch_stats"):
    for part, tree in pretrained.get(kind, {}).items():
      if part not in out[kind]:
        if not jax.tree.leaves(tree):
          continue
        raise ValueError(f"The run given by init_from has a part `{part}` that this method does not have "
                         f"(its parts: {', '.join(sorted(out[kind]))}); use init_params=encoder.")
      mine = jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype).name), out[kind][part])
      theirs = jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype).name), tree)
      if jax.tree.structure(mine) != jax.tree.structure(theirs) or mine != theirs:
        raise ValueError(f"The `{part}` {kind} of the run given by init_from do not match this model (another "
                         "encoder, widths or image size); start from a run with the same model config.")
      out[kind][part] = tree
  return out["params"], out["batch_stats"]


def top1(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of rows whose argmax is the label (a metric: no gradient)."""
  return jax.lax.stop_gradient(jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32)))
