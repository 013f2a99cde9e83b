r"""SimCLR, tiny ConvNet, scikit-learn digits (8x8): a seconds-long run for smoke tests and debugging.

  python -m ssl_jax.main --config=configs/ssl/simclr_digits_tiny.py --workdir=/tmp/simclr_digits

Budget: 20 steps, seconds.
Result when we ran it (2026-12-02, 2 CPU cores otherwise idle): after 20 steps (3 s of training, 17 s for the
command) a linear probe of 0.798 and kNN 0.785 on the 297 test digits (raw pixels: 0.973). It exists to
exercise the whole loop, not to learn good features.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("simclr")
  c.total_steps = 20
  c.batch_size = 64
  c.checkpoint_every_steps = 10
  c.eval_every_steps = 10
  c.log_every_steps = 5

  c.data.name = "digits"

  c.model.encoder = "convnet"
  c.model.widths = (8, 16)

  c.simclr.proj_hidden_dim = 32
  c.simclr.proj_dim = 16
  c.simclr.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.5, 1.0), flip_p=0.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
      blur_p=(0.0, 0.0)))

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 2
  c.optim.weight_decay = 1e-4

  c.eval.monitor_examples = 500
  c.eval.probe_epochs = 20
  c.eval.batch_size = 256
  return c
