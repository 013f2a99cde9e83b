"""Deep multiple-instance learning: one label per bag, none per instance, every pooling of Ilse et al. 2018.

Every instance of a padded bag is encoded, h_i = f(x_i) (padded slots are zeroed before the encoder and
selected out of every pooling with `jnp.where`, so they get exactly zero weight and zero gradient), and
the bag's logit comes from one of seven poolings (`mil.pooling`):

| pooling | bag logit | per-instance output (`attention`) |
| --- | --- | --- |
| `instance_max` | max_i s_i, s_i = w^T h_i + c (mi-Net with max: max of the instance probabilities) | sigmoid(s_i) |
| `instance_mean` | logit( (1/n) sum_i sigmoid(s_i) ) (mi-Net with mean of the instance probabilities) | sigmoid(s_i) |
| `embedding_max` | W max_i h_i + c (MI-Net, max over each feature) | none |
| `embedding_mean` | W (1/n) sum_i h_i + c | none |
| `embedding_lse` | W (1/r) log (1/n) sum_i exp(r h_i) + c (log-sum-exp, r = `lse_r`) | none |
| `attention` | W sum_i a_i h_i + c, a = softmax_i(w^T tanh(V h_i)) | a_i |
| `gated_attention` | W sum_i a_i h_i + c, a = softmax_i(w^T (tanh(V h_i) * sigmoid(U h_i))) | a_i |

The bag loss is the sigmoid cross-entropy of the bag logit. logit(mean p) of `instance_mean` is computed
in log space, log p̄ - log(1 - p̄) with log p̄ = log mean_i exp(log sigmoid(s_i)), so it never saturates.

CLAM's instance-level clustering (Lu et al. 2021, "Data-efficient and weakly supervised computational
pathology on whole-slide images", Nature Biomedical Engineering 5:555, `inst_eval`), with
`mil.clam_weight` w > 0 and an attention pooling: in each bag, the `clam_top_k` most attended real
instances are pseudo-labelled 1 and the k least attended 0, and a two-way instance classifier of the bag's
class (one per bag class) learns them with cross-entropy on h_i; the total is
(1 - w) L_bag + w L_inst (CLAM's bag_weight is 1 - w, 0.7 by default there, so w = 0.3).

Training can shift each instance at random by up to `mil.augment_shift` pixels (zero fill) and mirror it with
probability `mil.augment_flip`, drawn per instance from the step's key, and drop out the attention's hidden
units (`mil.attention_dropout`); evaluation sees the instances as they are.

Batches hold many bags at once (`streams.Bags`: MNIST-bags on any in-memory dataset, or
`streams.FolderBags`: patient folders of images), not one bag per step as the reference code. The
instance encoder must have no BatchNorm (padding would enter its statistics): `lenet_mil` (the paper's)
or `mlp`. Predictions: {"bag_logits": [B], "attention": [B, n]} (no `attention` for the embedding
poolings), judged by the `bags` suite: bag AUC and accuracy, the instance AUC of `attention` when the
instance labels are known, and `attention.png`.

References: Ilse, Tomczak & Welling 2018, arXiv:1802.04712; Wang et al. 2018, "Revisiting multiple
instance neural networks", Pattern Recognition 74 (mi-Net, MI-Net); Lu et al. 2021, arXiv:2004.09666.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import augment
from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.losses.mil import attention_pool, clam_instance_loss, mil_logsumexp, mil_max, mil_mean
from ssl_jax.methods import common
from ssl_jax.models.mil import GatedAttention

SUITES = ("bags",)

POOLINGS = ("instance_max", "instance_mean", "embedding_max", "embedding_mean", "embedding_lse", "attention",
            "gated_attention")
ATTENTION_POOLINGS = ("attention", "gated_attention")


def config() -> ml_collections.ConfigDict:
  """The `mil` section: the bags (drawn MNIST-bags style, or a folder of patients) and the model."""
  return ml_collections.ConfigDict({
      "pooling": "gated_attention",  # one of POOLINGS
      "attention_dim": 128,          # width of V (and U) of the attention
      "lse_r": 1.0,                  # sharpness r of embedding_lse
      "clam_weight": 0.0,            # w of CLAM's instance clustering loss; 0 disables
      "clam_top_k": 1,               # instances pseudo-labelled at each end of the attention ranking
      "attention_dropout": 0.0,      # dropout on the attention's hidden units while training; 0 disables
      # Training-time augmentation of each instance, drawn independently per instance on device:
      "augment_shift": 0,            # random translation by up to this many pixels (zero fill); 0 disables
      "augment_flip": 0.0,           # probability of a left-right mirror
      # Bags drawn from data.name (MNIST-bags, Ilse et al. 2018):
      "target_class": 9,
      "mean_bag_size": 10.0,
      "std_bag_size": 2.0,
      "train_bags": 500,
      "test_bags": 1000,
      "max_bag_size": 0,             # 0: ceil(mean + 5 std); a folder: 0 = the largest patient
      "bag_seed": 0,
      "positive_fraction": 0.0,      # 0: bags drawn uniformly (the reference code); f: that share positive
      # Bags from folders (data.name=folder_bags, data.data_dir=<root>/<patient_id>/*.png + labels.csv):
      "test_dir": "",                # a second root for the test patients; "" splits data_dir's patients
      "test_fraction": 0.25,         # the share of data_dir's patients held out for test (seeded by bag_seed)
      # (their images are resized to data.image_size and converted to data.channels)
  })


def stream(config) -> streams.Bags | streams.FolderBags:
  s = config.mil
  if config.data.name == streams.FOLDER_BAGS:
    return streams.FolderBags(root=config.data.data_dir, test_root=s.test_dir, test_fraction=s.test_fraction,
                              image_size=config.data.image_size, channels=config.data.channels,
                              split_seed=s.bag_seed,
                              max_size=s.max_bag_size)
  return streams.Bags(target_class=s.target_class, mean_size=s.mean_bag_size, std_size=s.std_bag_size,
                      num_train_bags=s.train_bags, num_test_bags=s.test_bags, max_size=s.max_bag_size,
                      bag_seed=s.bag_seed, positive_fraction=s.positive_fraction)


@dataclasses.dataclass(frozen=True)
class MIL:
  pooling: str
  encoder: nn.Module
  attention: nn.Module | None
  head: nn.Module                 # Dense(1): on the pooled embedding, or on each instance (instance_*)
  instance_classifier: nn.Module | None  # CLAM: Dense(2 classes x 2) on instance embeddings
  clam_weight: float
  clam_top_k: int
  lse_r: float
  augment_shift: int
  augment_flip: float
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]


def make(config, info) -> MIL:
  s = config.mil
  if s.pooling not in POOLINGS:
    raise ValueError(f"mil.pooling={s.pooling!r} is not a MIL pooling; use one of {', '.join(POOLINGS)}.")
  if s.clam_weight and s.pooling not in ATTENTION_POOLINGS:
    raise ValueError(f"CLAM's instance loss ranks instances by attention, and mil.pooling={s.pooling} has none; "
                     "use mil.pooling=attention or gated_attention, or mil.clam_weight=0.")
  if not 0.0 <= s.clam_weight < 1.0 or s.clam_top_k < 1:
    raise ValueError(f"mil.clam_weight must be in [0, 1) and mil.clam_top_k >= 1; got {s.clam_weight} and "
                     f"{s.clam_top_k}.")
  if s.lse_r <= 0:
    raise ValueError(f"mil.lse_r must be > 0, got {s.lse_r}.")
  if s.augment_shift < 0 or not 0.0 <= s.augment_flip <= 1.0 or not 0.0 <= s.attention_dropout < 1.0:
    raise ValueError(f"mil.augment_shift must be >= 0, mil.augment_flip in [0, 1] and mil.attention_dropout in "
                     f"[0, 1); got {s.augment_shift}, {s.augment_flip} and {s.attention_dropout}.")
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  if config.data.name == streams.FOLDER_BAGS:
    mean, std = (0.5,) * info.image_shape[-1], (0.25,) * info.image_shape[-1]
  else:
    mean, std = common.normalizer(config)
  attention = (GatedAttention(s.attention_dim, gated=s.pooling == "gated_attention", dropout=s.attention_dropout)
               if s.pooling in ATTENTION_POOLINGS else None)
  return MIL(pooling=s.pooling, encoder=common.make_encoder(config, info), attention=attention, head=nn.Dense(1),
             instance_classifier=nn.Dense(4) if s.clam_weight else None, clam_weight=float(s.clam_weight),
             clam_top_k=int(s.clam_top_k), lse_r=float(s.lse_r),
             augment_shift=int(s.augment_shift), augment_flip=float(s.augment_flip), tx=tx, schedule=schedule,
             image_shape=tuple(info.image_shape), mean=mean, std=std)


def init(m: MIL, rng: jax.Array, pretrained=None) -> common.TrainState:
  k_enc, k_att, k_head, k_inst, k_state = jax.random.split(rng, 5)
  x = jnp.zeros((2, *m.image_shape), jnp.float32)
  enc_params, enc_stats = common.init_module(m.encoder, k_enc, x)
  if jax.tree.leaves(enc_stats):
    raise ValueError("model.encoder has BatchNorm, which would mix padded instances into its statistics; "
                     "use model.encoder=lenet_mil or mlp for multiple-instance learning.")
  h, _ = common.apply(m.encoder, enc_params, enc_stats, x, train=False)
  params = {"encoder": enc_params, "head": m.head.init(k_head, h)["params"]}
  if m.attention is not None:
    params["attention"] = m.attention.init(k_att, h[None])["params"]
  if m.instance_classifier is not None:
    params["instance_classifier"] = m.instance_classifier.init(k_inst, h)["params"]
  params, batch_stats = common.load_pretrained(params, {}, pretrained)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                           opt_state=m.tx.init(params), rng=k_state)


def normalize(m: MIL, instances: jax.Array, key: jax.Array | None = None) -> jax.Array:
  """uint8 instances [B, n, H, W, C] -> normalised float32, as the encoder sees them.

  With a `key` (training), each instance is first shifted by up to `augment_shift` pixels in each direction
  (zero fill, the digits' background) and mirrored with probability `augment_flip`, each independently.
  """
  b, n = instances.shape[:2]
  x = augment.to_float(instances.reshape(b * n, *instances.shape[2:]))
  if key is not None and m.augment_shift:
    key, sub = jax.random.split(key)
    x = augment.random_crop_pad(sub, x, pad_fraction=m.augment_shift / x.shape[1], mode="constant")
  if key is not None and m.augment_flip:
    x = augment.random_flip(key, x, p=m.augment_flip)
  x = views_lib.eval_view(x, mean=m.mean, std=m.std)
  return x.reshape(b, n, *x.shape[1:])


def forward(m: MIL, params, x: jax.Array, mask: jax.Array, dropout_rng: jax.Array | None = None
            ) -> dict[str, jax.Array]:
  """The model on normalised float instances x [B, n, H, W, C] with mask [B, n] (True = real).

  Returns {"bag_logits": [B], "embeddings": [B, n, d], "scores": [B, n] (attention logits, instance
  logits, or zeros for the embedding poolings), and "attention": [B, n] where the pooling has one}.
  Padded slots are zeroed before the encoder, so nothing they hold reaches any output or gradient.
  `dropout_rng` (training) turns on the attention's dropout when `mil.attention_dropout` > 0.
  """
  mask = jnp.asarray(mask).astype(bool)
  b, n = mask.shape
  x = jnp.where(mask.reshape(b, n, *(1,) * (x.ndim - 2)), x, 0)
  h = m.encoder.apply({"params": params["encoder"]}, x.reshape(b * n, *x.shape[2:]), train=True)
  h = h.astype(jnp.float32).reshape(b, n, -1)
  out = {"embeddings": h}
  head = lambda z: m.head.apply({"params": params["head"]}, z)[..., 0]
  if m.pooling.startswith("instance_"):
    s = head(h)                                              # instance logits [B, n]
    if m.pooling == "instance_max":
      logits = mil_max(s, mask)
    else:                                                    # logit of the mean instance probability
      logits = mil_logsumexp(jax.nn.log_sigmoid(s), mask) - mil_logsumexp(jax.nn.log_sigmoid(-s), mask)
    out.update(scores=s, attention=jnp.where(mask, jax.nn.sigmoid(s), 0.0))
  elif m.pooling in ATTENTION_POOLINGS:
    s = m.attention.apply({"params": params["attention"]}, h, deterministic=dropout_rng is None,
                          rngs={"dropout": dropout_rng} if dropout_rng is not None else None)
    pooled, weights = attention_pool(h, s, mask)
    logits = head(pooled)
    out.update(scores=s, attention=weights)
  else:
    pooled = {"embedding_max": mil_max, "embedding_mean": mil_mean,
              "embedding_lse": lambda v, k: mil_logsumexp(v, k, r=m.lse_r)}[m.pooling](h, mask)
    logits = head(pooled)
    out["scores"] = jnp.zeros(mask.shape, jnp.float32)
  out["bag_logits"] = logits
  return out


def loss(m: MIL, params, x: jax.Array, mask: jax.Array, labels: jax.Array, dropout_rng: jax.Array | None = None
         ) -> tuple[jax.Array, dict]:
  """The training loss of a batch of bags (normalised instances x) and its metrics.

    L = (1 - w) mean_b BCE(bag_logit_b, y_b) + w mean_b L_inst,b   (w = clam_weight; L = L_bag when w = 0)
  """
  out = forward(m, params, x, mask, dropout_rng)
  y = labels.astype(jnp.float32)
  bag_loss = optax.sigmoid_binary_cross_entropy(out["bag_logits"], y).mean()
  acc = jax.lax.stop_gradient(jnp.mean(((out["bag_logits"] > 0) == (y > 0.5)).astype(jnp.float32)))
  metrics = {"train/bag_loss": bag_loss, "train/bag_accuracy": acc}
  total = bag_loss
  if m.instance_classifier is not None:
    inst_logits = m.instance_classifier.apply({"params": params["instance_classifier"]}, out["embeddings"])
    inst_logits = inst_logits.reshape(*mask.shape, 2, 2)     # [B, n, bag class, instance class]
    own = jnp.take_along_axis(inst_logits, labels.astype(jnp.int32)[:, None, None, None], axis=2)[:, :, 0]
    inst_loss = clam_instance_loss(out["scores"], own, mask, top_k=m.clam_top_k).mean()
    total = (1.0 - m.clam_weight) * bag_loss + m.clam_weight * inst_loss
    metrics["train/instance_loss"] = inst_loss
  return total, {"train/loss": total, **metrics}


def step(m: MIL, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"instances": uint8 [B, n, H, W, C], "mask": bool [B, n], "label": int32 [B]}."""
  k_aug, k_drop = jax.random.split(common.step_key(state))
  x = normalize(m, batch["instances"], k_aug if (m.augment_shift or m.augment_flip) else None)
  dropout = m.attention is not None and m.attention.dropout > 0

  def loss_fn(params):
    total, metrics = loss(m, params, x, batch["mask"], batch["label"], k_drop if dropout else None)
    return total, (metrics, state.batch_stats)

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: MIL, state: common.TrainState, inputs) -> dict[str, jax.Array]:
  """{"bag_logits": [B]} and, for the attention and instance poolings, {"attention": [B, n]}."""
  out = forward(m, state.params, normalize(m, inputs["instances"]), inputs["mask"])
  return {k: out[k] for k in ("bag_logits", "attention") if k in out}
