r"""SimCLR, tiny ConvNet, scikit-learn digits (8x8): a seconds-long run for smoke tests and debugging.

  python -m ssl_jax.main --config=configs/simclr/digits_tiny.py --workdir=/tmp/simclr_digits

Result when we ran it (2 shared CPU cores, 2026-11-23): after 20 steps (14 s of training) a linear probe of
0.78 and kNN 0.79 on the 297 test digits (raw pixels: 0.97). It exists to exercise the whole loop, not to
learn good features.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config()
  c.method = "simclr"
  c.total_steps = 20
  c.batch_size = 64
  c.checkpoint_every_steps = 10
  c.eval_every_steps = 10
  c.log_every_steps = 5

  c.data.name = "digits"

  c.views.crop_scale_min = 0.5
  c.views.flip_p = 0.0

  c.model.encoder = "convnet"
  c.model.widths = (8, 16)
  c.model.proj_hidden_dim = 32
  c.model.proj_dim = 16

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 2
  c.optim.weight_decay = 1e-4

  c.eval.monitor_examples = 500
  c.eval.probe_epochs = 20
  c.eval.feature_batch_size = 256
  return c
