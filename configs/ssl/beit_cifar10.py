r"""BEiT phase 2, ViT-Tiny (patch 4), CIFAR-10: masked image modelling of the VQ-VAE tokens, for a GPU/TPU.

Needs the TFDS `cifar10` dataset and phase 1, configs/ssl/vq_vae_cifar10.py (an 8x8 grid of codes from 512,
one per 4x4 patch). Bao et al. 2021 (arXiv:2106.08254) scaled to 32x32 images: 40% of the 64 patches masked
(uniformly, not in blocks), AdamW (0.9, 0.98) at lr 1.5e-3 (the paper's rate for its ViT-B batch of 2048),
weight decay 0.05, 10 warm-up epochs of 300, batch 512.

  python -m ssl_jax.main --config=configs/ssl/vq_vae_cifar10.py --workdir=$WORKDIR/vq_vae
  python -m ssl_jax.main --config=configs/ssl/beit_cifar10.py --workdir=$WORKDIR/beit --config.init_from=$WORKDIR/vq_vae

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10). BEiT is meant to be
fine-tuned; its linear probes are weak (the paper: 56.7% on ImageNet for ViT-B), for comparison.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("beit")
  c.total_steps = 29300          # 300 epochs of 50,000 images at batch 512
  c.batch_size = 512
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100
  c.init_from = "workdirs/vq_vae_cifar10"   # phase 1; override with --config.init_from

  c.data.name = "cifar10"

  c.model.encoder = "vit_tiny"
  c.model.patch_size = 4
  c.model.dtype = "bfloat16"

  c.beit.tokenizer = "init_from"
  c.beit.mask_ratio = 0.4
  c.beit.tokenizer_widths = (128, 256, 256)   # as configs/ssl/vq_vae_cifar10.py
  c.beit.codebook_size = 512
  c.beit.embed_dim = 64

  c.optim.name = "adamw"
  c.optim.lr = 1.5e-3
  c.optim.scale_lr_with_batch = False
  c.optim.b2 = 0.98
  c.optim.warmup_steps = 980     # 10 epochs
  c.optim.weight_decay = 0.05

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
