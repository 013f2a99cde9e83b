r"""Pi-model, WRN-28-2, CIFAR-10 with 40 labels (4 per class): USB's classic-CV setting, for a GPU/TPU.

Needs the TFDS `cifar10` dataset (downloaded by TFDS on a machine with internet, or prepared in
--config.data.tfds_data_dir). Hyperparameters are USB's (config/classic_cv/pimodel/pimodel_cifar10_40_0.yaml):
batch 64 labelled + 1 x 64 unlabelled, SGD with Nesterov momentum 0.9, lr 0.03, weight decay 5e-4, 2^20 steps
with cosine decay, EMA 0.999; consistency weight lambda_u 10 ramped up linearly over the first 40% of training
(USB's ramp-up; the paper's is sigmoid). The label budget and the split's seed are arguments:

  python -m ssl_jax.main --config=configs/semi/pi_model_cifar10.py --workdir=$WORKDIR
  python -m ssl_jax.main --config=configs/semi/pi_model_cifar10.py:labels=250,label_seed=1 --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); the FlexMatch paper
(Table 1, TorchSSL) reports 74.34% error (about 0.26 top-1) for the Pi-model at 40 labels, for comparison.
"""

from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, labels=40, label_seed=0)
  c = base_config("pi_model")
  c.total_steps = 1048576        # 2^20, USB's num_train_iter
  c.batch_size = 64
  c.checkpoint_every_steps = 10240
  c.eval_every_steps = 5120
  c.log_every_steps = 256

  c.data.name = "cifar10"

  c.model.encoder = "wrn28_2"

  c.pi_model.labels = arg.labels
  c.pi_model.label_seed = arg.label_seed
  c.pi_model.mu = 1
  c.pi_model.lambda_u = 10.0
  c.pi_model.unsup_warmup = 0.4
  c.pi_model.rampup = 'linear'
  c.pi_model.ema_decay = 0.999

  c.optim.name = "sgd"
  c.optim.lr = 0.03
  c.optim.scale_lr_with_batch = False
  c.optim.nesterov = True
  c.optim.momentum = 0.9
  c.optim.warmup_steps = 0
  c.optim.end_lr_factor = 0.2    # USB: lr cos(7 pi k / 16 K) ends at cos(7 pi / 16) = 0.195 of the peak
  c.optim.weight_decay = 5e-4

  c.eval.pixel_baseline = False
  return c
