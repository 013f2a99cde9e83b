r"""NNCLR, small ConvNet, Fashion-MNIST: the positive is the nearest neighbour in a support queue.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe. The recipe of the BYOL config (same encoder, views and
AdamW) with NNCLR's heads (3-layer projector with BN on its output, 2-layer predictor) and a support queue of
16384 projections (64 steps).

  python -m ssl_jax.main --config=configs/ssl/nnclr_fashion_mnist.py --workdir=workdirs/nnclr_fashion_mnist

Budget: 1200 steps, about 8 minutes of training on 2 CPU cores.
Result when we ran it (2026-12-02, 2 CPU cores shared with test runs, load 3-5): linear probe top-1 0.8836,
kNN top-1 0.8654, against 0.8454 for the raw-pixel probe; 1109 s of training on the shared cores.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8819, kNN
top-1 0.8653, 320 s of training.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("nnclr")
  c.total_steps = 1200
  c.batch_size = 256
  c.checkpoint_every_steps = 400
  c.eval_every_steps = 400
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.nnclr.temperature = 0.2
  c.nnclr.queue_size = 16384
  c.nnclr.proj_hidden_dim = 512
  c.nnclr.proj_dim = 128
  c.nnclr.pred_hidden_dim = 512
  c.nnclr.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.3, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0),
      solarize_p=(0.0, 0.2)))

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 200
  c.optim.weight_decay = 1e-4
  return c
