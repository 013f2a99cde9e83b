r"""MoCo v2 (solo-learn's MoCo v2+), ResNet-18 (CIFAR stem), CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. solo-learn's CIFAR recipe (scripts/pretrain/cifar/mocov2plus.yaml): SGD
lr 0.3 x batch/256, momentum 0.9, weight decay 1e-4, batch 256, projector 2048 -> 256, temperature 0.2, a
queue of 32768 keys per view, tau 0.99 -> 0.999, symmetric views (blur on half); 1000 epochs there, 200 here.

  python -m ssl_jax.main --config=configs/ssl/moco_v2_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn reports
92.94 top-1 for MoCo v2+ after 1000 epochs, for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("moco_v2")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.moco_v2.temperature = 0.2
  c.moco_v2.queue_size = 32768
  c.moco_v2.tau_base = 0.99
  c.moco_v2.tau_final = 0.999
  c.moco_v2.proj_hidden_dim = 2048
  c.moco_v2.proj_dim = 256
  c.moco_v2.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, blur_p=(0.5, 0.5)))

  c.optim.name = "sgd"
  c.optim.lr = 0.3
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 1e-4

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
