"""Evaluate the latest checkpoint of a run (linear probe and kNN on frozen features):

  python -m ssl_jax.evaluate --workdir=DIR [--config.eval.knn_k=200 ...]

The config is read back from DIR/config.json; overrides change only how the evaluation runs. Results are
printed and written to DIR/eval_results.json.
"""

from __future__ import annotations

import json
import os
import sys

from ssl_jax import cli

USAGE = "python -m ssl_jax.evaluate --workdir=DIR [--config.eval.field=value ...]\n\n" + __doc__


def main(argv: list[str]) -> int:
  from ssl_jax.train.errors import UserError
  values, overrides = cli.split_args(argv, known=("workdir",), usage=USAGE)
  workdir = values.get("workdir")
  if not workdir:
    raise UserError(f"--workdir is needed; usage: {USAGE.splitlines()[0]}")
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"No run found in {workdir!r} (no config.json); pass the --workdir of a training run.")
  import ml_collections

  from ssl_jax.train import config as config_lib
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  config = config_lib.apply_overrides(config, overrides)
  cli.quiet_libraries()
  import jax

  from ssl_jax.train import mesh as mesh_lib
  from ssl_jax.train import reporting, trainer
  from ssl_jax.train.checkpoint import Checkpointer
  mesh_lib.initialize_distributed(config.distributed)
  mesh = mesh_lib.make_mesh()
  info, train, test = trainer.load_data(config)
  module, method = trainer.build(config, info)
  checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
  if checkpointer.latest_step() is None:
    raise UserError(f"No checkpoint in {checkpointer.directory}; train first with python -m ssl_jax.main.")
  state, step = trainer.create_or_restore(module, method, config, mesh, checkpointer)
  print(f"Evaluating the checkpoint of step {step} in {workdir}.", flush=True)
  results = {"steps": step, **trainer.evaluate_representation(
      trainer.features_fn(module, method, mesh), state, train, test, config, mesh)}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "eval_results.json"), "w") as f:
      json.dump(results, f, indent=2)
    print(reporting.results_table(results), flush=True)
  checkpointer.close()
  return 0


if __name__ == "__main__":
  cli.run_main(lambda: main(sys.argv[1:]))
