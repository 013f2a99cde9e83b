r"""VAE, ResNet-18 (CIFAR stem) encoder and a 4-stage ConvDecoder, CIFAR-10, for a GPU/TPU.

Needs the TFDS `cifar10` dataset. Kingma & Welling 2014 (Gaussian likelihood with a fixed sigma of 0.1 on
pixels in [0, 1], 128 latents); the posterior reads the 512 pooled ResNet-18 features, the decoder starts from a 4x4
grid. Adam(W) lr 1e-3 with a cosine decay, batch 256, 200 epochs, no augmentation:
the usual recipe of convolutional auto-encoder baselines.

  python -m ssl_jax.main --config=configs/ssl/vae_cifar10.py --workdir=$WORKDIR

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10). There is no standard
published linear probe for this exact setup; auto-encoder features are known to probe far below
contrastive ones on CIFAR-10 (below 0.6 in most reports, against about 0.9 for SimCLR), for comparison.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("vae")
  c.total_steps = 39000          # 200 epochs of 50,000 images at batch 256
  c.batch_size = 256
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5000
  c.log_every_steps = 100

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"
  c.model.dtype = "bfloat16"

  c.vae.latent_dim = 128
  c.vae.likelihood = "gaussian"
  c.vae.sigma = 0.1
  c.vae.decoder_widths = (256, 128, 64, 32)

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 500
  c.optim.weight_decay = 1e-4

  c.eval.monitor_examples = 10000
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
