r"""Denoising auto-encoder, small ConvNet encoder and ConvDecoder, Fashion-MNIST.

Pretrains on the 60,000 training images without labels (no augmentation); a linear probe and kNN on the
encoder's frozen features score it on the 10,000 test images, beside the raw-pixel probe, and the
`reconstruction` suite writes the test reconstruction MSE and reconstructions.png.

  python -m ssl_jax.main --config=configs/ssl/denoising_autoencoder_fashion_mnist.py --workdir=workdirs/denoising_autoencoder_fashion_mnist

Budget: 1000 steps, about 9 minutes of training on 2 idle CPU cores (561 s measured).
Result when we ran it (2026-12-02, `python experiments/ssl_benchmark.py --methods=denoising_autoencoder`, 2 CPU
cores, the only training job): linear probe 0.8828, kNN 0.8602 (raw-pixel probe 0.8454), reconstruction MSE 0.0143;
561 s of training, 1000 steps.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8803, kNN
top-1 0.8605, 309 s of training.
"""

from ssl_jax.train.config import base_config

def get_config():
  c = base_config("denoising_autoencoder")
  c.total_steps = 1000
  c.batch_size = 256
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 500
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.denoising_autoencoder.noise = "masking"
  c.denoising_autoencoder.noise_level = 0.25

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 1e-4
  return c
