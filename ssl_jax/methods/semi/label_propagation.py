"""Label propagation over a kNN graph of the training images (Zhou et al. 2004, "Learning with local and
global consistency"), with the given labels clamped (Zhu & Ghahramani 2002).

Nodes are the N training images, each a unit feature vector f_i: its normalised raw pixels (`features=pixels`)
or the frozen encoder of another run (`features=encoder`, `--config.init_from=W`). The graph links each node to
its k most similar nodes, with affinities a_ij = max(0, f_i . f_j)^gamma (Iscen et al. 2019), made symmetric,
W = A + A^T, and normalised, S = D^-1/2 W D^-1/2 with D the degrees. From the labels Y (one-hot rows for the
labelled split, zero rows otherwise) every iteration spreads the labels one hop:

  F <- alpha S F + (1 - alpha) Y,    then F_i <- Y_i on the labelled nodes (they keep their labels),

which converges to the closed form (1 - alpha)(I - alpha S)^-1 Y of Zhou et al. without clamping.

One run does it in steps, so it is resumable and sharded like every method (`streams.Nodes` gives the nodes in
blocks of B): pass 1 (`num_blocks` steps) computes and stores the features of each block; pass 2 computes each
block's k nearest neighbours among all nodes (the O(N^2 d) part, split over the devices by the block's rows, as
the kNN evaluation is); every later step is one propagation iteration over the whole graph. The train loss is
the propagation residual mean_i |F_new - F|_1 (0 in the first two passes). Images outside the graph, such as
the test split, are labelled inductively (Delalleau et al. 2005): by the affinity-weighted F of their k
nearest nodes.

Config section `label_propagation`: `labels`, `label_seed`, `features`, `k`, `gamma`, `alpha`, `clamp`.
`total_steps` = 2 x num_blocks + iterations, with num_blocks = ceil(N / batch_size).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.data import streams
from ssl_jax.data import views as views_lib
from ssl_jax.methods import common

SUITES = ("accuracy",)
FEATURES = ("pixels", "encoder")


def config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "labels": 250,
      "label_seed": 0,
      "features": "pixels",   # or "encoder": the frozen encoder of the run given by init_from
      "k": 10,
      "gamma": 3.0,
      "alpha": 0.99,
      "clamp": True,
  })


def stream(config) -> streams.Nodes:
  s = config.label_propagation
  return streams.Nodes(num_labels=s.labels, split_seed=s.label_seed)


@dataclasses.dataclass(frozen=True)
class LabelPropagation:
  encoder: nn.Module | None
  num_nodes: int
  num_blocks: int
  block: int
  num_classes: int
  dim: int
  k: int
  gamma: float
  alpha: float
  clamp: bool
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  dtype: jnp.dtype = jnp.float32  # of the similarity matmuls (model.dtype)

  @property
  def padded_nodes(self) -> int:
    return self.num_blocks * self.block


def make(config, info) -> LabelPropagation:
  s = config.label_propagation
  if s.features not in FEATURES:
    raise ValueError(f"label_propagation.features is one of {', '.join(FEATURES)}, got {s.features!r}.")
  if s.features == "encoder" and not config.init_from:
    raise ValueError("label_propagation.features=encoder propagates over the features of another run's encoder; "
                     "give that run with --config.init_from=WORKDIR (or use features=pixels).")
  if s.k < 1 or s.gamma <= 0 or not 0.0 < s.alpha < 1.0:
    raise ValueError(f"label_propagation needs k >= 1, gamma > 0 and 0 < alpha < 1; got k={s.k}, gamma={s.gamma}, "
                     f"alpha={s.alpha}.")
  n = int(info.train_examples)
  blocks = streams.num_node_blocks(n, config.batch_size)
  if config.total_steps < 2 * blocks + 1:
    raise ValueError(f"label_propagation needs 2 passes of {blocks} steps over the {n} nodes (batch_size "
                     f"{config.batch_size}) before it propagates: set total_steps to {2 * blocks} + the number of "
                     f"propagation iterations (at least {2 * blocks + 1}).")
  mean, std = common.normalizer(config)
  encoder = common.make_encoder(config, info) if s.features == "encoder" else None
  dim = encoder.feature_dim if encoder is not None else int(jnp.prod(jnp.asarray(info.image_shape)))
  return LabelPropagation(encoder=encoder, num_nodes=n, num_blocks=blocks, block=config.batch_size,
                          num_classes=info.num_classes, dim=dim, k=min(int(s.k), n - 1), gamma=float(s.gamma),
                          alpha=float(s.alpha), clamp=bool(s.clamp), image_shape=tuple(info.image_shape),
                          mean=mean, std=std, dtype=common.DTYPES[config.model.dtype])


def init(m: LabelPropagation, rng: jax.Array, pretrained=None) -> common.TrainState:
  """Empty node arrays (filled by the first two passes) and, with `features=encoder`, the frozen encoder."""
  n, c = m.padded_nodes, m.num_classes
  extra = {"features": jnp.zeros((n, m.dim), jnp.bfloat16),
           "valid": jnp.zeros((n,), jnp.bool_),
           "labels": jnp.zeros((n, c), jnp.float32),
           "labelled": jnp.zeros((n,), jnp.bool_),
           "neighbors": jnp.zeros((n, m.k), jnp.int32),
           "weights": jnp.zeros((n, m.k), jnp.float32),
           "F": jnp.zeros((n, c), jnp.float32)}
  if m.encoder is not None:
    params, stats = common.init_module(m.encoder, rng, jnp.zeros((2, *m.image_shape), jnp.float32))
    params, stats = common.load_pretrained({"encoder": params}, {"encoder": stats}, pretrained)
    extra["encoder"] = {"params": params["encoder"], "batch_stats": stats["encoder"]}
  return common.TrainState(step=jnp.zeros((), jnp.int32), params={}, batch_stats={}, opt_state={},
                           rng=rng, extra=extra)


def node_features(m: LabelPropagation, extra: dict, images: jax.Array) -> jax.Array:
  """Unit-norm float32 features [b, d] of uint8 images: normalised pixels or the frozen encoder's output."""
  if m.encoder is None:
    x = views_lib.eval_view(images, mean=m.mean, std=m.std).reshape(images.shape[0], -1)
  else:
    enc = extra["encoder"]
    x = common.encode(m.encoder, enc["params"], enc["batch_stats"], images, mean=m.mean, std=m.std)
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest_nodes(m: LabelPropagation, extra: dict, queries: jax.Array,
                  exclude: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """(indices, affinities max(0, cos)^gamma) [b, k] of the k nodes most similar to unit `queries` [b, d]."""
  sims = jnp.matmul(queries.astype(m.dtype), extra["features"].astype(m.dtype).T,
                    preferred_element_type=jnp.float32)                             # [b, N]
  sims = jnp.where(extra["valid"][None, :], sims, -jnp.inf)
  if exclude is not None:                                                         # a node is not its own neighbour
    sims = jnp.where(jnp.arange(sims.shape[1])[None, :] == exclude[:, None], -jnp.inf, sims)
  top, idx = jax.lax.top_k(sims, m.k)
  return idx, jnp.where(jnp.isfinite(top), jnp.maximum(top, 0.0) ** m.gamma, 0.0)


def propagate_once(m: LabelPropagation, extra: dict) -> jax.Array:
  """One iteration F <- alpha S F + (1 - alpha) Y over the symmetric normalised graph, labels clamped."""
  nbrs, w, F = extra["neighbors"], extra["weights"], extra["F"]
  n = F.shape[0]
  degree = jnp.sum(w, axis=1) + jax.ops.segment_sum(w.reshape(-1), nbrs.reshape(-1), num_segments=n)
  d_inv_sqrt = jnp.where(degree > 0, jax.lax.rsqrt(jnp.where(degree > 0, degree, 1.0)), 0.0)
  G = F * d_inv_sqrt[:, None]
  forward = jnp.einsum("nk,nkc->nc", w, G[nbrs])                                  # (A G)_i = sum_j a_ij G_j
  backward = jax.ops.segment_sum((w[..., None] * G[:, None, :]).reshape(-1, F.shape[1]), nbrs.reshape(-1),
                                 num_segments=n)                                  # (A^T G)_j = sum_i a_ij G_i
  new = m.alpha * d_inv_sqrt[:, None] * (forward + backward) + (1.0 - m.alpha) * extra["labels"]
  if m.clamp:
    new = jnp.where(extra["labelled"][:, None], extra["labels"], new)
  return jnp.where(extra["valid"][:, None], new, 0.0)


def step(m: LabelPropagation, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """Pass 1: store a block's features and labels; pass 2: its neighbours; later: one propagation iteration.

  Batch: {"index": int32 [B] node ids, "image": uint8 [B, H, W, C], "label": int32 [B] (-1: unlabelled),
  "valid": bool [B] (False on the padding of the last block)}.
  """
  phase = jnp.minimum(state.step // m.num_blocks, 2)
  index, valid = batch["index"], batch["valid"]

  def store_features(extra):
    f = node_features(m, extra, batch["image"])
    labelled = valid & (batch["label"] >= 0)
    onehot = jax.nn.one_hot(jnp.maximum(batch["label"], 0), m.num_classes) * labelled[:, None]
    return {**extra, "features": extra["features"].at[index].set(f.astype(jnp.bfloat16)),
            "valid": extra["valid"].at[index].set(valid), "labels": extra["labels"].at[index].set(onehot),
            "labelled": extra["labelled"].at[index].set(labelled), "F": extra["F"].at[index].set(onehot)}, 0.0

  def store_neighbors(extra):
    f = extra["features"][index].astype(jnp.float32)
    nbrs, w = nearest_nodes(m, extra, f, exclude=index)
    w = w * valid[:, None]
    return {**extra, "neighbors": extra["neighbors"].at[index].set(nbrs),
            "weights": extra["weights"].at[index].set(w)}, 0.0

  def propagate(extra):
    new = propagate_once(m, extra)
    residual = jnp.sum(jnp.abs(new - extra["F"])) / m.num_nodes
    return {**extra, "F": new}, residual

  extra, residual = jax.lax.switch(phase, [store_features, store_neighbors, propagate], state.extra)
  labelled = extra["labelled"]
  agree = jnp.sum((jnp.argmax(extra["F"], -1) == jnp.argmax(extra["labels"], -1)) & labelled)
  metrics = {"train/loss": jnp.asarray(residual, jnp.float32), "train/phase": phase.astype(jnp.float32),
             "train/labelled_kept": agree / jnp.maximum(jnp.sum(labelled), 1),
             # The share of nodes the labels have reached so far (1 once the graph is connected to them).
             "train/nodes_reached": jnp.sum((jnp.sum(extra["F"], -1) > 0) & extra["valid"]) / m.num_nodes}
  return state.replace(step=state.step + 1, extra=extra), metrics


def predict(m: LabelPropagation, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """{"logits"}: log of the affinity-weighted, normalised F of each image's k nearest nodes."""
  extra = state.extra
  idx, w = nearest_nodes(m, extra, node_features(m, extra, images))
  scores = jnp.einsum("bk,bkc->bc", w, extra["F"][idx])
  probs = scores / jnp.maximum(jnp.sum(scores, -1, keepdims=True), 1e-12)
  return {"logits": jnp.log(jnp.maximum(probs, 1e-12))}
