"""Train any experiment config:

  python -m ssl_jax.main --config=configs/<family>/<method>_<dataset>.py[:arg] --workdir=DIR [--config.field=value ...]

Running the same command again on the same DIR resumes from the latest checkpoint; a finished run prints
its results. Overrides are absl/ml_collections flags: `--config.total_steps=200 --config.optim.lr=0.5`.
"""

from __future__ import annotations

from ssl_jax import cli

USAGE = ("python -m ssl_jax.main --config=configs/<family>/<method>_<dataset>.py --workdir=DIR "
         "[--config.total_steps=200 --config.seed=1 ...]\n\n" + __doc__)


def _config_path(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg[len("--config="):]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def main(argv: list[str]) -> int:
  from absl import flags
  from ml_collections import config_flags

  from ssl_jax.errors import UserError
  from ssl_jax.train import config as config_lib

  def define(fv):
    config_flags.DEFINE_config_file("config", None, "Experiment config file, FILE.py or FILE.py:arg.",
                                    lock_config=True, flag_values=fv, sys_argv=["ssl_jax"] + list(argv))
    flags.DEFINE_string("workdir", None, "Folder of the run: checkpoints, logs, results.", flag_values=fv)

  def check(args):
    path = _config_path(args)
    if not path:
      raise UserError(f"--config is needed; usage: {USAGE.splitlines()[0]}")
    cli.check_overrides(config_lib.load_config(path), args)

  fv = cli.parse(argv, usage=USAGE, flags_spec=define, config_check=check)
  if not fv.workdir:
    raise UserError(f"--workdir is needed; usage: {USAGE.splitlines()[0]}")
  cli.quiet_libraries()
  from ssl_jax.train.trainer import train_and_evaluate
  train_and_evaluate(fv.config, fv.workdir)
  return 0


if __name__ == "__main__":
  cli.run(main)
