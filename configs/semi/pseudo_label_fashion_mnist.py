r"""Pseudo-Label, small ConvNet, Fashion-MNIST with a class-balanced split of 250 labels (25 per class).

The same network, optimiser and split as configs/semi/fixmatch_fashion_mnist.py (compare with it and with
the labelled-only baseline configs/semi/supervised_fashion_mnist.py). The label budget and the split's seed
are arguments:

  python -m ssl_jax.main --config=configs/semi/pseudo_label_fashion_mnist.py --workdir=workdirs/pseudo_label_fmnist_250
  python -m ssl_jax.main --config=configs/semi/pseudo_label_fashion_mnist.py:labels=40,label_seed=1 --workdir=...

The unlabelled weight is lambda_u = 3 (Lee 2013 ramps it up to 3): chosen on the selection split
fashion_mnist.100@250 (seed 100, apart from the reported seeds), where it gave 0.7633 against 0.7595 for
lambda_u = 1 and 0.7596 for the labelled-only baseline (`python experiments/semi_supervised.py
--methods=pseudo_label --labels=250 --seeds=100 --set=pseudo_label.lambda_u=L`, each L its own --workdirs), and
confirmed on seeds 0-2 (below).

Budget: 1200 steps (unlabelled batch 7 x 32, weak views only), about 2.5 minutes of training on 2 CPU cores
(138-140 s per run below).
Result when we ran it (2026-12-03, `python experiments/semi_supervised.py --methods=supervised,pseudo_label
--labels=250 --seeds=0,1,2`, 2 CPU cores, the only training job), test top-1 (EMA model): 0.7633 (0.7600),
0.7558 (0.7448), 0.7223 (0.7317), mean 0.7471 +- 0.0218, against the labelled-only baseline's 0.7440, 0.7368,
0.7269 (mean 0.7359 +- 0.0086): ahead by 1.9 and 1.9 points on seeds 0 and 1, 0.5 points below on seed 2, so the
mean gain (1.1 points) is within the seed-to-seed spread. lambda_u = 1 (`--set=pseudo_label.lambda_u=1`) gave
0.7588, 0.7410, 0.7189 (mean 0.7396 +- 0.0200) on the same splits, below lambda_u = 3 on every seed. (The first
run of this config, 2026-12-02 on older code, seed 0, lambda_u 1: 0.7550 against a baseline of 0.7520.)
A lower confidence threshold (2026-12-05), chosen on the selection split: tau = 0.7 gave 0.7746 and Lee's tau = 0
0.7743 on fashion_mnist.100@250, against 0.7633 for this config's 0.95 (`python experiments/semi_supervised.py
--methods=pseudo_label --labels=250 --seeds=100 --set=pseudo_label.threshold=T`). On seeds 0-2 (`python
experiments/semi_supervised.py --methods=supervised,pseudo_label --labels=250 --seeds=0,1,2
--set=pseudo_label.threshold=0.7`, 2 idle CPU cores, 86-101 s per run): 0.7535, 0.7647, 0.7416 against the
baseline's 0.7549, 0.7389, 0.7337 in the same command (-0.1, +2.6, +0.8 points), still below it on one split, so
the config keeps USB's 0.95. (Those baselines differ from the 2026-12-03 ones above by up to 1.1 points: the same
config on today's code; single runs moved as much between code versions before, see the README's note on the
first one-seed table.)
"""

from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, labels=250, label_seed=0)
  c = base_config("pseudo_label")
  c.total_steps = 1200
  c.batch_size = 32
  c.checkpoint_every_steps = 300
  c.eval_every_steps = 300
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "convnet"
  c.model.widths = (16, 32, 64)

  c.pseudo_label.labels = arg.labels
  c.pseudo_label.label_seed = arg.label_seed
  c.pseudo_label.mu = 7
  c.pseudo_label.threshold = 0.95
  c.pseudo_label.lambda_u = 3.0  # selected on fashion_mnist.100@250 (see above)
  c.pseudo_label.unsup_warmup = 0.4
  c.pseudo_label.ema_decay = 0.99

  c.optim.name = "sgd"
  c.optim.lr = 0.1
  c.optim.scale_lr_with_batch = False
  c.optim.nesterov = True
  c.optim.warmup_steps = 0
  c.optim.end_lr_factor = 0.2
  c.optim.weight_decay = 5e-4
  return c
