r"""PIRL, ResNet-18 (CIFAR stem), CIFAR-10: jigsaw invariance with a memory bank, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. Misra & van der Maaten 2020 (arXiv:1912.01991) on 32x32 images: 30x30 crops
in nine 10x10 cells with 8x8 tiles, a memory bank of all 50,000 images (momentum 0.5), 16,384 negatives,
temperature 0.07, lambda 0.5, 128-d embeddings, SGD momentum 0.9, lr 0.12 x batch / 256 with a cosine decay,
weight decay 1e-4, batch 256, 400 epochs; the image branch with crop-pad and flip.

  python -m ssl_jax.main --config=configs/ssl/pirl_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10). The paper reports
ImageNet and transfer results only; CIFAR-10 re-implementations with ResNet-18 report linear probes in the
0.8-0.85 range, for comparison.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("pirl")
  c.total_steps = 78000          # 400 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.pirl.proj_dim = 128
  c.pirl.temperature = 0.07
  c.pirl.num_negatives = 16384
  c.pirl.lam = 0.5
  c.pirl.bank_momentum = 0.5
  c.pirl.grid = 3
  c.pirl.tile_size = 8
  c.pirl.num_permutations = 1000

  c.optim.name = "sgd"
  c.optim.lr = 0.12
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950
  c.optim.weight_decay = 1e-4

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
