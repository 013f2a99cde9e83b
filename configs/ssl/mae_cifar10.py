r"""MAE, ViT-Tiny (patch 4), CIFAR-10: masked autoencoding of 75% of the 64 patches, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. He et al. 2021 (arXiv:2111.06377) adapted to 32x32 images as the common
CIFAR re-implementations: ViT-Tiny with 4x4 patches (an 8x8 grid), mask ratio 0.75, a decoder 256 wide and 4
blocks deep (the paper's is 512 x 8 for ImageNet), normalised-pixel loss, AdamW (0.9, 0.95) with base lr 1.5e-4
x batch / 256, weight decay 0.05, 40 warm-up epochs of 800, batch 512.

  python -m ssl_jax.main --config=configs/ssl/mae_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10). MAE is meant to be
fine-tuned: linear probes of small CIFAR MAEs are reported in the 0.6-0.8 range (fine-tuned ViT-Tiny above
0.9), for comparison.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("mae")
  c.total_steps = 78000          # 800 epochs of 50,000 images at batch 512
  c.batch_size = 512
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 10000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "vit_tiny"
  c.model.patch_size = 4
  c.model.dtype = "bfloat16"

  c.mae.mask_ratio = 0.75
  c.mae.decoder_dim = 256
  c.mae.decoder_depth = 4
  c.mae.decoder_heads = 8
  c.mae.norm_pix_loss = True
  c.mae.flip = True

  c.optim.name = "adamw"
  c.optim.lr = 1.5e-4
  c.optim.scale_lr_with_batch = True
  c.optim.b2 = 0.95
  c.optim.warmup_steps = 3900    # 40 epochs
  c.optim.weight_decay = 0.05

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
