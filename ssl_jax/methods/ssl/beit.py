"""BEiT (Bao, Dong, Piao & Wei 2021, arXiv:2106.08254): masked image modelling of discrete visual tokens.

Two phases, two configs. Phase 1 trains a VQ-VAE (`vq_vae`), whose encoder and codebook turn an image into a
g x g grid of code indices, one per ViT patch (the paper uses DALL-E's dVAE). Phase 2 (this method) loads that
tokenizer with `init_from=<phase-1 workdir>` and trains a ViT: a fraction of the patches (`mask_ratio`) get a
learned mask token in place of their embedding (`ViT(..., mask=...)`), and a linear head on the output tokens
predicts the tokenizer's code of each masked patch:

  loss = 1/|M| sum_{(b, n) in M} CE( head(ViT(x with patches M masked))_{b, n}, tokenizer(x)_{b, n} )

The tokenizer sees the whole image and is frozen: it lives in state.extra["tokenizer"] (never in the optimised
params, so no gradient or optimizer update reaches it) and every step returns it unchanged. Its architecture
is given by the `tokenizer_*` fields, which must equal the phase-1 run's (checked against its config.json),
and its grid must match the ViT's patch grid (`model.patch_size`). Patches are masked uniformly at random,
`int(n * mask_ratio)` per image (the paper masks about 40% in random blocks). `tokenizer="random"` uses a
frozen, randomly initialised tokenizer of that architecture instead (no phase 1; the random-projection-
quantiser baseline, and what the shared tests run). The probes read the ViT's CLS features of unmasked images.

Phase 1 and 2 on Fashion-MNIST:

  python -m ssl_jax.main --config=configs/ssl/vq_vae_fashion_mnist.py --workdir=workdirs/vq_vae_fashion_mnist
  python -m ssl_jax.main --config=configs/ssl/beit_fashion_mnist.py --workdir=workdirs/beit_fashion_mnist \\
      --config.init_from=workdirs/vq_vae_fashion_mnist

Config section `beit`: `tokenizer` ("init_from" or "random"), `mask_ratio`, and the tokenizer's architecture
`tokenizer_widths`, `codebook_size`, `embed_dim` (the phase-1 run's `vq_vae.encoder_widths`, `codebook_size`,
`embed_dim`).
"""

from __future__ import annotations

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import optim as optim_lib
from ssl_jax.data import augment as augment_lib
from ssl_jax.data import streams
from ssl_jax.evaluation.online_probe import OnlineProbe
from ssl_jax.methods import common
from ssl_jax.methods.ssl import vq_vae

SUITES = ("representation",)
TOKENIZERS = ("init_from", "random")


def config() -> ml_collections.ConfigDict:
  """The `beit` section with its defaults."""
  return ml_collections.ConfigDict({
      "tokenizer": "init_from",
      "mask_ratio": 0.4,
      "tokenizer_widths": (32, 64, 64),
      "codebook_size": 512,
      "embed_dim": 32,
  })


def stream(config) -> streams.Images:
  del config
  return streams.Images()


@dataclasses.dataclass(frozen=True)
class BEiT:
  encoder: nn.Module
  head: nn.Module
  tokenizer: vq_vae.Tokenizer
  probe: OnlineProbe | None
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  num_patches: int
  num_masked: int
  from_init: bool


def check_phase_one(config) -> None:
  """When the run named by `init_from` exists: it must be the vq_vae run (phase 1) on this dataset, with the
  tokenizer these `beit.tokenizer_*` fields describe. (A missing run is reported by the trainer when it loads.)"""
  path = os.path.join(config.init_from, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    other = json.load(f)
  method, data = other.get("method"), other.get("data", {}).get("name")
  if method != "vq_vae" or data != config.data.name:
    raise ValueError(f"init_from={config.init_from!r} is a {method} run on {data}; beit needs the vq_vae run "
                     f"(phase 1) on the same dataset, {config.data.name}.")
  s, v = config.beit, other["vq_vae"]
  mine = (tuple(s.tokenizer_widths), s.codebook_size, s.embed_dim)
  theirs = (tuple(v["encoder_widths"]), v["codebook_size"], v["embed_dim"])
  if mine != theirs:
    raise ValueError(f"beit.tokenizer_widths, codebook_size and embed_dim {mine} do not match the vq_vae run in "
                     f"{config.init_from} {theirs}; set them to its encoder_widths, codebook_size and embed_dim.")


def make(config, info) -> BEiT:
  s = config.beit
  if s.tokenizer not in TOKENIZERS:
    raise ValueError(f"beit.tokenizer must be one of {', '.join(TOKENIZERS)}; got {s.tokenizer!r}.")
  if s.tokenizer == "init_from" and not config.init_from:
    raise ValueError("beit loads its tokenizer from a vq_vae run: pass --config.init_from=<its workdir> (or "
                     "beit.tokenizer=random for a frozen random tokenizer).")
  if not config.model.encoder.startswith("vit"):
    raise ValueError(f"beit needs a ViT encoder (model.encoder=vit_mini, vit_tiny, ...); got {config.model.encoder!r}.")
  if not 0.0 < s.mask_ratio < 1.0:
    raise ValueError(f"beit.mask_ratio must be in (0, 1), got {s.mask_ratio}.")
  h, w, _ = info.image_shape
  p = config.model.patch_size
  if h % p or w % p:
    raise ValueError(f"model.patch_size={p} must divide the {h}x{w} images.")
  dtype = common.DTYPES[config.model.dtype]
  if s.tokenizer == "init_from":
    check_phase_one(config)
  section = ml_collections.ConfigDict({"encoder_widths": s.tokenizer_widths, "decoder_widths": s.tokenizer_widths,
                                       "codebook_size": s.codebook_size, "embed_dim": s.embed_dim})
  tokenizer = vq_vae.make_tokenizer(section, info.image_shape, dtype)
  f = 2 ** (len(tokenizer.widths) - 1)
  if (h // f, w // f) != (h // p, w // p):
    raise ValueError(f"The tokenizer's {h // f}x{w // f} grid of codes does not match the ViT's {h // p}x{w // p} "
                     f"patches; use model.patch_size={f}.")
  n = (h // p) * (w // p)
  if int(n * s.mask_ratio) < 1:
    raise ValueError(f"beit.mask_ratio={s.mask_ratio} masks no patch of the {n}; raise it.")
  tx, schedule = optim_lib.make_optimizer(config.optim, batch_size=config.batch_size,
                                          total_steps=config.total_steps)
  mean, std = common.normalizer(config)
  head = nn.Dense(tokenizer.codebook_size, kernel_init=nn.initializers.truncated_normal(0.02), dtype=dtype)
  return BEiT(encoder=common.make_encoder(config, info), head=head, tokenizer=tokenizer,
              probe=OnlineProbe(info.num_classes) if config.eval.online_probe else None, tx=tx, schedule=schedule,
              image_shape=tuple(info.image_shape), mean=mean, std=std, num_patches=n,
              num_masked=int(n * s.mask_ratio), from_init=s.tokenizer == "init_from")


def init(m: BEiT, rng: jax.Array, pretrained=None) -> common.TrainState:
  """A fresh ViT and head; the tokenizer from `pretrained` (the phase-1 run's `encoder` part) into extra.

  Without `pretrained` (a random tokenizer, or the trainer's shape-only call) the tokenizer is initialised
  from `rng`: the same structure.
  """
  k_enc, k_head, k_probe, k_tok, k_step = jax.random.split(rng, 5)
  x = jnp.zeros((2, *m.image_shape), jnp.float32)
  mask = jnp.zeros((2, m.num_patches), bool)
  params = {"encoder": m.encoder.init(k_enc, x, train=False, mask=mask)["params"]}
  tokens = m.encoder.apply({"params": params["encoder"]}, x, train=False, return_tokens=True)
  params["head"] = m.head.init(k_head, tokens[:, 1:])["params"]
  if m.probe is not None:
    params["probe"] = m.probe.init(k_probe, tokens[:, 0])["params"]
  tokenizer = m.tokenizer.init(k_tok, x)["params"]
  if pretrained:
    loaded = pretrained.get("params", {}).get("encoder")
    shapes = lambda t: jax.tree.map(lambda a: tuple(a.shape), t)
    if loaded is None or jax.tree.structure(shapes(loaded)) != jax.tree.structure(shapes(tokenizer)) or \
        shapes(loaded) != shapes(tokenizer):
      raise ValueError("The run given by init_from has no vq_vae tokenizer of this shape (its `encoder` part); "
                       "start from the vq_vae run of phase 1.")
    tokenizer = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), loaded)
  return common.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats={"encoder": {}, "head": {}},
                           opt_state=m.tx.init(params), rng=k_step, extra={"tokenizer": tokenizer})


def random_patch_mask(key: jax.Array, b: int, n: int, num_masked: int) -> jax.Array:
  """bool [b, n] with exactly `num_masked` True per row, at uniformly random positions."""
  ranks = jnp.argsort(jnp.argsort(jax.random.uniform(key, (b, n)), axis=1), axis=1)
  return ranks < num_masked


def step(m: BEiT, state: common.TrainState, batch) -> tuple[common.TrainState, dict]:
  """One update on {"image": uint8 [B, H, W, C], "label": int32 [B] (probe only)}; the tokenizer is frozen."""
  x = augment_lib.normalize(batch["image"], m.mean, m.std)
  b = x.shape[0]
  targets = vq_vae.tokens(m.tokenizer, jax.lax.stop_gradient(state.extra["tokenizer"]), x)  # [b, n]
  mask = random_patch_mask(common.step_key(state), b, m.num_patches, m.num_masked)

  def loss_fn(params):
    tokens = m.encoder.apply({"params": params["encoder"]}, x, train=True, mask=mask, return_tokens=True)
    logits = m.head.apply({"params": params["head"]}, tokens[:, 1:]).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    loss = jnp.sum(jnp.where(mask, ce, 0.0)) / (b * m.num_masked)
    hit = (jnp.argmax(logits, -1) == targets) & mask
    probe_loss, metrics = common.online_probe(m.probe, params.get("probe"), tokens[:, 0], batch["label"])
    metrics = {"train/loss": loss, "train/token_top1": jax.lax.stop_gradient(jnp.sum(hit) / (b * m.num_masked)),
               **metrics}
    return loss + probe_loss, (metrics, state.batch_stats)

  return common.gradient_step(state, loss_fn, tx=m.tx, schedule=m.schedule)


def predict(m: BEiT, state: common.TrainState, images: jax.Array) -> dict[str, jax.Array]:
  """CLS features of the ViT on whole (unmasked) uint8 images."""
  return {"features": common.encode(m.encoder, state.params["encoder"], state.batch_stats["encoder"], images,
                                    mean=m.mean, std=m.std)}
