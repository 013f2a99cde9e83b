r"""SimCLR, ResNet-18 (CIFAR stem), CIFAR-10: the standard small-scale benchmark, for a GPU/TPU.

Needs the TFDS `cifar10` dataset (downloaded by TFDS on a machine with internet, or prepared in
--config.data.tfds_data_dir). Hyperparameters follow solo-learn's CIFAR SimCLR recipe (LARS, batch 256,
lr 0.4 x batch/256, temperature 0.2, 1000 epochs; here 200 epochs).

  python -m ssl_jax.main --config=configs/ssl/simclr_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); 200 epochs of this
recipe reach about 0.88 linear-probe top-1 in solo-learn's published tables, for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("simclr")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.simclr.temperature = 0.2
  c.simclr.proj_hidden_dim = 2048
  c.simclr.proj_dim = 256
  c.simclr.views = views.to_config(views.SimCLRViews(
      brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, blur_p=(0.0, 0.0), solarize_p=(0.1, 0.1)))

  c.optim.name = "lars"
  c.optim.lr = 0.4
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 1e-5

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
