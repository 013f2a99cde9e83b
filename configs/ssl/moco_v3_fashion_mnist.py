r"""MoCo v3, ViT-Tiny (patch 7), Fashion-MNIST: momentum keys of the batch, prediction head, symmetric loss.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe. ViT-Tiny on 28 x 28 images with 7 x 7 patches (a 4 x 4
grid), projector 512-512-128 and predictor 512-128 (MoCo v3's BN heads), temperature 0.2, momentum
0.99 -> 1, the BYOL config's views, AdamW. ViT-Tiny's 12 blocks cost about 20 times the small ConvNet per
image: the budget allows far fewer steps.

  python -m ssl_jax.main --config=configs/ssl/moco_v3_fashion_mnist.py --workdir=workdirs/moco_v3_fashion_mnist

Budget: 200 steps at batch 128, about 10 minutes of training on 2 CPU cores (estimated from a
few timed steps on a shared machine).
Result when we ran it: not run yet; its Fashion-MNIST run did not fit in the CPU time of the session that
added it (2026-12-02); `python experiments/ssl_benchmark.py --methods=moco_v3` runs it.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("moco_v3")
  c.total_steps = 200
  c.batch_size = 128
  c.checkpoint_every_steps = 50
  c.eval_every_steps = 100
  c.log_every_steps = 10

  c.data.name = "fashion_mnist"

  c.model.encoder = "vit_tiny"
  c.model.patch_size = 7

  c.moco_v3.temperature = 0.2
  c.moco_v3.tau_base = 0.99
  c.moco_v3.tau_final = 1.0
  c.moco_v3.proj_hidden_dim = 512
  c.moco_v3.proj_dim = 128
  c.moco_v3.pred_hidden_dim = 512
  c.moco_v3.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.3, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0),
      solarize_p=(0.0, 0.2)))

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 20
  c.optim.weight_decay = 0.1

  c.eval.monitor_examples = 2000   # the ViT is slow to run over 10,000 images at every monitor
  return c
