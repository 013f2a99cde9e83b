r"""MoCo v2, small ConvNet, Fashion-MNIST: momentum key encoder and a queue of negatives, symmetric loss.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe. The recipe of the SimCLR config (same encoder, views
and AdamW) with MoCo's key encoder (EMA, tau 0.99 -> 1 on the cosine schedule) and one queue of 8192 keys
per view (32 steps of keys).

  python -m ssl_jax.main --config=configs/ssl/moco_v2_fashion_mnist.py --workdir=workdirs/moco_v2_fashion_mnist

Budget: 1200 steps, about 9 minutes of training on 2 CPU cores.
Result when we ran it (2026-12-02, 2 CPU cores shared with other jobs, load average 4-6): linear probe top-1
0.8741, kNN top-1 0.8494, against 0.8454 for the raw-pixel probe (SimCLR: 0.8815 / 0.8575); 732 s of training
on the shared cores. Below the 0.88 goal. A smaller queue and a constant tau of 0.99, to keep the negatives
fresher in a run of only 1200 steps, did not help (2026-12-02, `--config.moco_v2.queue_size=4096
--config.moco_v2.tau_final=0.99`, the only job on 2 CPU cores: linear probe 0.8728, kNN 0.8478; 544 s of
training on idle cores, a little less than this config's, whose queue is twice as long).
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config


def get_config():
  c = base_config("moco_v2")
  c.total_steps = 1200
  c.batch_size = 256
  c.checkpoint_every_steps = 400
  c.eval_every_steps = 400
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.moco_v2.temperature = 0.2
  c.moco_v2.queue_size = 8192
  c.moco_v2.tau_base = 0.99
  c.moco_v2.tau_final = 1.0
  c.moco_v2.proj_hidden_dim = 512
  c.moco_v2.proj_dim = 128
  c.moco_v2.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.3, 1.0), brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, blur_p=(0.0, 0.0)))

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 200
  c.optim.weight_decay = 1e-4
  return c
