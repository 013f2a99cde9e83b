r"""Label propagation over the frozen SimCLR ResNet-18 features of CIFAR-10, 40 labels, for a GPU/TPU.

The 50,000 training images are the nodes of a 10-NN graph over the features of the encoder that
configs/ssl/simclr_cifar10.py trains (phase 1); 40 of them are labelled (cifar10.0@40). Needs the TFDS `cifar10`
dataset and that run:

  python -m ssl_jax.main --config=configs/ssl/simclr_cifar10.py --workdir=workdirs/simclr_cifar10
  python -m ssl_jax.main --config=configs/semi/label_propagation_cifar10.py --workdir=$WORKDIR \
    --config.init_from=workdirs/simclr_cifar10

Result when we ran it: not run yet (this machine has no accelerator and no CIFAR-10); with self-supervised
features the graph links images of the same class far more often than on raw pixels (its `eval` results
will say by how much).
"""

from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, labels=40, label_seed=0, iterations=100)
  c = base_config("label_propagation")
  c.batch_size = 1000
  c.total_steps = 2 * 50 + arg.iterations  # 2 passes over 50 blocks of 1,000 nodes, then the iterations
  c.checkpoint_every_steps = 50
  c.eval_every_steps = 0
  c.log_every_steps = 10
  c.init_from = "workdirs/simclr_cifar10"
  c.init_params = "encoder"

  c.data.name = "cifar10"

  c.model.encoder = "resnet18_cifar"

  c.label_propagation.labels = arg.labels
  c.label_propagation.label_seed = arg.label_seed
  c.label_propagation.features = "encoder"
  c.label_propagation.k = 10
  c.label_propagation.gamma = 3.0
  c.label_propagation.alpha = 0.99
  return c
