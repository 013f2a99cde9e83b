r"""UDA, WRN-28-2, CIFAR-10 with 40 labels (4 per class): USB's classic-CV setting, for a GPU/TPU.

Needs the TFDS `cifar10` dataset (downloaded by TFDS on a machine with internet, or prepared in
--config.data.tfds_data_dir). Hyperparameters are USB's (config/classic_cv/uda/uda_cifar10_40_0.yaml): batch
64 labelled + 7 x 64 unlabelled, SGD with Nesterov momentum 0.9, lr 0.03, weight decay 5e-4, 2^20 steps with
cosine decay, EMA 0.999; sharpening temperature 0.4, confidence threshold 0.8, lambda_u 1, no TSA. The label
budget and the split's seed are arguments:

  python -m ssl_jax.main --config=configs/semi/uda_cifar10.py --workdir=$WORKDIR
  python -m ssl_jax.main --config=configs/semi/uda_cifar10.py:labels=250,label_seed=1 --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); the FlexMatch paper
(Table 1, TorchSSL) reports 10.62% error (about 0.89 top-1) for UDA at 40 labels, for comparison.
"""

from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, labels=40, label_seed=0)
  c = base_config("uda")
  c.total_steps = 1048576        # 2^20, USB's num_train_iter
  c.batch_size = 64
  c.checkpoint_every_steps = 10240
  c.eval_every_steps = 5120
  c.log_every_steps = 256

  c.data.name = "cifar10"

  c.model.encoder = "wrn28_2"

  c.uda.labels = arg.labels
  c.uda.label_seed = arg.label_seed
  c.uda.mu = 7
  c.uda.temperature = 0.4
  c.uda.threshold = 0.8
  c.uda.lambda_u = 1.0
  c.uda.tsa = 'none'
  c.uda.ema_decay = 0.999

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
