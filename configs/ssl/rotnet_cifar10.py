r"""RotNet, ResNet-18 (CIFAR stem), CIFAR-10: the paper's CIFAR recipe, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. As Gidaris et al. 2018 (arXiv:1803.07728) on CIFAR-10: all four rotations
of each image in the batch (128 images, 512 rotated), SGD with Nesterov momentum 0.9, lr 0.1, weight decay
5e-4, 100 epochs (the paper's step decay at 30/60/80 replaced by a cosine decay), crop-pad and flip before
rotating; the backbone is ResNet-18 as solo-learn's tables rather than the paper's NIN.

  python -m ssl_jax.main --config=configs/ssl/rotnet_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); the paper reports 0.8907
for a classifier on the second block of a 4-block NIN (not a linear probe on the final features), for
comparison.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("rotnet")
  c.total_steps = 39100          # 100 epochs of 50,000 images at batch 128
  c.batch_size = 128
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.rotnet.head_hidden_dim = 0
  c.rotnet.augment = True

  c.optim.name = "sgd"
  c.optim.lr = 0.1
  c.optim.scale_lr_with_batch = False
  c.optim.nesterov = True
  c.optim.warmup_steps = 0
  c.optim.weight_decay = 5e-4

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
