r"""BYOL, ResNet-18 (CIFAR stem), CIFAR-10: solo-learn's CIFAR recipe, for a GPU/TPU.

Needs the TFDS `cifar10` dataset (downloaded by TFDS on a machine with internet, or prepared in
--config.data.tfds_data_dir). Hyperparameters follow solo-learn's `scripts/pretrain/cifar/byol.yaml`: LARS,
lr 1.0 x batch/256, weight decay 1e-5, batch 256, projector 4096-256, predictor 4096, tau 0.99 -> 1.0 (cosine),
BYOL's asymmetric views without blur at 32x32 (solarize on the second view), 1000 epochs (here 200).

  python -m ssl_jax.main --config=configs/ssl/byol_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn's table
reports BYOL among the best of its CIFAR-10 methods after 1000 epochs (above 0.9 linear top-1), for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("byol")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.byol.tau_base = 0.99
  c.byol.tau_final = 1.0
  c.byol.proj_hidden_dim = 4096
  c.byol.proj_dim = 256
  c.byol.pred_hidden_dim = 4096
  c.byol.views = views.to_config(views.SimCLRViews(
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0), solarize_p=(0.0, 0.2)))

  c.optim.name = "lars"
  c.optim.lr = 1.0
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 1e-5

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
