r"""PIRL, small ConvNet, Fashion-MNIST: jigsaw-invariant representations against a memory bank of 60,000 rows.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on the encoder's frozen
features of whole images score it on the 10,000 test images, beside the raw-pixel probe. Each step encodes
256 images (crop-pad and flip) and the nine 7x7 tiles of their jigsaw transforms (27x27 crops, 9x9 cells, 100
permutations), contrasts both embeddings with the images' memory-bank rows against 4096 negatives drawn from
the bank (temperature 0.07, lambda 0.5, bank momentum 0.5, as the paper). The bank needs a few epochs to
become informative: 1500 steps are 6.4 epochs.

  python -m ssl_jax.main --config=configs/ssl/pirl_fashion_mnist.py --workdir=workdirs/pirl_fashion_mnist

Budget: 1500 steps, about 7 minutes of training on 2 idle CPU cores (420 s measured).
Result when we ran it (2026-12-02, `python experiments/ssl_benchmark.py --methods=pirl`, 2 CPU cores, the only
training job): linear probe 0.8460, kNN 0.7937 (raw-pixel probe 0.8454); 420 s of training, 1500 steps.
Level with the raw-pixel probe, and its kNN below: the encoder learns what stays the same when an image is cut into
nine shuffled 7x7 tiles and reassembled, which on 28x28 images leaves little besides coarse shape and intensity;
the jigsaw task itself (0.8622) does better here, and RotNet (0.8722) better still.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8434, kNN
top-1 0.7894, 369 s of training.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("pirl")
  c.total_steps = 1500
  c.batch_size = 256
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 500
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.pirl.proj_dim = 128
  c.pirl.temperature = 0.07
  c.pirl.num_negatives = 4096
  c.pirl.lam = 0.5
  c.pirl.bank_momentum = 0.5
  c.pirl.grid = 3
  c.pirl.tile_size = 7
  c.pirl.num_permutations = 100

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 1e-4
  return c
