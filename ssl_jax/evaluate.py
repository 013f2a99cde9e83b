"""Evaluate a checkpoint of a run with the suites of its method:

  python -m ssl_jax.evaluate --workdir=DIR [--step=N] [--config.eval.knn_k=200 ...]

The config is read back from DIR/config.json. Overrides may change only how evaluation runs (`eval.*`,
`distributed.*` and the data paths); anything that changes what is evaluated is refused. Each result is
added to DIR/eval_results.json under a name that records the step and the overrides (e.g.
"step_1200" or "step_1200 eval.knn_k=200"), so results of other protocols are never overwritten.
"""

from __future__ import annotations

import json
import os

from ssl_jax import cli

USAGE = "python -m ssl_jax.evaluate --workdir=DIR [--step=N] [--config.eval.field=value ...]\n\n" + __doc__

EVAL_FIELDS = ("eval.", "distributed.", "data.data_dir", "data.tfds_data_dir")


def _workdir(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--workdir="):
      return arg[len("--workdir="):]
    if arg == "--workdir" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def result_name(step: int, argv: list[str]) -> str:
  """The name an evaluation is stored under: its step and its overrides, in order."""
  overrides = [a[len("--config."):] for a in argv if a.startswith("--config.")]
  return " ".join([f"step_{step}", *overrides])


def main(argv: list[str]) -> int:
  from absl import flags
  from ml_collections import config_flags

  from ssl_jax.errors import UserError
  from ssl_jax.train import config as config_lib

  workdir = _workdir(argv)
  if not workdir:
    raise UserError(f"--workdir is needed; usage: {USAGE.splitlines()[0]}")
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"No run found in {workdir!r} (no config.json); pass the --workdir of a training run.")
  with open(path) as f:
    saved = config_lib.from_json(f.read(), where=path)

  def define(fv):
    flags.DEFINE_string("workdir", None, "Folder of the training run.", flag_values=fv)
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).", flag_values=fv)
    config_flags.DEFINE_config_dict("config", saved, "The run's config; only eval.* may change.",
                                    lock_config=True, flag_values=fv, sys_argv=["ssl_jax"] + list(argv))

  def check(args):
    cli.check_overrides(saved, args, allowed=lambda d: d.startswith(EVAL_FIELDS) or d in EVAL_FIELDS,
                        why=(": evaluation reads the run's own config and data, and only eval.*, "
                             "distributed.* and the data paths may change"))

  fv = cli.parse(argv, usage=USAGE, flags_spec=define, config_check=check)
  config = fv.config
  cli.quiet_libraries()
  import jax

  from ssl_jax.train import mesh as mesh_lib
  from ssl_jax.train import reporting, trainer
  from ssl_jax.train.checkpoint import Checkpointer
  mesh_lib.initialize_distributed(config.distributed)
  plan = trainer.preflight(config)
  checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise UserError(f"No checkpoint in {checkpointer.directory}; train first with python -m ssl_jax.main.")
    if fv.step is not None:
      if fv.step not in steps:
        raise UserError(f"There is no checkpoint of step {fv.step} in {checkpointer.directory}; the steps "
                        f"there are {', '.join(map(str, steps))}.")
      state, step = checkpointer.restore(plan.abstract_state, fv.step), fv.step
    else:
      restored = checkpointer.restore_latest(plan.abstract_state, move_damaged=False)
      if restored is None:
        raise UserError(f"No checkpoint in {checkpointer.directory} restores; train again.")
      state, step = restored
  finally:
    checkpointer.close()
  stream = trainer.load_stream(plan)
  print(f"Evaluating the checkpoint of step {step} in {workdir} on {stream.name}.", flush=True)
  ctx = trainer.suite_context(plan, stream, log=lambda t: print(t, flush=True), figures_dir=workdir)
  results = {"steps": step, "data": stream.name,
             **trainer.run_suites(plan, ctx, state, final=True)}
  if jax.process_index() == 0:
    out_path = os.path.join(workdir, "eval_results.json")
    everything = {}
    if os.path.exists(out_path):
      try:
        with open(out_path) as f:
          everything = json.load(f)
      except json.JSONDecodeError:
        everything = {}
    name = result_name(step, argv)
    everything[name] = results
    with open(out_path, "w") as f:
      json.dump(everything, f, indent=2)
    print(reporting.results_table(results), flush=True)
    print(f"Wrote {out_path} [{name!r}].", flush=True)
  return 0


if __name__ == "__main__":
  cli.run(main)
