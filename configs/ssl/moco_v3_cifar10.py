r"""MoCo v3, ViT-Tiny (patch 4), CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. The paper's ViT recipe (AdamW lr 1.5e-4 x batch/256, weight decay 0.1,
40 warm-up epochs, momentum 0.99 -> 1 on the cosine schedule, projector 4096-4096-256 and predictor
4096-256 with BN) with solo-learn's CIFAR temperature 0.2 and asymmetric views (solarize on view 2); 4 x 4
patches (an 8 x 8 grid); 200 epochs at batch 256.

  python -m ssl_jax.main --config=configs/ssl/moco_v3_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn reports
93.10 top-1 for MoCo v3 with a ResNet-18 after 1000 epochs, for comparison (no ViT number on CIFAR-10 there).
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("moco_v3")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "vit_tiny"
  c.model.patch_size = 4
  c.model.dtype = "bfloat16"

  c.moco_v3.temperature = 0.2
  c.moco_v3.tau_base = 0.99
  c.moco_v3.tau_final = 1.0
  c.moco_v3.proj_hidden_dim = 4096
  c.moco_v3.proj_dim = 256
  c.moco_v3.pred_hidden_dim = 4096
  c.moco_v3.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0),
      solarize_p=(0.0, 0.2)))

  c.optim.name = "adamw"
  c.optim.lr = 1.5e-4
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 7800    # 40 epochs
  c.optim.weight_decay = 0.1

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
