r"""DINO, ViT-Tiny (patch 4), CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. The paper's ViT recipe (AdamW lr 5e-4 x batch/256, weight decay 0.04,
gradient clipping at 3, 10 warm-up epochs, teacher temperature 0.04 -> 0.07 over 30 epochs, centre momentum
0.9, teacher EMA 0.996 -> 1, last layer frozen for the first epoch, 2 global + 6 local crops) with
solo-learn's CIFAR head (2048 hidden, 256 bottleneck, 4096 prototypes); 32 x 32 global and 16 x 16 local
crops, 4 x 4 patches (8 x 8 and 4 x 4 grids); 200 epochs at batch 256.

  python -m ssl_jax.main --config=configs/ssl/dino_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); solo-learn reports
89.52 top-1 for DINO with a ResNet-18 after 1000 epochs, for comparison (no ViT number on CIFAR-10 there).
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("dino")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "vit_tiny"
  c.model.patch_size = 4
  c.model.dtype = "bfloat16"

  c.dino.num_prototypes = 4096
  c.dino.hidden_dim = 2048
  c.dino.bottleneck_dim = 256
  c.dino.student_temperature = 0.1
  c.dino.warmup_teacher_temperature = 0.04
  c.dino.teacher_temperature = 0.07
  c.dino.warmup_teacher_temperature_steps = 5850   # 30 epochs
  c.dino.center_momentum = 0.9
  c.dino.tau_base = 0.996
  c.dino.tau_final = 1.0
  c.dino.freeze_last_layer_steps = 195             # 1 epoch
  c.dino.views = views.to_config(views.MultiCropViews(
      num_global=2, global_size=32, global_scale=(0.4, 1.0), num_local=6, local_size=16,
      local_scale=(0.05, 0.4), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, global_blur_p=(1.0, 0.1),
      local_blur_p=0.5, global_solarize_p=(0.0, 0.2)))

  c.optim.name = "adamw"
  c.optim.lr = 5e-4
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 1950    # 10 epochs
  c.optim.weight_decay = 0.04
  c.optim.grad_clip_norm = 3.0

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
