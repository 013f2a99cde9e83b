"""The one trainer: `train_and_evaluate(config, workdir)` runs any method's pure step on the mesh.

Flow: validate the config, start multi-host if asked, build the mesh, load the data (TFDS), build the method,
create the state already replicated on the mesh (or restore the latest checkpoint), then loop: put the global
batch on the mesh sharded along "data", run the jitted step (state donated), log, checkpoint, monitor. At the
end: linear probe and kNN on frozen features, the raw-pixel baseline, results.json and report.png.

Nothing is lost when a run stops early: checkpoints are written every `checkpoint_every_steps`, at the end,
and on SIGTERM/SIGINT; a NaN stops the run before it can overwrite the last good checkpoint.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import data as data_lib
from ssl_jax import evaluation
from ssl_jax.methods import METHODS
from ssl_jax.train import config as config_lib
from ssl_jax.train import mesh as mesh_lib
from ssl_jax.train import reporting
from ssl_jax.train.checkpoint import Checkpointer
from ssl_jax.train.errors import UserError


class NonFiniteLossError(UserError):
  """The loss (or the gradients or parameters) stopped being finite."""


class Interrupted(UserError):
  """The run got SIGTERM or SIGINT; its state was checkpointed."""


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


def _is_main() -> bool:
  return jax.process_index() == 0


class _StopSignal:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step (then it checkpoints and exits)."""

  def __init__(self):
    self.signal_name = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def load_data(config):
  """Train and test ArrayDatasets and the dataset's info."""
  info = data_lib.dataset_info(config.data.name)
  if info.streaming:
    raise UserError(f"The trainer holds datasets in host memory and {config.data.name} is too large for that; "
                    "stream it with ssl_jax.data.tf_iterate_batches in your own loop, or pick a dataset "
                    "that fits in memory (cifar10, cifar100, stl10, svhn_cropped, mnist, fashion_mnist).")
  kwargs = dict(data_dir=config.data.data_dir or None, tfds_data_dir=config.data.tfds_data_dir or None)
  train = data_lib.load_arrays(config.data.name, info.train_split, **kwargs)
  test = data_lib.load_arrays(config.data.name, info.test_split, **kwargs)
  return info, train, test


def build(config, info):
  """The method module, its static parts, and the jitted init (state created replicated on the mesh)."""
  module = METHODS.get(config.method)
  if module is None:
    raise UserError(f"Unknown method {config.method!r}; known methods: {', '.join(sorted(METHODS))}.")
  method = module.make(config, image_shape=info.image_shape, num_classes=info.num_classes)
  return module, method


def create_or_restore(module, method, config, mesh, checkpointer: Checkpointer):
  """A fresh state placed replicated on the mesh, or the latest checkpoint restored onto it."""
  init_fn = jax.jit(functools.partial(module.init, method), out_shardings=mesh_lib.replicated(mesh))
  rng = jax.random.PRNGKey(config.seed)
  latest = checkpointer.latest_step()
  if latest is None:
    return init_fn(rng), None
  abstract = jax.eval_shape(init_fn, rng)
  abstract = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=mesh_lib.replicated(mesh)), abstract)
  try:
    state = checkpointer.restore(abstract, latest)
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"The checkpoint at step {latest} in {checkpointer.directory} does not match this config "
                    f"({str(e).splitlines()[0][:200]}); use a new --workdir for a different model.") from e
  return state, latest


def _check_finite(step: int, metrics: dict[str, Any], last_good: int | None, checkpointer) -> None:
  for key in ("train/loss", "train/l2_grads", "train/l2_params"):
    if key in metrics and not np.isfinite(metrics[key]):
      kept = (f"the last good checkpoint (step {last_good}) is kept in {checkpointer.directory}"
              if last_good is not None else "no checkpoint had been written yet")
      raise NonFiniteLossError(
          f"{key} became {float(metrics[key])} at step {step}; training stopped and {kept}: lower "
          "optim.lr (or set optim.grad_clip_norm) and run the same command again to resume.")


def features_fn(module, method, mesh):
  """A jitted map from a replicated state and a sharded uint8 batch to float32 features."""
  return jax.jit(functools.partial(module.features, method=method),
                 in_shardings=(mesh_lib.replicated(mesh), mesh_lib.batch_sharded(mesh)),
                 out_shardings=mesh_lib.batch_sharded(mesh))


def extract(feat_jit, state, images, config, mesh) -> np.ndarray:
  return evaluation.extract_features(lambda x: feat_jit(state, x), images,
                                     batch_size=config.eval.feature_batch_size, mesh=mesh)


def knn_monitor(feat_jit, state, train, test, config, mesh) -> float:
  """kNN top-1 on a fixed subset: cheap enough to run during training."""
  n_train = min(config.eval.monitor_examples, len(train.labels))
  n_test = min(config.eval.monitor_examples, len(test.labels))
  tr = extract(feat_jit, state, train.images[:n_train], config, mesh)
  te = extract(feat_jit, state, test.images[:n_test], config, mesh)
  return float(evaluation.knn_accuracy(tr, train.labels[:n_train], te, test.labels[:n_test],
                                       num_classes=train.num_classes, k=config.eval.knn_k,
                                       temperature=config.eval.knn_temperature, mesh=mesh))


def evaluate_representation(feat_jit, state, train, test, config, mesh, *, log=print) -> dict[str, float]:
  """Linear probe and kNN on frozen features of the full train/test splits, plus the raw-pixel probe."""
  out = {}
  t0 = time.perf_counter()
  tr = extract(feat_jit, state, train.images, config, mesh)
  te = extract(feat_jit, state, test.images, config, mesh)
  log(f"Extracted features {tr.shape} + {te.shape} in {time.perf_counter() - t0:.1f}s; fitting probes.")
  probe = evaluation.linear_probe(tr, train.labels, te, test.labels, num_classes=train.num_classes,
                                  mesh=mesh, epochs=config.eval.probe_epochs, seed=config.seed)
  out["linear_probe_top1"] = float(probe.top1)
  out["knn_top1"] = float(evaluation.knn_accuracy(tr, train.labels, te, test.labels,
                                                   num_classes=train.num_classes, k=config.eval.knn_k,
                                                   temperature=config.eval.knn_temperature, mesh=mesh))
  if config.eval.pixel_probe:
    px = lambda a: a.reshape(len(a), -1).astype(np.float32) / 255.0
    pixel = evaluation.linear_probe(px(train.images), train.labels, px(test.images), test.labels,
                                    num_classes=train.num_classes, mesh=mesh,
                                    epochs=config.eval.probe_epochs, seed=config.seed)
    out["pixel_linear_probe_top1"] = float(pixel.top1)
  out["eval_seconds"] = time.perf_counter() - t0
  return out


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Train `config.method` on `config.data`, checkpointing into `workdir`; return the results dict."""
  config_lib.validate(config)
  mesh_lib.initialize_distributed(config.distributed)
  prepare_workdir(workdir)
  mesh = mesh_lib.make_mesh()
  mesh_lib.check_batch_size(config.batch_size, mesh)
  is_main = _is_main()
  info, train, test = load_data(config)
  module, method = build(config, info)

  checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
  state, restored = create_or_restore(module, method, config, mesh, checkpointer)
  start = int(jax.device_get(state.step))
  if is_main:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config_lib.to_json(config))
  metrics_log = reporting.MetricsLog(os.path.join(workdir, "metrics.jsonl"), resume_step=start,
                                     enabled=is_main)
  from clu import metric_writers  # imported here: clu pulls in TensorFlow
  writer = metric_writers.create_default_writer(workdir, just_logging=not is_main)
  progress = reporting.Progress(total=config.total_steps, initial=start, enabled=is_main)
  say = progress.write if is_main else (lambda text: None)
  say(f"{config.method} on {config.data.name}: {len(train.labels)} training images {info.image_shape}, "
      f"global batch {config.batch_size} on {jax.device_count()} device(s) "
      f"({jax.devices()[0].platform}), {config.total_steps} steps, workdir {workdir}"
      + (f"; resumed from step {restored}" if restored is not None else ""))

  repl, sharded = mesh_lib.replicated(mesh), mesh_lib.batch_sharded(mesh)
  step_fn = jax.jit(functools.partial(module.step, method=method), donate_argnums=0,
                    in_shardings=(repl, sharded), out_shardings=(repl, repl))
  feat_jit = features_fn(module, method, mesh)
  batches = data_lib.iterate_batches(train, global_batch_size=config.batch_size, seed=config.seed,
                                     start_step=start)
  last_good = restored
  pending: list[tuple[int, dict]] = []
  clock = reporting.Stopwatch()
  train_seconds_before = metrics_log.previous_train_seconds()

  def flush() -> dict | None:
    """Fetch the metrics of the steps run since the last flush; stop on a non-finite one."""
    if not pending:
      return None
    fetched = jax.device_get(pending)
    pending.clear()
    for step, m in fetched:
      _check_finite(step, m, last_good, checkpointer)
    return fetched[-1]

  try:
    with _StopSignal() as stop:
      for step in range(start, config.total_steps):
        batch = data_lib.shard_batch(next(batches), mesh)
        state, metrics = step_fn(state, batch)
        done = step + 1
        pending.append((done, metrics))
        progress.update(1)
        must_save = done % config.checkpoint_every_steps == 0 or stop.signal_name
        if done % config.log_every_steps == 0 or must_save or done == config.total_steps:
          last = flush()
          if last is not None and done % config.log_every_steps == 0:
            row = {k: float(v) for k, v in last[1].items()}
            row["train/seconds"] = train_seconds_before + clock()
            metrics_log.write(done, row)
            writer.write_scalars(done, row)
            progress.update(0, loss=row["train/loss"])
        if must_save:
          checkpointer.save(done, state)
          last_good = done
        if config.eval_every_steps and done % config.eval_every_steps == 0 and done < config.total_steps:
          knn = knn_monitor(feat_jit, state, train, test, config, mesh)
          metrics_log.write(done, {"eval/knn_monitor_top1": knn})
          writer.write_scalars(done, {"eval/knn_monitor_top1": knn})
          say(f"step {done}: kNN monitor top-1 {knn:.4f}")
        if stop.signal_name:
          checkpointer.wait()
          raise Interrupted(f"Stopped by {stop.signal_name} at step {done}; the checkpoint is saved in "
                            f"{checkpointer.directory}: run the same command again to resume.")
      flush()
      checkpointer.save(config.total_steps, state)
      checkpointer.wait()
  finally:
    progress.close()
    writer.flush()
    checkpointer.wait()

  train_seconds = train_seconds_before + clock()
  results: dict[str, Any] = {"steps": config.total_steps, "train_seconds": train_seconds}
  if config.eval.final:
    results.update(evaluate_representation(feat_jit, state, train, test, config, mesh, log=say))
  if is_main:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
    writer.write_scalars(config.total_steps, {f"eval/{k}": v for k, v in results.items()
                                              if isinstance(v, float)})
    writer.flush()
    reporting.write_report(os.path.join(workdir, "report.png"), metrics_log.read(), results,
                           title=f"{config.method} on {config.data.name}, {config.model.encoder}")
    print(reporting.results_table(results), flush=True)
    print(f"Wrote {os.path.join(workdir, 'results.json')} and report.png.", flush=True)
  checkpointer.close()
  return results
