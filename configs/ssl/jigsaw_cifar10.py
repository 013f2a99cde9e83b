r"""Jigsaw puzzles, ResNet-18 (CIFAR stem) tile encoder, CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. Noroozi & Favaro 2016 (arXiv:1603.09246) scaled to 32x32 images: each
image cropped to 30x30, nine 10x10 cells, a random 8x8 tile in each (the paper: 64-pixel tiles in 85-pixel
cells), 1000 maximal-Hamming permutations, a 1024-wide hidden layer on the 9 concatenated tile features (the
paper's fc7 is 4096), SGD momentum 0.9, lr 0.1 x batch / 256, weight decay 5e-4, batch 256, 200 epochs.

  python -m ssl_jax.main --config=configs/ssl/jigsaw_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10). Linear probes of jigsaw
pretraining on CIFAR-10 are reported around 0.6-0.7 (the paper reports ImageNet/PASCAL transfer only), for
comparison.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("jigsaw")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.jigsaw.num_permutations = 1000
  c.jigsaw.grid = 3
  c.jigsaw.tile_size = 8
  c.jigsaw.head_hidden_dim = 1024

  c.optim.name = "sgd"
  c.optim.lr = 0.1
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950
  c.optim.weight_decay = 5e-4

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
