r"""SimSiam, ResNet-18 (CIFAR stem), CIFAR-10: the paper's CIFAR variant with solo-learn's recipe, for a GPU/TPU.

Needs the TFDS `cifar10` dataset (downloaded by TFDS on a machine with internet, or prepared in
--config.data.tfds_data_dir). Hyperparameters follow the SimSiam paper's CIFAR experiment and solo-learn's
`scripts/pretrain/cifar/simsiam.yaml`: SGD with momentum 0.9, lr 0.5 x batch/256 (the predictor's constant),
weight decay 1e-5, batch 256, a 2-layer projector of 2048 with BN on its output, predictor bottleneck 512,
800 epochs in the paper (here 200).

  python -m ssl_jax.main --config=configs/ssl/simsiam_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); the SimSiam paper reports
91.8% top-1 on CIFAR-10 with this ResNet-18 variant after 800 epochs (its appendix D), for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("simsiam")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.simsiam.proj_layers = 1      # the paper's CIFAR projector: 2 layers in all
  c.simsiam.proj_hidden_dim = 2048
  c.simsiam.proj_dim = 2048
  c.simsiam.pred_hidden_dim = 512
  c.simsiam.fixed_predictor_lr = True
  c.simsiam.views = views.to_config(views.SimCLRViews(
      brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, blur_p=(0.0, 0.0)))

  c.optim.name = "sgd"
  c.optim.lr = 0.5
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 0
  c.optim.weight_decay = 1e-5

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
