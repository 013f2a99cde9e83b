r"""VAE, small ConvNet encoder and ConvDecoder, Fashion-MNIST.

Pretrains on the 60,000 training images without labels (no augmentation); a linear probe and kNN on the
encoder's frozen features score it on the 10,000 test images, beside the raw-pixel probe, and the
`reconstruction` suite writes the test reconstruction MSE and reconstructions.png.

  python -m ssl_jax.main --config=configs/ssl/vae_fashion_mnist.py --workdir=workdirs/vae_fashion_mnist

Budget: 1000 steps, about 10 minutes of training on 2 idle CPU cores (the auto-encoder, the same network, took 617 s).
Result when we ran it (2026-12-02, `python experiments/ssl_benchmark.py --methods=vae`, 2 CPU cores, beside a CI
run): linear probe 0.8764, kNN 0.8528 (raw-pixel probe 0.8454), reconstruction MSE 0.0189; 705 s of training, 1000
steps.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8744, kNN
top-1 0.8536, 278 s of training.
"""

from ssl_jax.train.config import base_config

def get_config():
  c = base_config("vae")
  c.total_steps = 1000
  c.batch_size = 256
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 500
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)

  c.vae.latent_dim = 32
  c.vae.likelihood = "bernoulli"

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 1e-4
  return c
