r"""BYOL, small ConvNet, Fashion-MNIST: EMA target network with BYOL's cosine tau schedule.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe.

  python -m ssl_jax.main --config=configs/ssl/byol_fashion_mnist.py --workdir=workdirs/byol_fashion_mnist

Budget: 4800 steps of 64 images (the 5 epochs that 1200 steps of 256 make, in 4x the updates), about 8 minutes
of training on 2 CPU cores.
Result when we ran it (2026-12-03, the command above, 2 CPU cores otherwise idle):
linear probe top-1 0.8815, kNN top-1 0.8589,
against 0.8454 for the raw-pixel probe; 483 s of training.
The same images in fewer, larger steps give less (same day, one run each): 1200 steps of 256 (this config until
then; 2026-12-02, idle cores) 0.8752 / kNN 0.8476 in 534 s; 2400 steps of 128, 0.8788 / 0.8525 in 542 s. The
cost per image of a step is about the same at every batch size here (1.6-1.8 ms), so on this budget more,
smaller updates are free, and BYOL, with no negatives, needs no large batch.
The other schedules: `--config.batch_size=128 --config.total_steps=2400 --config.optim.warmup_steps=400
--config.checkpoint_every_steps=800 --config.eval_every_steps=800`.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8815, kNN
top-1 0.8589, 389 s of training.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config

def get_config():
  c = base_config("byol")
  c.total_steps = 4800
  c.batch_size = 64
  # One CPU device: this step is not faster split over the cores (91 against 98 ms per step on 2 cores, 2026-12-04,
  # `python benchmarks/cpu_devices.py`); the default, one device per core, helps convolution-heavy steps.
  c.distributed.cpu_devices = 1
  c.checkpoint_every_steps = 1600
  c.eval_every_steps = 1600
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.byol.tau_base = 0.99
  c.byol.proj_hidden_dim = 512
  c.byol.proj_dim = 128
  c.byol.pred_hidden_dim = 512
  # BYOL's asymmetric views without blur (28 x 28 pixels are too few to blur), solarize on view 2.
  c.byol.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.3, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0),
      solarize_p=(0.0, 0.2)))

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 800
  c.optim.weight_decay = 1e-4
  return c
