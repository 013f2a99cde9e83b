"""Every method with a tiny run of it: its Fashion-MNIST config shrunk to scikit-learn's digits.

A new method gets the shared tests (smoke run with its family's results, exact resume after a kill,
8 devices equal 1, `ssl_jax.evaluate`) by adding one line to `CASES`.
"""

import os

from ssl_jax.evaluation.suites import SUITE_KEYS
from ssl_jax.methods import METHODS
from ssl_jax.train import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Shared by every case: seconds-long runs on the 1,500 8x8 digits.
TINY = {"data.name": "digits", "total_steps": 12, "checkpoint_every_steps": 4, "log_every_steps": 1,
        "eval_every_steps": 6, "model.widths": (8, 16), "eval.monitor_examples": 300,
        "eval.probe_epochs": 2, "eval.probe_min_steps": 20,
        "eval.batch_size": 256, "eval.pixel_baseline": False, "optim.warmup_steps": 2}

CASES = {
    "simclr": ("configs/ssl/simclr_digits_tiny.py", {"batch_size": 32}),
    "byol": ("configs/ssl/byol_fashion_mnist.py", {"batch_size": 32, "byol.proj_hidden_dim": 32,
                                                   "byol.proj_dim": 16, "byol.pred_hidden_dim": 32}),
    "simsiam": ("configs/ssl/simsiam_fashion_mnist.py", {"batch_size": 32, "simsiam.proj_hidden_dim": 32,
                                                         "simsiam.proj_dim": 16, "simsiam.pred_hidden_dim": 8}),
    "moco_v2": ("configs/ssl/moco_v2_fashion_mnist.py", {"batch_size": 32, "moco_v2.queue_size": 64,
                                                         "moco_v2.proj_hidden_dim": 32, "moco_v2.proj_dim": 16}),
    "barlow_twins": ("configs/ssl/barlow_twins_fashion_mnist.py", {
        "batch_size": 32, "barlow_twins.proj_hidden_dim": 32, "barlow_twins.proj_dim": 16}),
    "vicreg": ("configs/ssl/vicreg_fashion_mnist.py", {"batch_size": 32, "vicreg.proj_hidden_dim": 32,
                                                       "vicreg.proj_dim": 16}),
    "supcon": ("configs/ssl/supcon_fashion_mnist.py", {"batch_size": 32, "supcon.proj_hidden_dim": 32,
                                                       "supcon.proj_dim": 16}),
    "nnclr": ("configs/ssl/nnclr_fashion_mnist.py", {
        "batch_size": 32, "nnclr.queue_size": 64, "nnclr.proj_dim": 16, "nnclr.proj_hidden_dim": 32,
        "nnclr.pred_hidden_dim": 32}),
    "swav": ("configs/ssl/swav_fashion_mnist.py", {
        "batch_size": 32, "swav.num_prototypes": 16, "swav.proj_hidden_dim": 32, "swav.proj_dim": 16,
        "swav.freeze_prototypes_steps": 2, "swav.queue_size": 64, "swav.queue_start_step": 1,
        "swav.views.global_size": 8, "swav.views.local_size": 4}),
    # DINO and MoCo v3's configs train the ConvNet by default and ViT-Tiny with `:encoder=vit_tiny`, whose 12
    # blocks take minutes to compile on a CPU: the shared tests run the tiny ConvNet (the ViT: tests/models and
    # the CIFAR-10 configs' traces).
    "dino": ("configs/ssl/dino_fashion_mnist.py", {
        "batch_size": 32, "model.encoder": "convnet", "dino.num_prototypes": 16, "dino.hidden_dim": 32,
        "dino.bottleneck_dim": 8, "dino.warmup_teacher_temperature_steps": 4, "dino.freeze_last_layer_steps": 2,
        "dino.views.global_size": 8, "dino.views.local_size": 4}),
    "moco_v3": ("configs/ssl/moco_v3_fashion_mnist.py", {
        "batch_size": 32, "model.encoder": "convnet", "moco_v3.proj_hidden_dim": 32, "moco_v3.proj_dim": 16,
        "moco_v3.pred_hidden_dim": 32}),
    "rotnet": ("configs/ssl/rotnet_fashion_mnist.py", {"batch_size": 16}),
    "autoencoder": ("configs/ssl/autoencoder_fashion_mnist.py", {"batch_size": 16,
                                                                 "autoencoder.decoder_widths": (16, 8)}),
    "denoising_autoencoder": ("configs/ssl/denoising_autoencoder_fashion_mnist.py", {
        "batch_size": 16, "denoising_autoencoder.decoder_widths": (16, 8)}),
    "contractive_autoencoder": ("configs/ssl/contractive_autoencoder_fashion_mnist.py", {
        "batch_size": 16, "contractive_autoencoder.decoder_widths": (16, 8),
        "contractive_autoencoder.penalty_examples": 4}),
    "vae": ("configs/ssl/vae_fashion_mnist.py", {"batch_size": 16, "vae.latent_dim": 4, "vae.decoder_widths": (16, 8)}),
    # MAE and BEiT's ViT: one block of width 32 (vit_micro), so the shared tests take seconds.
    "mae": ("configs/ssl/mae_fashion_mnist.py", {"batch_size": 16, "model.encoder": "vit_micro", "model.patch_size": 2,
                                                 "mae.decoder_dim": 16, "mae.decoder_depth": 1,
                                                 "mae.decoder_heads": 2}),
    "jigsaw": ("configs/ssl/jigsaw_fashion_mnist.py", {"batch_size": 16, "jigsaw.num_permutations": 10,
                                                       "jigsaw.tile_size": 0, "jigsaw.head_hidden_dim": 16}),
    "pirl": ("configs/ssl/pirl_fashion_mnist.py", {"batch_size": 16, "pirl.num_permutations": 10, "pirl.tile_size": 0,
                                                   "pirl.proj_dim": 8, "pirl.num_negatives": 64}),
    "vq_vae": ("configs/ssl/vq_vae_fashion_mnist.py", {"batch_size": 16, "vq_vae.codebook_size": 16, "vq_vae.embed_dim": 4,
                                                       "vq_vae.encoder_widths": (8, 16, 16),
                                                       "vq_vae.decoder_widths": (16, 8, 8)}),
    "beit": ("configs/ssl/beit_fashion_mnist.py", {"batch_size": 16, "init_from": "", "model.encoder": "vit_micro",
                                                   "model.patch_size": 2,
                                                   "beit.tokenizer": "random",
                                                   "beit.tokenizer_widths": (8, 16), "beit.codebook_size": 16,
                                                   "beit.embed_dim": 4}),
    "fixmatch": ("configs/semi/fixmatch_fashion_mnist.py", {"batch_size": 16, "fixmatch.labels": 50,
                                                            "fixmatch.mu": 2}),
    "supervised": ("configs/semi/supervised_fashion_mnist.py", {"batch_size": 16, "supervised.labels": 50}),
    # 3 rounds of 4 steps: the resume test crosses a round boundary (the kill lands after step 4).
    "self_training": ("configs/semi/self_training_fashion_mnist.py", {
        "batch_size": 16, "self_training.labels": 50, "self_training.mu": 2, "self_training.rounds": 2}),
    "co_training": ("configs/semi/co_training_fashion_mnist.py", {"batch_size": 16, "co_training.labels": 50,
                                                                  "co_training.mu": 2}),
    "pseudo_label": ("configs/semi/pseudo_label_fashion_mnist.py", {"batch_size": 16, "pseudo_label.labels": 50,
                                                                    "pseudo_label.mu": 2}),
    "mean_teacher": ("configs/semi/mean_teacher_fashion_mnist.py", {"batch_size": 16, "mean_teacher.labels": 50,
                                                                    "mean_teacher.mu": 2}),
    "pi_model": ("configs/semi/pi_model_fashion_mnist.py", {"batch_size": 16, "pi_model.labels": 50,
                                                            "pi_model.mu": 2}),
    "vat": ("configs/semi/vat_fashion_mnist.py", {"batch_size": 16, "vat.labels": 50, "vat.mu": 2}),
    "uda": ("configs/semi/uda_fashion_mnist.py", {"batch_size": 16, "uda.labels": 50, "uda.mu": 2}),
    "mixmatch": ("configs/semi/mixmatch_fashion_mnist.py", {"batch_size": 16, "mixmatch.labels": 50,
                                                            "mixmatch.mu": 2}),
    "flexmatch": ("configs/semi/flexmatch_fashion_mnist.py", {"batch_size": 16, "flexmatch.labels": 50,
                                                              "flexmatch.mu": 2}),
    # 1,500 digits in 3 blocks of 512: 2 passes of 3 steps, then 6 propagation iterations.
    "label_propagation": ("configs/semi/label_propagation_fashion_mnist.py", {"batch_size": 512,
                                                                              "label_propagation.labels": 50}),
    "mil": ("configs/mil/mil_fashion_mnist.py", {
        "batch_size": 16, "model.encoder": "mlp", "model.widths": (32, 16), "mil.train_bags": 64,
        "mil.test_bags": 64, "mil.attention_dim": 16, "mil.clam_weight": 0.3, "mil.clam_top_k": 2}),
    "triplet": ("configs/metric/triplet_fashion_mnist.py", {"batch_size": 40, "triplet.embedding_dim": 16}),
    "siamese": ("configs/metric/siamese_fashion_mnist.py", {"batch_size": 40, "siamese.embedding_dim": 16}),
    "finetune": ("configs/transfer/finetune_fashion_mnist.py", {"batch_size": 16, "finetune.label_fraction": 0.0,
                                                                "finetune.labels": 50}),
    "dann": ("configs/transfer/dann_mnist5k_to_digits28.py", {"batch_size": 16, "dann.target": "digits28",
                                                              "dann.domain_hidden_dim": 16}),
}


def tiny_config(method: str, **more):
  """The method's config with TINY, the case's own overrides and `more` applied."""
  path, overrides = CASES[method]
  config = config_lib.load_config(os.path.join(ROOT, path))
  for key, value in {**TINY, **overrides, **more}.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  config_lib.validate(config)
  return config


def result_keys(method: str) -> set[str]:
  """The results every run of `method` must write: the required keys of its suites."""
  return {k for suite in METHODS[method].SUITES for k in SUITE_KEYS[suite]}
