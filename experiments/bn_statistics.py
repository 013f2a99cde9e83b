r"""A finished DANN-config run's target accuracy with its BatchNorm running statistics and with the target's own.

  python experiments/bn_statistics.py workdirs/da/mnist5k_to_digits28_mnist_layout_source_only [more workdirs]

For each run (a `configs/transfer/dann_*` run, source only, DANN or upper bound) prints the top-1 on the target's
test split (a) as the `accuracy` suite scores it, BatchNorm normalising with the running statistics of training,
and (b) normalising with the statistics of the target test split itself, as one batch (AdaBN, Li et al. 2016,
arXiv:1603.04779; nothing is trained), with how many test images each class was predicted for; and (c) the top-1
on the target's training split with the running statistics (its labels are used by no run but the upper bound).
The README's "Domain adaptation" section quotes (a) and (b) for the source-only runs.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str]) -> int:
  if not argv or argv[0].startswith("-"):
    print(__doc__, file=sys.stderr)
    return 2
  import jax.numpy as jnp

  from ssl_jax import cli
  from ssl_jax import evaluate
  from ssl_jax.data import datasets
  from ssl_jax.methods import classifier, common
  cli.quiet_libraries()
  for workdir in argv:
    config = evaluate.read_run(workdir)
    plan, state, step = evaluate.restore_run(workdir, config)
    net = classifier.make(config, plan.info)
    mean, std = (np.asarray(v, np.float32) for v in common.normalizer(config))

    def predict(images, batch_statistics):
      x = jnp.asarray((images.astype(np.float32) / 255.0 - mean) / std)
      feats, _ = common.apply(net.encoder, state.params["encoder"], state.batch_stats["encoder"], x,
                              train=batch_statistics)
      return np.asarray(net.head.apply({"params": state.params["classifier"]}, feats)).argmax(-1)

    test = datasets.load_arrays(config.dann.target, "test", tfds_data_dir=config.data.tfds_data_dir or None)
    train = datasets.load_arrays(config.dann.target, "train", tfds_data_dir=config.data.tfds_data_dir or None)
    print(f"{workdir} (step {step}, {config.data.name} -> {config.dann.target}):")
    for name, batch_statistics in (("running statistics", False), ("target test statistics (AdaBN)", True)):
      p = predict(test.images, batch_statistics)
      print(f"  target test top-1 {np.mean(p == test.labels):.4f} with {name}; predictions per class "
            f"{np.bincount(p, minlength=10).tolist()}")
    print(f"  target train top-1 {np.mean(predict(train.images, False) == train.labels):.4f} with running statistics",
          flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
