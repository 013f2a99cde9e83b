r"""VQ-VAE, Fashion-MNIST: a 7x7 grid of codes from a 512-entry codebook; phase 1 of BEiT (its tokenizer).

Pretrains on the 60,000 training images without labels; a linear probe and kNN on the encoder's frozen z_e
(7 x 7 x 32 values per image, before quantisation) score it on the 10,000 test images, beside the raw-pixel
probe, and the `reconstruction` suite writes the test MSE of the quantised reconstructions and
reconstructions.png. Its `encoder` part (the conv encoder and the codebook) is the tokenizer that
configs/ssl/beit_fashion_mnist.py loads with init_from.

  python -m ssl_jax.main --config=configs/ssl/vq_vae_fashion_mnist.py --workdir=workdirs/vq_vae_fashion_mnist

Budget: 1000 steps, about 10 minutes of training on 2 idle CPU cores (610 s measured).
Result when we ran it (2026-12-02, `python experiments/ssl_benchmark.py --methods=vq_vae`, 2 CPU cores, the only
training job): linear probe 0.8902, kNN 0.8706 (raw-pixel probe 0.8454), reconstruction MSE 0.0095; 610 s of
training, 1000 steps.
The encoder under the codebook is the best label-free one of the benchmark on this budget (the tokenizer is
phase 1 of BEiT, `configs/ssl/beit_fashion_mnist.py`).
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.8874, kNN
top-1 0.8706, 313 s of training.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("vq_vae")
  c.total_steps = 1000
  c.batch_size = 256
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 500
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.vq_vae.codebook_size = 512
  c.vq_vae.embed_dim = 32
  c.vq_vae.beta = 0.25
  c.vq_vae.encoder_widths = (32, 64, 64)   # 28 -> 14 -> 7: one code per 4x4 patch of BEiT's ViT
  c.vq_vae.decoder_widths = (64, 32, 16)

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.0
  return c
