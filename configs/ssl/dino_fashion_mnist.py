r"""DINO, ViT-Tiny (patch 7), Fashion-MNIST: self-distillation with multi-crop, centring and sharpening.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe. ViT-Tiny on 28 x 28 images with 7 x 7 patches (a 4 x 4
grid; the 14 x 14 local crops give 2 x 2), 2 global and 2 local crops, a DINO head 512-512-128 to 1024
prototypes, teacher temperature 0.04 -> 0.07 over the first third, centre momentum 0.9, teacher EMA
0.99 -> 1, the last layer frozen for the first 20 steps, AdamW with gradient clipping at 3 (DINO's).
ViT-Tiny's 12 blocks cost about 20 times the small ConvNet per image: the budget allows far fewer steps.

  python -m ssl_jax.main --config=configs/ssl/dino_fashion_mnist.py --workdir=workdirs/dino_fashion_mnist

Budget: 200 steps at batch 128, about 10 minutes of training on 2 CPU cores (estimated from a
few timed steps on a shared machine).
Result when we ran it: not run yet; its Fashion-MNIST run did not fit in the CPU time of the session that
added it (2026-12-02); `python experiments/ssl_benchmark.py --methods=dino` runs it.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("dino")
  c.total_steps = 200
  c.batch_size = 128
  c.checkpoint_every_steps = 50
  c.eval_every_steps = 100
  c.log_every_steps = 10

  c.data.name = "fashion_mnist"

  c.model.encoder = "vit_tiny"
  c.model.patch_size = 7

  c.dino.num_prototypes = 1024
  c.dino.hidden_dim = 512
  c.dino.bottleneck_dim = 128
  c.dino.student_temperature = 0.1
  c.dino.warmup_teacher_temperature = 0.04
  c.dino.teacher_temperature = 0.07
  c.dino.warmup_teacher_temperature_steps = 60
  c.dino.center_momentum = 0.9
  c.dino.tau_base = 0.99
  c.dino.tau_final = 1.0
  c.dino.freeze_last_layer_steps = 20
  c.dino.views = views.to_config(views.MultiCropViews(
      num_global=2, global_size=28, global_scale=(0.3, 1.0), num_local=2, local_size=14,
      local_scale=(0.1, 0.3), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, global_blur_p=(0.0,),
      local_blur_p=0.0, global_solarize_p=(0.0, 0.2)))

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 20
  c.optim.weight_decay = 0.04
  c.optim.grad_clip_norm = 3.0

  c.eval.monitor_examples = 2000   # the ViT is slow to run over 10,000 images at every monitor
  return c
