r"""SupCon, ResNet-18 (CIFAR stem), CIFAR-10, for a GPU/TPU: the supervised reference of the contrastive family.

Needs the TFDS `cifar10` dataset. solo-learn's CIFAR recipe (scripts/pretrain/cifar/supcon.yaml): SGD lr 0.4 x
batch/256, momentum 0.9, weight decay 1e-5, batch 256, projector 2048 -> 256 (no BatchNorm), temperature
0.2, SimCLR's symmetric views (colour strength 0.8, blur on half); 1000 epochs there, 200 here.

  python -m ssl_jax.main --config=configs/ssl/supcon_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn reports
93.82 top-1 after 1000 epochs, for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("supcon")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.supcon.temperature = 0.2
  c.supcon.proj_hidden_dim = 2048
  c.supcon.proj_dim = 256
  c.supcon.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.08, 1.0), brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, blur_p=(0.5, 0.5)))

  c.optim.name = "sgd"
  c.optim.lr = 0.4
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 1e-5

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
