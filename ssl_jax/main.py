"""Train any experiment config:

  python -m ssl_jax.main --config=configs/<family>/<experiment>.py --workdir=DIR [--config.field=value ...]

Running the same command again on the same DIR resumes from the latest checkpoint.
"""

from __future__ import annotations

import sys

from ssl_jax import cli

USAGE = ("python -m ssl_jax.main --config=configs/<family>/<experiment>.py --workdir=DIR "
         "[--config.total_steps=200 --config.seed=1 ...]\n\n" + __doc__)


def main(argv: list[str]) -> int:
  from ssl_jax.train.errors import UserError
  values, overrides = cli.split_args(argv, known=("config", "workdir"), usage=USAGE)
  if "config" not in values or "workdir" not in values:
    raise UserError(f"Both --config and --workdir are needed; usage: {USAGE.splitlines()[0]}")
  from ssl_jax.train import config as config_lib
  config = config_lib.apply_overrides(config_lib.load_config(values["config"]), overrides)
  config_lib.validate(config)
  cli.quiet_libraries()
  from ssl_jax.train.trainer import train_and_evaluate
  train_and_evaluate(config, values["workdir"])
  return 0


if __name__ == "__main__":
  cli.run_main(lambda: main(sys.argv[1:]))
