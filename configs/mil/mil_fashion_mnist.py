r"""Gated-attention MIL on bags of Fashion-MNIST images: a bag is positive when it holds an ankle boot.

Bags as MNIST-bags (Ilse et al. 2018): lengths from N(10, 2^2), instances drawn at random from the split,
target class 9; training bags from the training split, 1,000 test bags from the test split. The paper's
LeNet instance encoder, gated attention, Adam; 32 bags per step. Any pooling:
`--config=configs/mil/mil_fashion_mnist.py:pooling=instance_max`.

  python -m ssl_jax.main --config=configs/mil/mil_fashion_mnist.py --workdir=workdirs/mil_fmnist

Budget: 600 steps of 32 bags, about 4 minutes of training on 2 CPU cores.
Result when we ran it (2026-12-02, 2 CPU cores otherwise idle, with this config's predecessor
`gated_attention_mil`, which `mil` replaced: the same model, data and recipe; the random initialisation draws
its keys in another order, so a rerun differs slightly): bag AUC 0.9755 and bag accuracy 0.944 on the 1,000
test bags; the attention's instance AUC (within positive bags, ankle boots weighted above the rest) 0.980;
247 s of training, 4 min 21 s for the command.
"""

from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, train_bags=500, target_class=9, pooling="gated_attention")
  c = base_config("mil")
  c.total_steps = 600
  c.batch_size = 32
  c.checkpoint_every_steps = 200
  c.eval_every_steps = 200
  c.log_every_steps = 50

  c.data.name = "fashion_mnist"

  c.model.encoder = "lenet_mil"

  c.mil.pooling = arg.pooling
  c.mil.target_class = arg.target_class
  c.mil.train_bags = arg.train_bags
  c.mil.test_bags = 1000
  c.mil.mean_bag_size = 10.0
  c.mil.std_bag_size = 2.0

  c.optim.name = "adamw"
  c.optim.lr = 5e-4
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = 0
  c.optim.end_lr_factor = 1.0
  c.optim.weight_decay = 1e-4
  c.optim.b2 = 0.999
  return c
