r"""Fine-tuning on 1% (or any fraction) of the Fashion-MNIST labels, from a self-supervised run or from scratch.

The ConvNet of the SimCLR/BYOL configs (widths 16-32-64-512) with a new linear head, trained on a
class-balanced split of `fraction` of the 60,000 training labels (fashion_mnist.0@600 for 1%); the encoder
comes from `--config.init_from` or, without it, is trained from scratch. The pretrained encoder trains at the
head's learning rate (`finetune.pretrained_lr_scale=1`): chosen on the held-out split `label_seed=100`, from the
SimCLR run, over 0.1 / 0.3 / 0.5 / 1 (test top-1 at 1%: 0.8066 / 0.8179 / 0.8180 / 0.8177; at 10%: 0.8244 /
0.8455 / 0.8516 / 0.8564; best on the mean of the two; `--config.init_from=<the SimCLR run>
--config.finetune.label_seed=100 --config.finetune.label_fraction=F --config.finetune.pretrained_lr_scale=S`).
The smaller rates of discriminative fine-tuning do not pay on this budget: in 600 steps at 0.1x the encoder
barely moves and the network ends below training from scratch at 10%.

  python -m ssl_jax.main --config=configs/transfer/finetune_fashion_mnist.py --workdir=workdirs/finetune_simclr_1pc \
    --config.init_from=workdirs/simclr_fashion_mnist
  python -m ssl_jax.main --config=configs/transfer/finetune_fashion_mnist.py:fraction=0.1 --workdir=...  # 10%
  python -m ssl_jax.main --config=configs/transfer/finetune_fashion_mnist.py:train_stages=1 ...  # top stage only

Budget: 600 steps of 64 images, about a minute of training on 2 idle CPU cores.
Result when we ran it (2026-12-03, `python experiments/transfer.py`, 2 CPU cores beside one MIL training job): test
top-1 with 1% / 10% of the labels 0.8087 / 0.8577 from a SimCLR run of its config (linear probe 0.8824), 0.8125 /
0.8602 from a BYOL run of its config, 0.7964 / 0.8453 from scratch (+1.2 / +1.2 points from SimCLR; the issue's goal
of +5 at 1% is not met); a LinearSVC on the frozen SimCLR encoder gets 0.7916 / 0.8613. 41 s of training (SimCLR,
1%). With the encoder at 0.1x (`--config.finetune.pretrained_lr_scale=0.1`, this config until 2026-12-02): 0.8010 /
0.8234.
It is also both arms of `experiments/baseline_vs_ssl.py --method=simclr` (5,000 labels, from SimCLR pretrained on the
split's 25,000 images without labels, or from scratch; 2026-12-05, seeds 0-2, 2 idle CPU cores): 0.8578 +- 0.0029
against 0.8443 +- 0.0010 from scratch in this config's 600 steps, 0.8808 +- 0.0028 against 0.8755 +- 0.0028 with
`--finetune_steps=2400` (with 5,000 labels, 600 steps leave the network short of converged).
"""

from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, fraction=0.01, train_stages=0, label_seed=0)
  c = base_config("finetune")
  c.total_steps = 600
  c.batch_size = 64
  c.checkpoint_every_steps = 300
  c.eval_every_steps = 300
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64, 512)  # the self-supervised runs' encoder

  c.finetune.label_fraction = arg.fraction
  c.finetune.label_seed = arg.label_seed
  c.finetune.train_stages = arg.train_stages
  c.finetune.pretrained_lr_scale = 1.0
  c.finetune.ema_decay = 0.99

  c.optim.name = "adamw"
  c.optim.lr = 2e-3
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 50
  c.optim.weight_decay = 1e-4
  return c
