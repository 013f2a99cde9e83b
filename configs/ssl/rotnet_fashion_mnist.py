r"""RotNet, small ConvNet, Fashion-MNIST: 4-way rotation prediction, all four rotations of every image.

Pretrains on the 60,000 training images without labels (the labels reach only the online probe); a linear
probe and kNN on frozen features score it on the 10,000 test images, beside the raw-pixel probe. A batch of
128 images is 512 rotated images, the per-step cost of SimCLR's 2 x 256 views. AdamW as the other small SSL
configs; the head is linear on the 512 features.

  python -m ssl_jax.main --config=configs/ssl/rotnet_fashion_mnist.py --workdir=workdirs/rotnet_fashion_mnist

Budget: 1200 steps, about 7 minutes of training on 2 CPU cores.
Result when we ran it (2026-12-02, 2 CPU cores shared with three other jobs, load average about 9): linear
probe top-1 0.8722, kNN top-1 0.8446, against 0.8454 for the raw-pixel probe; 1738 s of training (the sharing
made it about 4x slower than on idle cores). The monitor's RankMe was 146 (step 400) and 150 (step 800) of
512 dimensions: no collapse. Above the raw pixels, a little below SimCLR (0.8815) and BYOL (0.8752 at the
time; 0.8815 with its 2026-12-03 config).
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8742, kNN
top-1 0.8445, 250 s of training.
"""

from ssl_jax.train.config import base_config

def get_config():
  c = base_config("rotnet")
  c.total_steps = 1200
  c.batch_size = 128
  c.checkpoint_every_steps = 400
  c.eval_every_steps = 400
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.rotnet.head_hidden_dim = 0
  c.rotnet.augment = True

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 200
  c.optim.weight_decay = 1e-4
  return c
