"""Methods: each a state pytree, `make(config, ...)`, `init(method, rng)`, a pure `step` and `features`.

`METHODS` maps a config's `method` field to its module; the trainer needs nothing else from a method.
"""

from ssl_jax.methods import simclr

METHODS = {"simclr": simclr}
