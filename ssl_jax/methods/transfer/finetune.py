"""Fine-tuning a pretrained encoder with a new linear head on a class-balanced fraction of the labels.

The network is the classifier of `ssl_jax.methods.classifier` (encoder + linear head, with an EMA copy),
its encoder loaded from another run with `--config.init_from=<workdir>` (without it: the same network
trained from scratch, the baseline). Cross-entropy on weak views of the labelled split
`<dataset>.<label_seed>@<labels>`, the split of `class_balanced_indices`. Which parameters move, and how
fast, is one `optax.multi_transform` over the parameter tree:

  head ("classifier")                         the optimizer of `optim` (learning rate lr)
  encoder stages that are trained             the same optimizer, its updates scaled by `pretrained_lr_scale`
                                              (lr x scale) when the encoder comes from `init_from`
  encoder stages below the top `train_stages` `optax.set_to_zero()`: frozen (their BatchNorm statistics too)

`train_stages=0` fine-tunes the whole network; `train_stages=n` only the top n stages of the ConvNet
(`conv<i>_*`/`bn<i>_*`, i >= len(widths) - n). A smaller rate for the pretrained part keeps the
features it learnt while the fresh head settles (Kornblith et al. 2019; Howard & Ruder 2018's
discriminative fine-tuning). With `head_only_steps=n` and a pretrained encoder, the first n steps train
the head alone on the frozen encoder (its parameters and BatchNorm statistics unchanged), then everything
is fine-tuned: LP-FT, which keeps a random head's early gradients from distorting the pretrained
features (Kumar et al. 2022).

Config section `finetune`: `labels` (0 = every label), `label_fraction` (> 0 overrides `labels`: that
fraction of the training set, rounded to a multiple of the classes), `label_seed`, `train_stages`,
`pretrained_lr_scale`, `head_only_steps`, `ema_decay`, `views` (only the weak part is used).
References: Kornblith, Shlens & Le 2019, "Do Better ImageNet Models Transfer Better?", arXiv:1805.08974;
Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features", arXiv:2202.10054;
Chen et al. 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners", arXiv:2006.10029.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import datasets, streams
from ssl_jax.data import views as views_lib
from ssl_jax.methods import classifier, common

SUITES = ("accuracy",)
_STAGE = re.compile(r"^(?:conv|bn)(\d+)_\d+$")


def config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "labels": 0,
      "label_fraction": 0.0,
      "label_seed": 0,
      "train_stages": 0,
      "pretrained_lr_scale": 0.1,
      "head_only_steps": 0,
      "ema_decay": 0.99,
      "views": views_lib.to_config(views_lib.FIXMATCH),
  })


def num_labels(config) -> int:
  """The size of the labelled split: `labels`, or `label_fraction` of the training set (a multiple of the classes)."""
  s = config.finetune
  if not 0.0 <= s.label_fraction <= 1.0 or s.labels < 0:
    raise ValueError(f"finetune.label_fraction must lie in [0, 1] and finetune.labels be >= 0; got "
                     f"{s.label_fraction} and {s.labels}.")
  if not s.label_fraction:
    return int(s.labels)
  info = datasets.dataset_info(config.data.name, tfds_data_dir=config.data.tfds_data_dir or None)
  if not info.train_examples:
    raise ValueError(f"The size of {config.data.name}'s training split is unknown; give finetune.labels "
                     "instead of finetune.label_fraction.")
  per_class = max(1, round(s.label_fraction * info.train_examples / info.num_classes))
  return per_class * info.num_classes


def stream(config) -> streams.LabelledUnlabelled:
  return streams.LabelledUnlabelled(num_labels=num_labels(config), split_seed=config.finetune.label_seed, mu=0)


def _key(entry) -> str:
  return str(getattr(entry, "key", getattr(entry, "name", entry)))


def part_labels(tree, *, num_stages: int, train_stages: int, pretrained: bool):
  """"head", "pretrained" or "frozen" for every leaf of a {"encoder", "classifier"} tree (see module doc)."""
  first_trained = num_stages - train_stages if train_stages else 0

  def label(path, _):
    if _key(path[0]) != "encoder":
      return "head"
    match = _STAGE.match(_key(path[1])) if len(path) > 1 else None
    if train_stages and match and int(match.group(1)) < first_trained:
      return "frozen"
    return "pretrained" if pretrained else "head"

  return jax.tree_util.tree_map_with_path(label, tree)


@dataclasses.dataclass(frozen=True)
class Finetune:
  net: classifier.Classifier
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  views: views_lib.WeakStrongViews
  ema_decay: float
  num_stages: int
  train_stages: int
  pretrained: bool
  head_only_steps: int


def make(config, info) -> Finetune:
  s = config.finetune
  if not 0.0 <= s.ema_decay < 1.0:
    raise ValueError(f"finetune.ema_decay must lie in [0, 1), got {s.ema_decay}.")
  if s.pretrained_lr_scale < 0 or s.head_only_steps < 0:
    raise ValueError(f"finetune.pretrained_lr_scale and finetune.head_only_steps must be >= 0, got "
                     f"{s.pretrained_lr_scale} and {s.head_only_steps}.")
  num_stages = len(config.model.widths)
  if s.train_stages and (config.model.encoder != "convnet" or not 0 < s.train_stages <= num_stages):
    raise ValueError(f"finetune.train_stages={s.train_stages} needs model.encoder=convnet and 1..{num_stages} "
                     f"stages (now {config.model.encoder}); use 0 to fine-tune the whole network.")
  base, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                            total_steps=config.total_steps)
  pretrained = bool(config.init_from)
  labels = lambda params: part_labels(params, num_stages=num_stages, train_stages=s.train_stages,
                                      pretrained=pretrained)
  tx = optax.multi_transform({"head": base,
                              "pretrained": optax.chain(base, optax.scale(s.pretrained_lr_scale)),
                              "frozen": optax.set_to_zero()}, labels)
  return Finetune(net=classifier.make(config, info), tx=tx, schedule=schedule,
                  views=views_lib.from_config(views_lib.WeakStrongViews, s.views, config.data.name),
                  ema_decay=s.ema_decay, num_stages=num_stages, train_stages=s.train_stages,
                  pretrained=pretrained, head_only_steps=s.head_only_steps if pretrained else 0)


def init(m: Finetune, rng: jax.Array, pretrained=None) -> common.TrainState:
  return classifier.init_state(m.net, m.tx, rng, pretrained)


def step(m: Finetune, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"labelled": {"image", "label"} [B]}; frozen stages keep their parameters and statistics."""
  x = views_lib.weak_view(common.step_key(state), batch["labelled"]["image"], m.views)
  labels = batch["labelled"]["label"]
  head_only = state.step < m.head_only_steps  # LP-FT's first phase (never when head_only_steps = 0)

  def loss_fn(params):
    feats, enc_stats = common.apply(m.net.encoder, params["encoder"], state.batch_stats["encoder"], x, train=True)
    feats = jnp.where(head_only, jax.lax.stop_gradient(feats), feats)
    logits = m.net.head.apply({"params": params["classifier"]}, feats).astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, ({"train/labelled_top1": common.top1(logits, labels)}, {"encoder": enc_stats})

  new, metrics = common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)
  if m.head_only_steps:
    keep = lambda old, cur: jnp.where(head_only, old, cur)
    new = new.replace(params={**new.params, "encoder": jax.tree.map(keep, state.params["encoder"],
                                                                    new.params["encoder"])},
                      batch_stats=jax.tree.map(keep, state.batch_stats, new.batch_stats))
  if m.train_stages:
    frozen = part_labels(state.batch_stats, num_stages=m.num_stages, train_stages=m.train_stages,
                         pretrained=m.pretrained)
    new = new.replace(batch_stats=jax.tree.map(lambda f, old, cur: old if f == "frozen" else cur,
                                               frozen, state.batch_stats, new.batch_stats))
  return new.replace(extra={"ema": classifier.update_ema(new, m.ema_decay)}), metrics


def predict(m: Finetune, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  return classifier.predict(m.net, state, images)
