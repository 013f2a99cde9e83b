r"""MoCo v3, Fashion-MNIST: momentum keys of the batch, prediction head, symmetric loss; ConvNet or ViT-Tiny.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe. Projector 512-512-128 and predictor 512-128 (MoCo v3's
BN heads), temperature 0.2, momentum 0.99 -> 1 (cosine), the BYOL config's views, AdamW.

Two encoders, chosen by the argument:
  * `encoder=convnet` (default): the small ConvNet (16-32-64-512) of the other joint-embedding configs, 1200
    steps at batch 256 (MoCo v3's paper also trains ResNet-50), so it is comparable with them;
  * `encoder=vit_tiny`: ViT-Tiny with 7 x 7 patches (a 4 x 4 grid), the paper's architecture. Its 12 blocks cost
    about 20 times the ConvNet per image, so the same budget allows 200 steps at batch 128: a smoke-scale run
    on a CPU, a real one on an accelerator.

  python -m ssl_jax.main --config=configs/ssl/moco_v3_fashion_mnist.py --workdir=workdirs/moco_v3_fashion_mnist
  python -m ssl_jax.main --config=configs/ssl/moco_v3_fashion_mnist.py:encoder=vit_tiny --workdir=workdirs/moco_v3_vit_fmnist

Budget: ConvNet 1200 steps at batch 256, about 9 minutes of training on 2 CPU cores (a momentum encoder's forward
pass more than SimCLR); ViT-Tiny 200 steps at batch 128, about 10 minutes (estimated from a few timed steps on
a shared machine).
Result when we ran it (2026-12-02, `python experiments/ssl_benchmark.py --methods=moco_v3`, 2 CPU cores, the only
training job): linear probe 0.8806, kNN 0.8625 (raw-pixel probe 0.8454); 646 s of training, 1200 steps.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8787, kNN
top-1 0.8592, 355 s of training.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, encoder="convnet")
  vit = arg.encoder.startswith("vit")
  c = base_config("moco_v3")
  c.total_steps = 200 if vit else 1200
  c.batch_size = 128 if vit else 256
  c.checkpoint_every_steps = 50 if vit else 400
  c.eval_every_steps = 100 if vit else 400
  c.log_every_steps = 10 if vit else 50

  c.data.name = "fashion_mnist"

  c.model.encoder = arg.encoder
  if vit:
    c.model.patch_size = 7
  else:
    c.model.widths = (16, 32, 64, 512)

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
  c.optim.lr = 1e-3 if vit else 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 20 if vit else 200
  c.optim.weight_decay = 0.1 if vit else 1e-4

  if vit:
    c.eval.monitor_examples = 2000   # the ViT is slow to run over 10,000 images at every monitor
  return c
