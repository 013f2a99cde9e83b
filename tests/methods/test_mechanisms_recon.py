"""What makes each pretext, masked-modelling and auto-encoder method that method, on one step of its tiny run."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


def _first_step(method, **overrides):
  """(plan, state before, state after, metrics, batch) of step 0 of a tiny run on one device."""
  plan = trainer.preflight(tiny_config(method, **overrides))
  batch = trainer.load_stream(plan).global_batch(0)
  state = jax.jit(functools.partial(plan.module.init, plan.method))(jax.random.PRNGKey(0))
  before = jax.device_get(state)
  after, metrics = jax.jit(functools.partial(plan.module.step, plan.method))(state, batch)
  return plan, before, jax.device_get(after), jax.device_get(metrics), batch


def _close(a, b, **kw):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **{"rtol": 1e-5, "atol": 1e-6, **kw}), a, b)


# ------------------------------------------------------------------------------------------ rotnet


def test_rotnet_feeds_all_four_rotations_with_their_labels():
  from ssl_jax.methods.ssl import rotnet
  plan = trainer.preflight(tiny_config("rotnet", **{"rotnet.augment": False}))
  images = trainer.load_stream(plan).global_batch(0)["image"][:5]
  x, labels = rotnet.rotated_batch(plan.method, jax.random.PRNGKey(0), images)
  m = plan.method
  norm = (images.astype(np.float32) / 255.0 - np.asarray(m.mean)) / np.asarray(m.std)
  assert x.shape == (20, *images.shape[1:])
  np.testing.assert_array_equal(labels, np.tile(np.arange(4), 5))
  for i in range(5):
    for k in range(4):  # k quarter turns counter-clockwise, written out: rot90 = flipud(transpose)
      want = norm[i]
      for _ in range(k):
        want = np.flip(np.transpose(want, (1, 0, 2)), axis=0)
      np.testing.assert_allclose(x[4 * i + k], want, rtol=1e-6, atol=1e-6)
  # The loss is the 4-way cross-entropy of the head on exactly those inputs.
  plan, before, _, metrics, batch = _first_step("rotnet", **{"rotnet.augment": False, "eval.online_probe": False})
  x, labels = rotnet.rotated_batch(plan.method, None, batch["image"])

  @jax.jit
  def reference_logits(x):
    feats, _ = m.encoder.apply({"params": before.params["encoder"], "batch_stats": before.batch_stats["encoder"]},
                               x, train=True, mutable=["batch_stats"])
    return m.head.apply({"params": before.params["head"]}, feats, train=True)

  logits = reference_logits(x)
  want = np.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  np.testing.assert_allclose(metrics["train/loss"], want, rtol=1e-5)


# ------------------------------------------------------------------------------------ auto-encoders


def _encoder_eval(plan, state, x):
  v = {"params": state.params["encoder"], "batch_stats": state.batch_stats["encoder"]}
  return plan.method.encoder.apply(v, x, train=False)


def test_contractive_penalty_is_the_frobenius_norm_of_the_encoder_jacobian(monkeypatch):
  from ssl_jax.methods.ssl import autoencoder
  from ssl_jax.models import conv
  plan, before, after, metrics, batch = _first_step("contractive_autoencoder")
  m = plan.method
  x = (batch["image"][:4].astype(np.float32) / 255.0 - np.asarray(m.mean)) / np.asarray(m.std)
  got = jax.jit(functools.partial(autoencoder.penalty, m))(after.params["encoder"], after.batch_stats["encoder"], x)
  # Reference: the forward-mode Jacobian of each example (XLA's own convolution, which has forward mode),
  # squared and summed in NumPy.
  monkeypatch.setenv(conv.KERNEL_GRAD_ENV, "xla")
  jac = np.asarray(jax.jit(jax.vmap(jax.jacfwd(lambda xi: _encoder_eval(plan, after, xi[None])[0])))(x), np.float64)
  assert jac.shape == (4, 16, *x.shape[1:])
  np.testing.assert_allclose(got, np.sum(jac ** 2, axis=(1, 2, 3, 4)), rtol=1e-4)
  # The step's loss is the reconstruction MSE plus lambda times the mean penalty of the first n examples.
  np.testing.assert_allclose(metrics["train/loss"],
                             metrics["train/recon_mse"] + 0.1 * metrics["train/contractive_penalty"], rtol=1e-6)
  assert metrics["train/contractive_penalty"] > 0


def test_denoising_autoencoder_corrupts_the_input_and_reconstructs_the_clean_image():
  from ssl_jax.methods.ssl import autoencoder
  plan = trainer.preflight(tiny_config("denoising_autoencoder", **{"denoising_autoencoder.noise_level": 0.3}))
  x01 = jnp.full((64, 8, 8, 1), 0.5)
  noisy = np.asarray(autoencoder.corrupt(plan.method, jax.random.PRNGKey(1), x01))
  assert set(np.unique(noisy)) == {0.0, 0.5}
  assert abs(np.mean(noisy == 0) - 0.3) < 0.03
  plain = trainer.preflight(tiny_config("autoencoder")).method
  np.testing.assert_array_equal(autoencoder.corrupt(plain, jax.random.PRNGKey(1), x01), x01)


def test_vae_loss_is_the_negative_elbo_of_a_reparameterised_sample():
  plan, before, _, metrics, batch = _first_step("vae", **{"eval.online_probe": False})
  m = plan.method
  x01 = batch["image"].astype(np.float64) / 255.0
  x = (x01 - np.asarray(m.mean)) / np.asarray(m.std)
  @jax.jit
  def posterior_out(x):
    feats, _ = m.encoder.apply({"params": before.params["encoder"], "batch_stats": before.batch_stats["encoder"]},
                               x, train=True, mutable=["batch_stats"])
    return m.posterior.apply({"params": before.params["posterior"]}, feats, train=True)

  out = np.asarray(posterior_out(jnp.asarray(x, jnp.float32)), np.float64)
  mu, logvar = out[:, :m.latent_dim], out[:, m.latent_dim:]
  key = jax.random.fold_in(before.rng, before.step)
  eps = np.asarray(jax.random.normal(key, mu.shape), np.float64)
  z = mu + np.exp(logvar / 2) * eps
  logits = np.asarray(jax.jit(lambda z: m.decoder.apply({"params": before.params["decoder"]}, z))(
      jnp.asarray(z, jnp.float32)), np.float64)
  p = 1 / (1 + np.exp(-logits))
  nll = -np.sum((x01 * np.log(p) + (1 - x01) * np.log(1 - p)).reshape(len(x), -1), axis=1)
  kl = 0.5 * np.sum(mu ** 2 + np.exp(logvar) - 1 - logvar, axis=1)
  np.testing.assert_allclose(metrics["train/kl"], kl.mean(), rtol=1e-4)
  np.testing.assert_allclose(metrics["train/recon_nll"], nll.mean(), rtol=1e-4)
  np.testing.assert_allclose(metrics["train/loss"], (nll + kl).mean(), rtol=1e-4)


def test_reconstruction_suite_writes_the_pngs_and_the_mse(tmp_path):
  import types

  from ssl_jax.evaluation import suites
  from ssl_jax.data.datasets import ArrayDataset
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
  test = ArrayDataset(images, np.zeros(40, np.int32), num_classes=10, name="t")

  def predict(state, inputs):
    x = inputs["image"].astype(jnp.float32) / 255.0
    return {"reconstructions": jnp.clip(x + state, 0, 1), "samples": jnp.zeros_like(x)}

  config = types.SimpleNamespace(batch_size=16, monitor_examples=10000)
  ctx = suites.Context(predict=predict, eval_data={"test": test}, config=config, mesh=None,
                       figures_dir=str(tmp_path), log=lambda _: None)
  out = suites.SUITES["reconstruction"].final(ctx, 0.1)
  want = np.mean(np.square(np.clip(images / 255.0 + 0.1, 0, 1) - images / 255.0))
  np.testing.assert_allclose(out["reconstruction_mse"], want, rtol=1e-5)
  for name in ("reconstructions.png", "samples.png"):
    with open(tmp_path / name, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  np.testing.assert_allclose(suites.SUITES["reconstruction"].monitor(ctx, 0.0)["reconstruction_mse"], 0.0, atol=1e-12)


def test_bags_suite_predicts_at_most_eval_batch_size_instances_per_call():
  """eval.batch_size counts padded instances for bags (1,000 test bags of 80 LeNet instances at once took 17 GB);
  the scores are those of one call over every bag."""
  import types

  from ssl_jax.evaluation import suites
  rng = np.random.default_rng(0)
  n, size = 50, 8
  mask = np.arange(size)[None] < rng.integers(1, size + 1, n)[:, None]
  instance_label = (rng.random((n, size)) < 0.2) & mask
  bags = {"instances": rng.integers(0, 256, (n, size, 2, 2, 1), dtype=np.uint8), "mask": mask,
          "label": instance_label.any(1).astype(np.int32), "instance_label": instance_label.astype(np.int32)}
  calls = []

  def predict(state, inputs):
    calls.append(inputs["instances"].shape[0] * inputs["instances"].shape[1])
    score = jnp.where(inputs["mask"], inputs["instances"][..., 0, 0, 0].astype(jnp.float32), -1e9)
    return {"bag_logits": score.max(1) - 128.0, "attention": jax.nn.softmax(score, axis=1)}

  results = []
  for batch in (20, 10_000):
    ctx = suites.Context(predict=predict, eval_data={"bags_test": bags}, mesh=None, log=lambda _: None,
                         config=types.SimpleNamespace(batch_size=batch, monitor_examples=10000))
    calls.clear()
    results.append(suites.SUITES["bags"].monitor(ctx, None))
    assert max(calls) <= max(batch, size)
  assert results[0] == results[1] and {"bag_auc", "bag_accuracy", "instance_auc"} <= set(results[0])


# --------------------------------------------------------------------------------------------- mae


def test_vit_on_a_subset_of_patches_keeps_the_ordinary_call():
  from ssl_jax.models import vit
  model = vit.vit_mini(patch_size=2, image_size=8)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 1))
  v = model.init(jax.random.PRNGKey(1), x, train=False)
  cls = model.apply(v, x, train=False)
  every = jnp.broadcast_to(jnp.arange(16), (3, 16))
  tokens = model.apply(v, x, train=False, ids_keep=every, return_tokens=True)
  assert cls.shape == (3, 128) and tokens.shape == (3, 17, 128)
  np.testing.assert_allclose(tokens[:, 0], cls, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(model.apply(v, x, train=False, ids_keep=every), cls, rtol=1e-5, atol=1e-5)


def test_mae_encoder_sees_only_the_visible_quarter_and_the_loss_is_on_masked_patches():
  from ssl_jax.methods.ssl import mae
  from ssl_jax.losses.reconstruction import patchify, unpatchify
  plan, before, _, metrics, batch = _first_step("mae", **{"mae.flip": False, "eval.online_probe": False})
  m = plan.method
  assert m.num_patches == 16 and m.mask_ratio == 0.75
  x = (batch["image"].astype(np.float32) / 255.0 - np.asarray(m.mean)) / np.asarray(m.std)
  key = jax.random.split(jax.random.fold_in(before.rng, before.step))[1]
  fwd = jax.jit(lambda x: mae.forward(m, before.params, x, key, train=True))
  pred, target, mask, tokens = jax.device_get(fwd(x))
  b = x.shape[0]
  assert tokens.shape == (b, 1 + 4, m.encoder.hidden_dim)  # CLS + the 4 visible patches of 16
  np.testing.assert_array_equal(mask.sum(1), 12)
  # Changing the pixels of masked patches leaves the encoder's output unchanged; a visible patch changes it.
  noise = np.random.default_rng(0).normal(size=target.shape).astype(np.float32)
  hide = unpatchify(jnp.asarray(target + noise * mask[..., None]), 2)
  show = unpatchify(jnp.asarray(target + noise * (1 - mask[..., None])), 2)
  _close(fwd(hide)[3], tokens, rtol=1e-5, atol=1e-5)
  assert np.abs(fwd(show)[3] - tokens).max() > 1e-3
  # NumPy loss from the paper's formula, over the masked patches only, with per-patch normalised targets.
  t = patchify(jnp.asarray(x), 2)
  np.testing.assert_allclose(t, target)
  t = np.asarray(t, np.float64)
  t = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, ddof=1, keepdims=True) + 1e-6)
  per = np.mean((pred - t) ** 2, axis=-1)
  want = np.mean([per[i][mask[i] == 1].mean() for i in range(b)])
  np.testing.assert_allclose(metrics["train/loss"], want, rtol=1e-4)


# ------------------------------------------------------------------------------------------ jigsaw


def test_jigsaw_tiles_are_shuffled_by_the_labelled_maximal_hamming_permutation():
  from ssl_jax.losses.pretext import jigsaw_permutations
  from ssl_jax.methods.ssl import jigsaw
  plan = trainer.preflight(tiny_config("jigsaw"))
  m = plan.method
  np.testing.assert_array_equal(m.permutations, jigsaw_permutations(10, grid=3, seed=0))
  perms = np.asarray(m.permutations)
  hamming = (perms[:, None] != perms[None]).sum(-1)[~np.eye(10, dtype=bool)]
  assert hamming.min() >= 7  # far apart: 10 of the 9! permutations chosen by minimal distance
  # 9x9 images with a distinct value per pixel: no crop needed, 3x3 cells of 3x3 pixels.
  images = np.arange(32 * 81, dtype=np.int64).reshape(32, 9, 9, 1) % 251
  images = images.astype(np.uint8)
  tiles, labels = jigsaw.puzzles(jax.random.PRNGKey(3), images, grid=3, permutations=m.permutations,
                                 tile_size=None, mean=(0.0,), std=(1 / 255.0,))
  tiles, labels = np.asarray(tiles), np.asarray(labels)
  assert tiles.shape == (32, 9, 3, 3, 1) and labels.shape == (32,)
  assert len(np.unique(labels)) > 3 and labels.min() >= 0 and labels.max() < 10
  for i in range(32):
    for t in range(9):
      s = perms[labels[i], t]  # output position t holds the raster-order tile s
      r, c = divmod(s, 3)
      np.testing.assert_allclose(tiles[i, t], images[i, 3 * r:3 * r + 3, 3 * c:3 * c + 3].astype(np.float32),
                                 atol=1e-3)


# -------------------------------------------------------------------------------------------- pirl


def test_pirl_memory_bank_is_an_ema_of_the_image_embeddings_at_the_stream_indices():
  from ssl_jax.methods.ssl import pirl
  plan, before, after, metrics, batch = _first_step("pirl")
  m = plan.method
  stream = trainer.load_stream(plan)
  idx = batch["index"]
  np.testing.assert_array_equal(batch["image"], stream.eval_data["train"].images[idx])
  assert len(np.unique(idx)) == len(idx) and m.bank_size == len(stream.eval_data["train"])
  # f(I) of the step, recomputed from the state before it with the step's own key.
  k_views = jax.random.split(jax.random.fold_in(before.rng, before.step))[0]
  x, tiles = pirl.views(m, k_views, batch["image"])
  f_img = np.asarray(jax.jit(lambda x, t: pirl.embed(m, before.params, before.batch_stats, x, t)[0])(x, tiles),
                     np.float64)
  old = before.extra["bank"].astype(np.float64)
  want = 0.5 * old[idx] + 0.5 * f_img
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  new = after.extra["bank"]
  np.testing.assert_allclose(new[idx], want, rtol=1e-4, atol=1e-5)
  others = np.setdiff1d(np.arange(m.bank_size), idx)
  np.testing.assert_array_equal(new[others], before.extra["bank"][others])
  np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, rtol=1e-5)
  assert set(after.batch_stats) == set(before.batch_stats)
  np.testing.assert_allclose(metrics["train/loss"], 0.5 * metrics["train/loss_jigsaw"] + 0.5 * metrics["train/loss_image"],
                             rtol=1e-6)


def test_images_stream_gives_the_index_only_when_asked():
  from ssl_jax.data import streams
  plan = trainer.preflight(tiny_config("rotnet"))
  data = trainer.load_stream(plan)
  plain = streams.Images().build(streams.Data(data.eval_data["train"], data.eval_data["test"]), batch_size=8, seed=0)
  indexed = streams.Images(with_indices=True).build(streams.Data(data.eval_data["train"], data.eval_data["test"]),
                                                  batch_size=8, seed=0)
  a, b = plain.global_batch(3), indexed.global_batch(3)
  assert set(a) == {"image", "label"} and set(b) == {"image", "label", "index"}
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["image"], data.eval_data["train"].images[b["index"]])


# ------------------------------------------------------------------------------------------ vq_vae


def test_vq_vae_straight_through_gradient_and_codebook_commitment_terms():
  from ssl_jax.methods.ssl import vq_vae
  rng = np.random.default_rng(0)
  z_e = jnp.asarray(rng.normal(size=(3, 2, 2, 4)), jnp.float32)
  codebook = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  idx, z_q = vq_vae.quantize(z_e, codebook)
  d = ((np.asarray(z_e)[..., None, :] - np.asarray(codebook)) ** 2).sum(-1)
  np.testing.assert_array_equal(idx, d.argmin(-1))
  np.testing.assert_allclose(z_q, np.asarray(codebook)[d.argmin(-1)])
  w = jnp.asarray(rng.normal(size=z_e.shape), jnp.float32)
  decoder_loss = lambda z: jnp.sum(w * z ** 3)  # any function of the codes the decoder sees

  def total(z_e, codebook, which):
    _, z_q = vq_vae.quantize(z_e, codebook)
    z_st, cb, cm = vq_vae.vq_losses(z_e, z_q)
    return {"decoder": decoder_loss(z_st), "codebook": cb, "commitment": cm}[which]

  # Straight-through: the encoder receives the decoder's gradient at z_q, unchanged; the codebook none of it.
  g_e, g_c = jax.grad(total, argnums=(0, 1))(z_e, codebook, "decoder")
  np.testing.assert_allclose(g_e, 3 * np.asarray(w) * np.asarray(z_q) ** 2, rtol=1e-5)
  np.testing.assert_allclose(g_c, 0.0)
  # Codebook loss: moves only the chosen codebook rows, towards z_e; commitment loss: moves only z_e.
  g_e, g_c = jax.grad(total, argnums=(0, 1))(z_e, codebook, "codebook")
  np.testing.assert_allclose(g_e, 0.0)
  want = np.zeros((6, 4))
  for i, k in enumerate(np.asarray(idx).reshape(-1)):
    want[k] += 2 * (np.asarray(z_q).reshape(-1, 4)[i] - np.asarray(z_e).reshape(-1, 4)[i]) / z_e.size
  np.testing.assert_allclose(g_c, want, rtol=1e-5, atol=1e-7)
  g_e, g_c = jax.grad(total, argnums=(0, 1))(z_e, codebook, "commitment")
  np.testing.assert_allclose(g_c, 0.0)
  np.testing.assert_allclose(g_e, 2 * (np.asarray(z_e) - np.asarray(z_q)) / z_e.size, rtol=1e-5, atol=1e-7)
  # The step's loss: reconstruction + codebook + beta * commitment (the two VQ terms have the same value).
  _, _, _, metrics, _ = _first_step("vq_vae")
  np.testing.assert_allclose(metrics["train/codebook_loss"], metrics["train/commitment_loss"], rtol=1e-6)
  np.testing.assert_allclose(metrics["train/loss"], metrics["train/recon_mse"] + 1.25 * metrics["train/codebook_loss"],
                             rtol=1e-5)
  assert 1.0 <= metrics["train/perplexity"] <= 16


# -------------------------------------------------------------------------------------------- beit


def test_beit_phase_two_loads_the_vq_vae_tokenizer_and_never_updates_it(tmp_path):
  from ssl_jax.methods.ssl import vq_vae
  from ssl_jax.train.checkpoint import Checkpointer
  # Phase 1: a two-step VQ-VAE whose tokenizer (encoder + codebook) gives the 4x4 grid of a patch-2 ViT on 8x8.
  phase1 = str(tmp_path / "vq_vae")
  vq = tiny_config("vq_vae", **{"total_steps": 2, "eval.final": False, "eval_every_steps": 0,
                                "checkpoint_every_steps": 2, "vq_vae.encoder_widths": (8, 16),
                                "vq_vae.decoder_widths": (16, 8)})
  trainer.train_and_evaluate(vq, phase1)
  plan1 = trainer.preflight(vq)
  ckpt = Checkpointer(phase1, keep=2)
  try:
    saved, _ = ckpt.restore_latest(plan1.abstract_state, move_damaged=False)
  finally:
    ckpt.close()
  tokenizer = jax.device_get(saved.params["encoder"])
  # Phase 2 with init_from: the tokenizer's architecture must be the phase-1 run's.
  with pytest.raises(ValueError, match="do not match the vq_vae run"):
    trainer.preflight(tiny_config("beit", **{"init_from": phase1, "beit.tokenizer": "init_from",
                                             "beit.codebook_size": 8}))
  plan = trainer.preflight(tiny_config("beit", **{"init_from": phase1, "beit.tokenizer": "init_from"}))
  assert plan.method.tokenizer.codebook_size == 16 and plan.method.tokenizer.widths == (8, 16)
  pretrained = trainer.pretrained_parts(plan.config, plan.mesh)
  state = jax.jit(lambda r: plan.module.init(plan.method, r, pretrained))(jax.random.PRNGKey(0))
  _close(jax.device_get(state.extra["tokenizer"]), tokenizer, rtol=0, atol=0)
  assert set(state.params) == {"encoder", "head", "probe"}
  batch = trainer.load_stream(plan).global_batch(0)
  step = jax.jit(functools.partial(plan.module.step, plan.method))
  before_vit = jax.device_get(state.params["encoder"])
  for _ in range(2):
    state, metrics = step(state, batch)
  _close(jax.device_get(state.extra["tokenizer"]), tokenizer, rtol=0, atol=0)  # frozen, bit for bit
  assert np.abs(jax.device_get(state.params["encoder"])["patch_embed"]["kernel"]
                - before_vit["patch_embed"]["kernel"]).max() > 0  # while the ViT trains
  # The targets are the phase-1 tokenizer's codes: the loss is the masked-position cross-entropy against them.
  m = plan.method
  x = (batch["image"].astype(np.float32) / 255.0 - np.asarray(m.mean)) / np.asarray(m.std)
  codes = np.asarray(vq_vae.tokens(plan.method.tokenizer, tokenizer, x))
  assert codes.shape == (len(x), 16) and codes.max() < 16
  assert 0 <= metrics["train/token_top1"] <= 1 and np.isfinite(metrics["train/loss"])
  with pytest.raises(ValueError, match="init_from"):
    trainer.preflight(tiny_config("beit", **{"beit.tokenizer": "init_from"}))
