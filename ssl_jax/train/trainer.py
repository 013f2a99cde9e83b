"""The one trainer: `train_and_evaluate(config, workdir)` runs any method of any family.

Flow (the trainer never names a family; the method module says what it needs, see `ssl_jax.methods`):

1. preflight, before any data is loaded or anything compiled: the config's fields and names, the dataset's
   metadata, the method's stream against the batch size and the devices, the method's static parts, and
   the state's shapes (`jax.eval_shape`); a mistake costs seconds and is one sentence;
2. the dataset is loaded (TFDS) into host memory, or opened for reading by index when it is streamed
   (`data.streamed`, `ssl_jax.data.streamed`), and the method's stream built on it (`ssl_jax.data.streams`);
3. the state is restored from the newest checkpoint that restores (a damaged one is moved aside), or
   created already replicated on the mesh, from `init_from`'s parameters when given;
4. the loop: this process's rows of the global batch, sharded along "data", through the jitted pure step
   (state donated); metrics logged; checkpoints every `checkpoint_every_steps`; the suites' monitors every
   `eval_every_steps`;
5. the method's suites at the end: results.json, TensorBoard, report.png and a table on the console.

Nothing is lost when a run stops early: on SIGTERM or SIGINT, at any moment (compiling, training,
monitoring, evaluating), the current step is saved and committed before the process exits with one
sentence; on several hosts, they agree on the step first (JAX's preemption sync). A NaN stops the run
before anything non-finite is saved. Running the same command again resumes; a finished run is not
trained or evaluated again.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ssl_jax import data as data_lib
from ssl_jax.data import streams
from ssl_jax.errors import UserError
from ssl_jax.evaluation import suites as suites_lib
from ssl_jax.methods import METHODS
from ssl_jax.train import config as config_lib
from ssl_jax.train import mesh as mesh_lib
from ssl_jax.train import reporting
from ssl_jax.train.checkpoint import Checkpointer

# The host dispatches steps ahead of the devices; it waits for the step this many steps back before dispatching
# more. Unbounded (only the log flush waited; log_every_steps=300), two XLA CPU devices deadlocked whenever two runs
# shared the cores or a persistent compilation cache (JAX_COMPILATION_CACHE_DIR) was on: an all-reduce waited 40 s
# for the second device and XLA aborted the process (jax 0.10.2). A few steps ahead keep the devices as busy.
MAX_STEPS_IN_FLIGHT = 4


class NonFiniteLossError(UserError):
  """The loss (or the gradients or parameters) stopped being finite."""


class Interrupted(UserError):
  """The run got SIGTERM or SIGINT; its state was checkpointed.

  The command exits with status 75 (EX_TEMPFAIL, "try again"), not 2, so that a cluster script tells a
  preempted run (resubmit it: it resumes) from a mistake (do not resubmit): see `experiments/launch/`.
  """
  exit_code = 75


def _is_main() -> bool:
  return jax.process_index() == 0


def _say(text: str) -> None:
  if _is_main():
    print(text, flush=True)


def prepare_workdir(workdir: str) -> None:
  """Create the workdir and prove it is writable, before any expensive work."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test_{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise UserError(f"Cannot write to the workdir {workdir!r} ({e.strerror}); pass a --workdir you can "
                    "write to.") from e


class StopSignal:
  """Turns SIGTERM/SIGINT into a request the loop honours at its next check: save, then exit.

  Installed for the whole run, so a signal during compilation, data loading, a monitor or the final
  evaluation is honoured too. With several processes, SIGTERM is left to JAX's preemption notifier
  (`Checkpointer.reached_preemption` makes every host stop at the same step) and SIGINT is passed on to
  it as a SIGTERM.
  """

  def __init__(self):
    self.signal_name: str | None = None
    self._old = {}
    self._multi = False

  @property
  def requested(self) -> bool:
    """A stop this process may act on alone (with several processes they agree via the checkpointer)."""
    return bool(self.signal_name) and not self._multi

  def __enter__(self) -> StopSignal:
    multi = self._multi = jax.process_count() > 1
    for sig in (signal.SIGINT,) if multi else (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[sig] = signal.signal(sig, self._forward if multi else self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name

  def _forward(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name
    os.kill(os.getpid(), signal.SIGTERM)

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
  """What preflight established: the method, its stream spec and static parts, the mesh, the state's shape."""
  config: Any
  module: Any
  spec: Any
  info: data_lib.DatasetInfo
  method: Any
  mesh: Any
  abstract_state: Any
  streamed: bool = False

  @property
  def repl(self):
    return mesh_lib.replicated(self.mesh)

  @property
  def sharded(self):
    return mesh_lib.batch_sharded(self.mesh)


def preflight(config) -> Plan:
  """Everything that can be checked before loading data and compiling; each mistake is one UserError."""
  config_lib.validate(config)
  module = METHODS[config.method]
  spec = with_subset(module.stream(config), config)
  if getattr(spec, "reads_own_data", False):  # e.g. bags read from patient folders: the spec knows the shape
    info = spec.info
  else:
    info = data_lib.dataset_info(config.data.name, tfds_data_dir=config.data.tfds_data_dir or None,
                                 data_dir=config.data.data_dir or None, image_size=config.data.image_size,
                                 channels=config.data.channels)
  streamed = False
  if not getattr(spec, "reads_own_data", False):
    streamed, info = streaming_plan(config, info)
  groups = spec.check(batch_size=config.batch_size, info=info)
  mesh = mesh_lib.make_mesh()
  mesh_lib.check_batch_size(config.batch_size, mesh)
  for group, rows in groups.items():
    if rows % mesh.size:
      raise UserError(f"The {group} batch of {rows} rows is not divisible by the {mesh.size} devices; pick a "
                      "batch_size that makes every part of the batch a multiple of the device count.")
  method = module.make(config, info)
  init_fn = functools.partial(module.init, method)
  abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(config.seed))
  repl = mesh_lib.replicated(mesh)
  abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl), abstract)
  return Plan(config=config, module=module, spec=spec, info=info, method=method, mesh=mesh,
              abstract_state=abstract, streamed=streamed)


def with_subset(spec, config):
  """The method's stream spec, restricted to `data.subset` when the config sets one (label-free streams only)."""
  if not config.data.subset:
    return spec
  if not isinstance(spec, streams.Images):
    raise UserError(f"data.subset={config.data.subset!r} restricts the label-free image stream of the self-supervised "
                    f"methods; {config.method} draws its own split (its section's `labels`, `label_seed` and, for "
                    "semi-supervised methods, `unlabelled`): leave data.subset empty.")
  try:
    return dataclasses.replace(spec, subset=streams.Subset.parse(config.data.subset))
  except ValueError as e:
    raise UserError(str(e)) from None


def streaming_plan(config, info: data_lib.DatasetInfo) -> tuple[bool, data_lib.DatasetInfo]:
  """Whether the run streams its dataset (`data.streamed`, see `ssl_jax.data.streamed.use_streaming`), and the
  dataset's metadata with the image shape the streams will give (images of varying sizes: data.image_size)."""
  name, size = config.data.name, config.data.image_size
  streamed = data_lib.use_streaming(config.data.streamed, info)
  h, w, c = info.image_shape
  if None in (h, w):
    if not streamed:
      raise UserError(f"The images of {name} vary in size, so they can only be streamed; set "
                      "--config.data.streamed=auto (or yes).")
    if size <= 0:
      raise UserError(f"The images of {name} vary in size; set --config.data.image_size=S (e.g. 224) to resize "
                      "their shorter side to S and centre-crop them on the host.")
    info = dataclasses.replace(info, image_shape=(size, size, c))
  return streamed, info


def load_stream(plan: Plan) -> streams.Stream:
  """Load the dataset's train and test splits and build the method's stream on them.

  The splits are held in host memory (`load_arrays`) or, when the plan streams (`data.streamed`), read by
  index from disk (`load_streamed`: labels in memory, images decoded on the host when a batch asks for them).
  A spec with `reads_own_data` (the folder bags) reads its files itself and gets no dataset.
  """
  c = plan.config
  if getattr(plan.spec, "reads_own_data", False):
    return plan.spec.build(None, batch_size=c.batch_size, seed=c.seed)
  kwargs = dict(data_dir=c.data.data_dir or None, tfds_data_dir=c.data.tfds_data_dir or None,
                image_size=c.data.image_size, channels=c.data.channels)
  load = data_lib.load_streamed if plan.streamed else data_lib.load_arrays
  train = load(c.data.name, plan.info.train_split, **kwargs)
  test = load(c.data.name, plan.info.test_split, **kwargs)
  data = streams.Data(train, test, name=c.data.name, data_dir=kwargs["data_dir"],
                      tfds_data_dir=kwargs["tfds_data_dir"])
  return plan.spec.build(data, batch_size=c.batch_size, seed=c.seed)


def pretrained_parts(config, mesh) -> dict | None:
  """The parameters (and BatchNorm statistics) that `init_from` loads: the latest checkpoint of that run.

  The other run's method is rebuilt from its config.json to know its state's shape, its latest
  checkpoint is restored with orbax, and its "encoder" part (`init_params=encoder`) or every part
  (`init_params=all`) is returned as {"params": {...}, "batch_stats": {...}}.
  """
  if not config.init_from:
    return None
  source = config.init_from
  path = os.path.join(source, "config.json")
  if not os.path.exists(path):
    raise UserError(f"init_from={source!r} is not a training run (no config.json there); pass the --workdir "
                    "of a run made with python -m ssl_jax.main.")
  with open(path) as f:
    other = config_lib.from_json(f.read(), where=path)
  other.distributed = config.distributed
  plan = preflight(other)
  checkpointer = Checkpointer(source, keep=other.keep_checkpoints)
  try:
    restored = checkpointer.restore_latest(plan.abstract_state, move_damaged=False)
  finally:
    checkpointer.close()
  if restored is None:
    raise UserError(f"init_from={source!r} has no checkpoint to start from; train it first.")
  state, step = restored
  parts = ("encoder",) if config.init_params == "encoder" else tuple(state.params)
  missing = [p for p in parts if p not in state.params]
  if missing:
    raise UserError(f"The run in {source} has no `{missing[0]}` parameters to load; its parts are "
                    f"{', '.join(state.params)}.")
  _say(f"Starting from {', '.join(parts)} of step {step} of {source} ({other.method}).")
  return {"params": {p: state.params[p] for p in parts},
          "batch_stats": {p: state.batch_stats[p] for p in parts if p in state.batch_stats}}


def jit_init(plan: Plan, repl) -> Callable:
  """`init(rng, pretrained) -> state`, jitted with the state replicated by `repl`."""
  return jax.jit(lambda rng, pre: plan.module.init(plan.method, rng, pre), out_shardings=repl)


def jit_step(plan: Plan, repl, sharded) -> Callable:
  """`step(state, batch) -> (state, metrics)`, jitted as training runs it: the state replicated by `repl` and
  donated, the batch split by `sharded`. (The tests jit the step through this too, so their 8-device programs
  are the training run's, read back from the persistent compilation cache.)"""
  return jax.jit(functools.partial(plan.module.step, plan.method), donate_argnums=0,
                 in_shardings=(repl, sharded), out_shardings=(repl, repl))


def create_or_restore(plan: Plan, checkpointer: Checkpointer) -> tuple[Any, int | None]:
  """The newest checkpoint that restores (state, step), or a fresh state placed replicated on the mesh."""
  restored = checkpointer.restore_latest(plan.abstract_state,
                                         warn=lambda t: print(t, file=sys.stderr, flush=True))
  if restored is not None:
    return restored
  pretrained = pretrained_parts(plan.config, plan.mesh)
  return jit_init(plan, plan.repl)(jax.random.PRNGKey(plan.config.seed), pretrained), None


def _check_finite(step: int, metrics: dict[str, Any], last_good: int | None, checkpointer) -> None:
  for key in ("train/loss", "train/l2_grads", "train/l2_params"):
    if key in metrics and not np.isfinite(metrics[key]):
      kept = (f"the last good checkpoint (step {last_good}) is kept in {checkpointer.directory}"
              if last_good is not None else "no checkpoint had been written yet")
      raise NonFiniteLossError(
          f"{key} became {float(metrics[key])} at step {step}; training stopped and {kept}: lower "
          "optim.lr (or set optim.grad_clip_norm) and run the same command again to resume.")


def suite_context(plan: Plan, stream: streams.Stream, *, log=_say,
                  figures_dir: str | None = None) -> suites_lib.Context:
  """The suites' context; figures (attention maps, embeddings) go to `figures_dir` on process 0 only."""
  predict = jax.jit(functools.partial(plan.module.predict, plan.method),
                    in_shardings=(plan.repl, plan.sharded), out_shardings=plan.sharded)
  return suites_lib.Context(predict=predict, eval_data=stream.eval_data, config=plan.config.eval,
                            mesh=plan.mesh, seed=plan.config.seed, log=log,
                            figures_dir=figures_dir if jax.process_index() == 0 else None)


def run_suites(plan: Plan, ctx: suites_lib.Context, state, *, final: bool, stop: StopSignal | None = None,
               on_stop=None) -> dict[str, float]:
  """Every suite of the method (its `final` or its `monitor`), merged; honours a stop request in between."""
  results: dict[str, float] = {}
  for name in plan.module.SUITES:
    suite = suites_lib.SUITES[name]
    results.update((suite.final if final else suite.monitor)(ctx, state))
    if stop is not None and stop.requested and on_stop is not None:
      on_stop()
  return results


def _read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def resume_changes(config, workdir: str) -> str:
  """The settings that define the training and differ from the run in `workdir` ("" if none or no run there)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return ""
  with open(path) as f:
    saved = config_lib.from_json(f.read(), where=path)
  changes = config_lib.training_changes(saved, config)
  more = f" (and {len(changes) - 2} more)" if len(changes) > 2 else ""
  return "; ".join(changes[:2]) + more


def check_resume(config, workdir: str) -> None:
  """A resumed run must keep the settings that define its training; say which differ, never silently."""
  if changes := resume_changes(config, workdir):
    raise UserError(f"The workdir {workdir} holds a run with other settings: {changes}; a resumed run may change "
                    "only eval.*, the log/eval/checkpoint intervals and paths, so pass the original values or use "
                    "a new --workdir.")


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Train `config.method` on `config.data`, checkpointing into `workdir`; return the results dict."""
  mesh_lib.setup_cpu_devices(config)  # before anything touches the devices
  mesh_lib.initialize_distributed(config.distributed)
  with StopSignal() as stop:
    plan = preflight(config)  # validates the config first
    prepare_workdir(workdir)
    check_resume(config, workdir)
    checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
    try:
      return _train(plan, workdir, checkpointer, stop)
    finally:
      checkpointer.close()


def _stopped(stop: StopSignal, what: str, checkpointer: Checkpointer, step: int | None) -> Interrupted:
  name = stop.signal_name or "SIGTERM"
  if step is None:
    return Interrupted(f"Stopped by {name} {what}, before any training step; nothing was lost: run the same "
                       "command again to start.")
  return Interrupted(f"Stopped by {name} {what}; the checkpoint of step {step} is saved in "
                     f"{checkpointer.directory}: run the same command again to resume.")


def _train(plan: Plan, workdir: str, checkpointer: Checkpointer, stop: StopSignal) -> dict[str, Any]:
  config = plan.config
  is_main = _is_main()
  results_path = os.path.join(workdir, "results.json")
  latest = checkpointer.latest_step()
  finished = _read_json(results_path)
  if latest == config.total_steps and finished and finished.get("steps") == config.total_steps:
    _say(f"{workdir} already finished {config.total_steps} steps; its results:")
    _say(reporting.results_table(finished))
    return finished

  stream = load_stream(plan)
  state, restored = create_or_restore(plan, checkpointer)
  if stop.requested:
    raise _stopped(stop, "before training started", checkpointer, restored)
  start = int(jax.device_get(state.step))
  if is_main:
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
      with open(config_path, "w") as f:
        f.write(config_lib.to_json(config))
    with open(os.path.join(workdir, "stream.json"), "w") as f:
      json.dump(stream.record(), f)
  metrics_log = reporting.MetricsLog(os.path.join(workdir, "metrics.jsonl"), resume_step=start, enabled=is_main)
  from clu import metric_writers  # imported here: clu pulls in TensorFlow
  writer = metric_writers.create_default_writer(workdir, just_logging=not is_main)
  say = _say
  say(f"{config.method} on {stream.describe()}; global batch {config.batch_size} on {jax.device_count()} "
      f"device(s) ({jax.devices()[0].platform}), {config.total_steps} steps, workdir {workdir}"
      + (f"; resumed from step {restored}" if restored is not None else ""))
  ctx = suite_context(plan, stream, log=say, figures_dir=workdir)
  last_good = restored

  def save_and_stop(done: int, what: str):
    checkpointer.save(done, state, wait=True)
    raise _stopped(stop, what, checkpointer, done)

  if start < config.total_steps:
    step_fn = jit_step(plan, plan.repl, plan.sharded)
    progress = reporting.Progress(total=config.total_steps, initial=start, enabled=is_main,
                                  every=config.log_every_steps)
    say = progress.write
    clock = reporting.Stopwatch()
    train_seconds_before = metrics_log.previous_train_seconds()
    pending: list[tuple[int, dict]] = []

    def flush() -> tuple[int, dict] | None:
      """Fetch the metrics of the steps run since the last flush; stop on a non-finite one."""
      if not pending:
        return None
      fetched = jax.device_get(pending)
      pending.clear()
      for step, m in fetched:
        _check_finite(step, m, last_good, checkpointer)
      return fetched[-1]

    batches = data_lib.BatchIterator(stream.local_batch, start_step=start)
    in_flight: collections.deque = collections.deque()
    try:
      done = start
      for step in range(start, config.total_steps):
        state, metrics = step_fn(state, data_lib.shard_batch(next(batches), plan.mesh))
        done = step + 1
        pending.append((done, metrics))
        in_flight.append(metrics)
        if len(in_flight) > MAX_STEPS_IN_FLIGHT:
          jax.block_until_ready(in_flight.popleft())
        stopping = stop.requested or checkpointer.reached_preemption(done)
        periodic = done % config.checkpoint_every_steps == 0
        if done % config.log_every_steps == 0 or periodic or stopping or done == config.total_steps:
          last = flush()
          if last is not None and done % config.log_every_steps == 0:
            row = {k: float(v) for k, v in last[1].items()}
            row["train/seconds"] = train_seconds_before + clock()
            metrics_log.write(done, row)
            writer.write_scalars(done, row)
            progress.update(0, loss=row["train/loss"])
        progress.update(1)
        if stopping:
          save_and_stop(done, f"at step {done}")
        if periodic:
          checkpointer.save(done, state)
          last_good = done
        if config.eval_every_steps and done % config.eval_every_steps == 0 and done < config.total_steps:
          monitored = run_suites(plan, ctx, state, final=False, stop=stop,
                                 on_stop=lambda: save_and_stop(done, f"at step {done}, during the monitor"))
          metrics_log.write(done, {f"eval/{k}": v for k, v in monitored.items()})
          writer.write_scalars(done, {f"eval/{k}": v for k, v in monitored.items()})
          say(f"step {done}: " + ", ".join(f"{k} {v:.4f}" for k, v in monitored.items()))
      flush()
      checkpointer.save(config.total_steps, state, wait=True)
    finally:
      batches.close()
      progress.close()
      writer.flush()
    train_seconds = train_seconds_before + clock()
  else:
    train_seconds = metrics_log.previous_train_seconds()

  results: dict[str, Any] = {"steps": config.total_steps, "train_seconds": train_seconds, "data": stream.name}
  if config.eval.final:
    final = run_suites(plan, ctx, state, final=True, stop=stop,
                       on_stop=lambda: save_and_stop(config.total_steps, "during the final evaluation"))
    results.update(final)
  if is_main:
    with open(results_path, "w") as f:
      json.dump(results, f, indent=2)
    writer.write_scalars(config.total_steps, {f"eval/{k}": v for k, v in results.items()
                                              if isinstance(v, float)})
    writer.flush()
    reporting.write_report(os.path.join(workdir, "report.png"), metrics_log.read(), results,
                           title=f"{config.method} on {stream.name}, {config.model.encoder}")
    print(reporting.results_table(results), flush=True)
    print(f"Wrote {results_path} and report.png.", flush=True)
  return results
