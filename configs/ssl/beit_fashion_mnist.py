r"""BEiT phase 2, ViT-mini (patch 4), Fashion-MNIST: predict the VQ-VAE tokens of 40% masked patches.

Phase 1 trains the tokenizer (configs/ssl/vq_vae_fashion_mnist.py: a 7x7 grid of codes from 512, one per 4x4
patch); this config loads it with init_from, keeps it frozen in the state's extra, and trains a ViT-mini (4
blocks, 128 wide, 49 patches) to predict the code of each masked patch. A linear probe and kNN on the ViT's
frozen CLS features of whole images score it on the 10,000 test images, beside the raw-pixel probe.

  python -m ssl_jax.main --config=configs/ssl/vq_vae_fashion_mnist.py --workdir=workdirs/vq_vae_fashion_mnist
  python -m ssl_jax.main --config=configs/ssl/beit_fashion_mnist.py --workdir=workdirs/beit_fashion_mnist \
      --config.init_from=workdirs/vq_vae_fashion_mnist

Budget: 500 steps of batch 128 (the ViT sees all 50 tokens), about 6 minutes of training on 2 idle CPU cores (379 s
measured), after the 10 minutes of phase 1 (610 s).
Result when we ran it (2026-12-02, `python experiments/ssl_benchmark.py --methods=beit`, 2 CPU cores, the only
training job): linear probe 0.7463, kNN 0.7429 (raw-pixel probe 0.8454); 379 s of training, 500 steps.
Far below the raw-pixel probe, where the BEiT paper also puts a linear probe (BEiT-B 56.7% on ImageNet against
MoCo v3's 76.7%): masked-token prediction trains features for fine-tuning, and 500 steps of a 4-block ViT are a
smoke-scale run of a method the paper trains for 800 epochs; its own tokenizer's encoder probes at 0.8902.
Re-run of this config on 2026-12-05 (`python experiments/ssl_benchmark.py
--out=experiments/results/ssl_benchmark_2026-12-05`, 2 otherwise idle CPU cores): linear probe top-1 0.7466, kNN
top-1 0.7338, 227 s of training.
"""

from ssl_jax.train.config import base_config


def get_config():
  c = base_config("beit")
  c.total_steps = 500
  c.batch_size = 128
  c.checkpoint_every_steps = 250
  c.eval_every_steps = 250
  c.log_every_steps = 50
  c.init_from = "workdirs/vq_vae_fashion_mnist"   # phase 1; override with --config.init_from

  c.data.name = "fashion_mnist"

  c.model.encoder = "vit_mini"
  c.model.patch_size = 4

  c.beit.tokenizer = "init_from"
  c.beit.mask_ratio = 0.4
  c.beit.tokenizer_widths = (32, 64, 64)   # as configs/ssl/vq_vae_fashion_mnist.py
  c.beit.codebook_size = 512
  c.beit.embed_dim = 32

  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_lr_with_batch = False
  c.optim.b2 = 0.98
  c.optim.warmup_steps = 50
  c.optim.weight_decay = 0.05
  return c
