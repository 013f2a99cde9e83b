r"""SwAV, ResNet-18 (CIFAR stem), CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. solo-learn's CIFAR recipe (scripts/pretrain/cifar/swav.yaml): LARS lr 0.6 x
batch/256, trust coefficient 0.02, weight decay 1e-6, batch 256, projector 2048 -> 128, 3000 prototypes,
temperature 0.1, Sinkhorn epsilon 0.05 and 3 iterations, prototypes frozen for 2 epochs, a queue of 3840
per crop from epoch 50; 1000 epochs there, 200 here. solo-learn's CIFAR script uses two 32 x 32 crops; we add
the paper's multi-crop, 4 local crops of 16 x 16 (scale 0.05-0.14 is SwAV's ImageNet choice for 96 of 224).

  python -m ssl_jax.main --config=configs/ssl/swav_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn reports
89.17 top-1 after 1000 epochs (two crops), for comparison.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("swav")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.swav.num_prototypes = 3000
  c.swav.temperature = 0.1
  c.swav.sinkhorn_epsilon = 0.05
  c.swav.sinkhorn_iters = 3
  c.swav.freeze_prototypes_steps = 390     # 2 epochs
  c.swav.queue_size = 3840
  c.swav.queue_start_step = 9750           # epoch 50
  c.swav.proj_hidden_dim = 2048
  c.swav.proj_dim = 128
  c.swav.views = views.to_config(views.MultiCropViews(
      num_global=2, global_size=32, global_scale=(0.14, 1.0), num_local=4, local_size=16,
      local_scale=(0.05, 0.14), brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, global_blur_p=(0.5,),
      local_blur_p=0.5, global_solarize_p=(0.0,)))

  c.optim.name = "lars"
  c.optim.lr = 0.6
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 1e-6
  c.optim.trust_coefficient = 0.02

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
