r"""SimSiam, small ConvNet, Fashion-MNIST: predictor and stop-gradient, no target network, no negatives.

Pretrains on the 60,000 training images without labels; a linear probe and kNN on frozen features score it
on the 10,000 test images, beside the raw-pixel probe. The recipe of the BYOL config (same encoder, views and
AdamW) with SimSiam's heads: a 1-hidden-layer projector with BN on its output (the paper's CIFAR variant) and a
bottleneck predictor of a quarter of its width, whose learning rate stays constant.

  python -m ssl_jax.main --config=configs/ssl/simsiam_fashion_mnist.py --workdir=workdirs/simsiam_fashion_mnist

Budget: 4800 steps of 64 images (the 5 epochs that 1200 steps of 256 make, in 4x the updates), about 7 minutes
of training on 2 CPU cores.
Result when we ran it (2026-12-03, the command above, 2 CPU cores otherwise idle):
linear probe top-1 0.8803, kNN top-1 0.8485,
against 0.8454 for the raw-pixel probe; 441 s of training. One run, 0.03 points above the 0.88 goal: read it as
"at the goal". The same images in fewer, larger steps give less: 1200 steps of 256 (this config until 2026-12-02)
0.8707 / kNN 0.8421 in 392 s; 2400 steps of 128 (2026-12-03) 0.8795 / 0.8476 in 458 s. The monitor's RankMe
rose from 106 (step 1600) to 126 (step 3200) of 512 dimensions: no collapse. More epochs barely helped at
batch 256: 1600 steps (2026-12-02) gave 0.8733 in 653 s.
The other schedules: `--config.batch_size=128 --config.total_steps=2400 --config.optim.warmup_steps=400
--config.checkpoint_every_steps=800 --config.eval_every_steps=800`.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8790, kNN
top-1 0.8507, 247 s of training.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config

def get_config():
  c = base_config("simsiam")
  c.total_steps = 4800
  c.batch_size = 64
  c.checkpoint_every_steps = 1600
  c.eval_every_steps = 1600
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.simsiam.proj_layers = 1
  c.simsiam.proj_hidden_dim = 512
  c.simsiam.proj_dim = 512
  c.simsiam.pred_hidden_dim = 128
  c.simsiam.views = views.to_config(views.SimCLRViews(
      crop_scale=(0.3, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(0.0, 0.0)))

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 800
  c.optim.weight_decay = 1e-4
  return c
