r"""Jigsaw puzzles, small ConvNet tile encoder, Fashion-MNIST: 3x3 tiles, 100 maximal-Hamming permutations.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on the encoder's frozen
features of whole images score it on the 10,000 test images, beside the raw-pixel probe. Each image is
cropped to 27x27 and cut into nine 9x9 cells; a random 7x7 tile is taken in each (the gap), so one image is
nine 7x7 tiles, cheaper together than one 28x28 image: the batch is 256 images (2304 tiles).

  python -m ssl_jax.main --config=configs/ssl/jigsaw_fashion_mnist.py --workdir=workdirs/jigsaw_fashion_mnist

Budget: 1500 steps, about 5 minutes of training on 2 idle CPU cores (314 s measured).
Result when we ran it (2026-12-02, `python experiments/ssl_benchmark.py --methods=jigsaw`, 2 CPU cores, the only
training job): linear probe 0.8622, kNN 0.8474 (raw-pixel probe 0.8454); 314 s of training, 1500 steps.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8638, kNN
top-1 0.8502, 318 s of training.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("jigsaw")
  c.total_steps = 1500
  c.batch_size = 256
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 500
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.jigsaw.num_permutations = 100
  c.jigsaw.grid = 3
  c.jigsaw.tile_size = 7
  c.jigsaw.head_hidden_dim = 512

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 1e-4
  return c
