"""Attention-based deep multiple-instance learning (Ilse, Tomczak & Welling 2018, arXiv:1802.04712).

One label per bag, none per instance. Every instance of a padded bag is encoded (h_i = f(x_i)), scored by
the gated attention s_i = w^T (tanh(V h_i) * sigmoid(U h_i)), the bag is the attention-weighted mean
z = sum_i softmax(s)_i h_i over its real instances (padding gets weight exactly 0), and a linear layer on z
gives the bag's logit, trained with the sigmoid cross-entropy. Batches hold many bags at once
(`streams.Bags`: bags of different sizes padded with a mask), not one bag per step as the reference code.

The instance encoder must have no BatchNorm (padded instances would enter its statistics): `lenet_mil`
(the paper's) or `mlp`. Predictions: {"bag_logits": [B], "attention": [B, n]}, judged by the `bags` suite
(bag AUC and accuracy, and the attention's instance AUC, since the instance labels are known here).

Config section `gated_attention_mil`: the bags (`target_class`, `mean_bag_size`, `std_bag_size`,
`train_bags`, `test_bags`, `max_bag_size`, `bag_seed`) and the attention (`attention_dim`, `gated`).
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
from ssl_jax.losses.mil import attention_pool
from ssl_jax.methods import common
from ssl_jax.models.mil import GatedAttention

SUITES = ("bags",)


def config() -> ml_collections.ConfigDict:
  """The `gated_attention_mil` section: MNIST-bags' construction and the paper's attention."""
  return ml_collections.ConfigDict({
      "target_class": 9,
      "mean_bag_size": 10.0,
      "std_bag_size": 2.0,
      "train_bags": 500,
      "test_bags": 1000,
      "max_bag_size": 0,       # 0: ceil(mean + 5 std)
      "bag_seed": 0,
      "attention_dim": 128,
      "gated": True,
  })


def stream(config) -> streams.Bags:
  s = config.gated_attention_mil
  return streams.Bags(target_class=s.target_class, mean_size=s.mean_bag_size, std_size=s.std_bag_size,
                      num_train_bags=s.train_bags, num_test_bags=s.test_bags, max_size=s.max_bag_size,
                      bag_seed=s.bag_seed)


@dataclasses.dataclass(frozen=True)
class AttentionMIL:
  encoder: nn.Module
  attention: nn.Module
  classifier: nn.Module
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]


def make(config, info) -> AttentionMIL:
  s = config.gated_attention_mil
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  return AttentionMIL(encoder=common.make_encoder(config, info), attention=GatedAttention(s.attention_dim, s.gated),
                      classifier=nn.Dense(1), tx=tx, schedule=schedule, image_shape=tuple(info.image_shape),
                      mean=mean, std=std)


def init(m: AttentionMIL, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_att, k_cls, k_aug = jax.random.split(rng, 4)
  x = jnp.zeros((2, *m.image_shape), jnp.float32)
  enc_params, enc_stats = common.init_module(m.encoder, k_enc, x)
  if jax.tree.leaves(enc_stats):
    raise ValueError("model.encoder has BatchNorm, which would mix padded instances into its statistics; "
                     "use model.encoder=lenet_mil or mlp for multiple-instance learning.")
  h, _ = common.apply(m.encoder, enc_params, enc_stats, x, train=False)
  params = {"encoder": enc_params, "attention": m.attention.init(k_att, h[None])["params"],
            "classifier": m.classifier.init(k_cls, h)["params"]}
  params, batch_stats = common.load_pretrained(params, {}, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_aug)


def bag_logits(m: AttentionMIL, params, instances: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(bag logits [B], attention weights [B, n]) of uint8 instances [B, n, H, W, C] with mask [B, n]."""
  bags, n = mask.shape
  x = views_lib.eval_view(instances.reshape(bags * n, *instances.shape[2:]), mean=m.mean, std=m.std)
  h = m.encoder.apply({"params": params["encoder"]}, x, train=True).astype(jnp.float32).reshape(bags, n, -1)
  scores = m.attention.apply({"params": params["attention"]}, h)
  pooled, weights = attention_pool(h, scores, mask)
  return m.classifier.apply({"params": params["classifier"]}, pooled)[:, 0], weights


def step(m: AttentionMIL, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"instances": uint8 [B, n, H, W, C], "mask": bool [B, n], "label": int32 [B]}."""
  labels = batch["label"].astype(jnp.float32)

  def loss_fn(params):
    logits, _ = bag_logits(m, params, batch["instances"], batch["mask"])
    loss = optax.sigmoid_binary_cross_entropy(logits, labels).mean()
    acc = jax.lax.stop_gradient(jnp.mean(((logits > 0) == (labels > 0.5)).astype(jnp.float32)))
    return loss, ({"train/bag_accuracy": acc}, state.batch_stats)

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: AttentionMIL, state: common.TrainState, inputs) -> dict[str, jax.Array]:
  logits, weights = bag_logits(m, state.params, inputs["instances"], inputs["mask"])
  return {"bag_logits": logits, "attention": weights}
