r"""VQ-VAE, CIFAR-10: an 8x8 grid of codes from a 512-entry codebook, for a GPU/TPU; phase 1 of BEiT.

Needs the TFDS `cifar10` dataset. van den Oord et al. 2017 (arXiv:1711.00937) on CIFAR-10: K = 512 codes
(the paper: 512 codes of dimension 64 on an 8x8 grid of 32x32 images), beta 0.25, Adam lr 2e-4, batch 128,
250,000 steps in the paper (here 100,000). Its `encoder` part is the tokenizer of configs/ssl/beit_cifar10.py
(ViT patch 4: one code per patch of the 8x8 grid).

  python -m ssl_jax.main --config=configs/ssl/vq_vae_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10). The paper reports
4.67 bits/dim for its CIFAR-10 VQ-VAE and no linear probe, for comparison.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("vq_vae")
  c.total_steps = 100000
  c.batch_size = 128
  c.checkpoint_every_steps = 5000
  c.eval_every_steps = 10000
  c.log_every_steps = 100

  c.data.name = "cifar10"
  c.model.dtype = "bfloat16"

  c.vq_vae.codebook_size = 512
  c.vq_vae.embed_dim = 64
  c.vq_vae.beta = 0.25
  c.vq_vae.encoder_widths = (128, 256, 256)   # 32 -> 16 -> 8: an 8x8 grid
  c.vq_vae.decoder_widths = (256, 128, 64)

  c.optim.name = "adamw"
  c.optim.lr = 2e-4
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 0
  c.optim.weight_decay = 0.0

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
