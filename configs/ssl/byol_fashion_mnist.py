r"""BYOL, small ConvNet, Fashion-MNIST: EMA target network with BYOL's cosine tau schedule.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe.

  python -m ssl_jax.main --config=configs/ssl/byol_fashion_mnist.py --workdir=workdirs/byol_fashion_mnist

Budget: 1200 steps, about 9 minutes of training on 2 CPU cores.
Result when we ran it (2026-12-02, 2 CPU cores otherwise idle): linear probe top-1 0.8752, kNN top-1 0.8476,
against 0.8454 for the raw-pixel probe; 534 s of training, 10 min 5 s for the command.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config

def get_config():
  c = base_config("byol")
  c.total_steps = 1200
  c.batch_size = 256
  c.checkpoint_every_steps = 400
  c.eval_every_steps = 400
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
  c.optim.warmup_steps = 200
  c.optim.weight_decay = 1e-4
  return c
