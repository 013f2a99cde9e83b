r"""Barlow Twins, small ConvNet, Fashion-MNIST: the views' cross-correlation pushed to the identity.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe. The recipe of the BYOL config (same encoder, views and
AdamW) with solo-learn's 3-layer projector (two Linear-BN-ReLU layers, then Linear), 1024 wide.

  python -m ssl_jax.main --config=configs/ssl/barlow_twins_fashion_mnist.py \
      --workdir=workdirs/barlow_twins_fashion_mnist

Budget: 1200 steps, about 8 minutes of training on 2 CPU cores.
Result when we ran it: queued, not run yet.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("barlow_twins")
  c.total_steps = 1200
  c.batch_size = 256
  c.checkpoint_every_steps = 400
  c.eval_every_steps = 400
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.barlow_twins.lambda_ = 0.0051
  c.barlow_twins.scale_loss = 0.1
  c.barlow_twins.proj_layers = 2
  c.barlow_twins.proj_hidden_dim = 1024
  c.barlow_twins.proj_dim = 1024
  c.barlow_twins.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.3, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0),
      solarize_p=(0.0, 0.2)))

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 200
  c.optim.weight_decay = 1e-4
  return c
