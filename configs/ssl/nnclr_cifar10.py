r"""NNCLR, ResNet-18 (CIFAR stem), CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. solo-learn's CIFAR recipe (scripts/pretrain/cifar/nnclr.yaml): LARS lr 0.4 x
batch/256, trust coefficient 0.02, weight decay 1e-5, batch 256, projector 2048-2048-256, predictor
4096 -> 256, temperature 0.2, a support queue of 65536, asymmetric views (solarize on view 2); 1000 epochs
there, 200 here. (solo-learn also clips the LARS rate at the base rate, `clip_lr`; optax's LARS does not.)

  python -m ssl_jax.main --config=configs/ssl/nnclr_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn reports
91.88 top-1 after 1000 epochs, for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("nnclr")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.nnclr.temperature = 0.2
  c.nnclr.queue_size = 65536
  c.nnclr.proj_hidden_dim = 2048
  c.nnclr.proj_dim = 256
  c.nnclr.pred_hidden_dim = 4096
  c.nnclr.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0),
      solarize_p=(0.0, 0.2)))

  c.optim.name = "lars"
  c.optim.lr = 0.4
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 1e-5
  c.optim.trust_coefficient = 0.02

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
