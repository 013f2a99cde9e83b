r"""Co-training of two WRN-28-2 on weak and strong views, WRN-28-2, CIFAR-10 with 40 labels: USB's classic CV recipe, for a GPU.

USB's hyperparameters (Wang et al. 2022, github microsoft/Semi-supervised-learning, config/classic_cv): SGD
with Nesterov momentum 0.9, lr 0.03 with a cosine decay to cos(7 pi / 16) of it, weight decay 5e-4, labelled
batch 64, mu 7, EMA 0.999, 2^20 steps. Needs the TFDS `cifar10` dataset (prepared in
--config.data.tfds_data_dir, or downloaded by TFDS on a machine with internet). The label budget is an argument:

  python -m ssl_jax.main --config=configs/semi/co_training_cifar10.py --workdir=$WORKDIR
  python -m ssl_jax.main --config=configs/semi/co_training_cifar10.py:labels=250 --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); there is no published USB number for it: compare it with this repo's FixMatch config on the same split.
"""

from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, labels=40, label_seed=0)
  c = base_config("co_training")
  c.total_steps = 1048576
  c.batch_size = 64
  c.checkpoint_every_steps = 5000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "wrn28_2"

  c.co_training.labels = arg.labels
  c.co_training.label_seed = arg.label_seed
  c.co_training.mu = 7
  c.co_training.threshold = 0.95
  c.co_training.ema_decay = 0.999

  c.optim.name = "sgd"
  c.optim.lr = 0.03
  c.optim.scale_lr_with_batch = False
  c.optim.nesterov = True
  c.optim.momentum = 0.9
  c.optim.warmup_steps = 0
  c.optim.end_lr_factor = 0.2   # cos(7 pi / 16) = 0.195
  c.optim.weight_decay = 5e-4

  c.eval.monitor_examples = 10000
  return c
