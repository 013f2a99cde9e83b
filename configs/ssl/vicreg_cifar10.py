r"""VICReg, ResNet-18 (CIFAR stem), CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. solo-learn's CIFAR recipe (scripts/pretrain/cifar/vicreg.yaml): LARS lr 0.3
x batch/256, trust coefficient 0.02, weight decay 1e-4 (biases and norms excluded), batch 256, projector
2048-2048-2048, coefficients 25 / 25 / 1, crops of 20-100 % with solarize on 10 % of the views; 1000
epochs there, 200 here. (solo-learn also clips the LARS rate at the base rate, `clip_lr`; optax's LARS does not.)

  python -m ssl_jax.main --config=configs/ssl/vicreg_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn reports
92.07 top-1 after 1000 epochs, for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("vicreg")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.vicreg.sim_coeff = 25.0
  c.vicreg.std_coeff = 25.0
  c.vicreg.cov_coeff = 1.0
  c.vicreg.proj_layers = 2
  c.vicreg.proj_hidden_dim = 2048
  c.vicreg.proj_dim = 2048
  c.vicreg.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0),
      solarize_p=(0.1, 0.1)))

  c.optim.name = "lars"
  c.optim.lr = 0.3
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 1e-4
  c.optim.trust_coefficient = 0.02

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
