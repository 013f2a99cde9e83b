r"""DANN from digits28 (labelled) to mnist5k (unlabelled): target accuracy on the mnist5k test split.

A small ConvNet with a linear label head and a domain classifier (100 hidden units) behind the gradient
reversal layer, lambda_p = w (2 / (1 + exp(-10 p)) - 1) with w = 0.3, and the paper's annealed SGD learning rate. The same
file gives the source-only baseline (`:domain_weight=0`) and, with source = target, the upper bound
trained on the target's own labels (`:domain_weight=0,source=mnist5k`).

  python -m ssl_jax.main --config=configs/transfer/dann_digits28_to_mnist5k.py --workdir=workdirs/dann_digits28_to_mnist5k
  python -m ssl_jax.main --config=configs/transfer/dann_digits28_to_mnist5k.py:domain_weight=0 --workdir=...  # source only
  python -m ssl_jax.main --config=configs/transfer/dann_digits28_to_mnist5k.py:domain_weight=0,source=mnist5k --workdir=...  # bound

Budget: 800 steps of 64 + 64 images, 1-3 minutes of training on 2 idle CPU cores.
Result when we ran it (2026-12-02, `python experiments/domain_adaptation.py`, 2 CPU cores shared with other jobs at
a load of about 10): mnist5k test top-1 0.3370 with DANN, against 0.1770 for source only and 0.8280 for the upper bound:
DANN closes 0.25 of the gap (the goal of 0.5 is not met); 436 s of training under that load (rerun on
the idle cores: the same 0.3370, 43 s of training, 54 s for the command). With the
paper's full weight (`:domain_weight=1`) the adversarial game destabilised the label predictor and DANN
reached only 0.2270.
"""

from ssl_jax.methods.transfer import dann
from ssl_jax.train.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, domain_weight=0.3, source="digits28")
  return dann.digits_recipe(base_config("dann"), source=arg.source, target="mnist5k",
                            domain_weight=arg.domain_weight)
