"""What the one trainer guarantees for every method: nothing lost, nothing silently changed.

* SIGTERM at any moment (compiling the first step, between steps before any periodic checkpoint, during a
  monitor, during the final evaluation) saves the step it names, committed, and the resumed run equals an
  uninterrupted one loss for loss; SIGKILL loses at most the steps since the last checkpoint;
* a damaged newest checkpoint is moved aside with one warning and the run resumes from the one before;
* a resumed run with other training settings is refused; a finished run is neither trained nor evaluated
  again;
* a checkpoint save on CPU devices compiles no XLA program.

The signals are sent by the process to itself from inside the phase under test (deterministic moments).
"""

import json
import os
import signal

import numpy as np
import pytest

from ssl_jax import data as data_lib
from ssl_jax.errors import UserError
from ssl_jax.evaluation import suites as suites_lib
from ssl_jax.methods.ssl import simclr
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config
from tests.train._run import ROOT, losses, main_command, run_main

STEPS = 12


def _config(**more):
  """SimCLR on digits, 12 steps, no periodic checkpoint before the end unless asked."""
  base = {"checkpoint_every_steps": 1000, "eval_every_steps": 0, "eval.final": False, "eval.pixel_baseline": False}
  return tiny_config("simclr", **{**base, **more})


def _sigterm():
  os.kill(os.getpid(), signal.SIGTERM)


def _steps(workdir) -> list[int]:
  path = os.path.join(workdir, "checkpoints")
  return sorted(int(s) for s in os.listdir(path) if s.isdigit()) if os.path.isdir(path) else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """train/loss of every step of an uninterrupted run."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  trainer.train_and_evaluate(_config(), workdir)
  return losses(workdir)


def _assert_resumes_exactly(workdir, reference, config=None):
  trainer.train_and_evaluate(config or _config(), workdir)
  got = losses(workdir)
  assert sorted(got) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([got[s] for s in got], [reference[s] for s in got], rtol=1e-6)


def test_sigterm_between_steps_before_any_periodic_checkpoint(tmp_path, monkeypatch, reference):
  workdir = str(tmp_path / "w")
  calls = []
  shard = data_lib.shard_batch

  def shard_and_signal(batch, mesh):  # called once per step, before the step runs
    calls.append(1)
    if len(calls) == 7:
      _sigterm()
    return shard(batch, mesh)

  monkeypatch.setattr(data_lib, "shard_batch", shard_and_signal)
  with pytest.raises(trainer.Interrupted, match=r"Stopped by SIGTERM at step 7; the checkpoint of step 7 is saved"):
    trainer.train_and_evaluate(_config(), workdir)
  monkeypatch.undo()
  assert _steps(workdir) == [7]
  assert os.path.exists(os.path.join(workdir, "checkpoints", "7", "_CHECKPOINT_METADATA"))
  _assert_resumes_exactly(workdir, reference)


def test_sigterm_while_compiling_the_first_step(tmp_path, monkeypatch, reference):
  workdir = str(tmp_path / "w")
  step = simclr.step

  def step_and_signal(m, state, batch):  # runs once, while jit traces the step
    _sigterm()
    return step(m, state, batch)

  monkeypatch.setattr(simclr, "step", step_and_signal)
  with pytest.raises(trainer.Interrupted, match="at step 1; the checkpoint of step 1 is saved"):
    trainer.train_and_evaluate(_config(), workdir)
  monkeypatch.undo()
  assert _steps(workdir) == [1]
  _assert_resumes_exactly(workdir, reference)


def test_sigterm_during_the_monitor(tmp_path, monkeypatch, reference):
  workdir = str(tmp_path / "w")
  suite = suites_lib.SUITES["representation"]

  def monitor_and_signal(ctx, state):
    _sigterm()
    return suite.monitor(ctx, state)

  monkeypatch.setitem(suites_lib.SUITES, "representation", suites_lib.Suite(monitor_and_signal, suite.final))
  with pytest.raises(trainer.Interrupted, match="at step 5, during the monitor; the checkpoint of step 5"):
    trainer.train_and_evaluate(_config(eval_every_steps=5), workdir)
  monkeypatch.undo()
  assert _steps(workdir) == [5]
  _assert_resumes_exactly(workdir, reference, _config(eval_every_steps=5))


def test_sigterm_during_final_evaluation_then_evaluates_on_rerun(tmp_path, monkeypatch):
  workdir = str(tmp_path / "w")
  suite = suites_lib.SUITES["representation"]

  def final_and_signal(ctx, state):
    _sigterm()
    return suite.final(ctx, state)

  monkeypatch.setitem(suites_lib.SUITES, "representation", suites_lib.Suite(suite.monitor, final_and_signal))
  config = _config(**{"eval.final": True, "eval.pixel_baseline": True})
  with pytest.raises(trainer.Interrupted, match=f"during the final evaluation; the checkpoint of step {STEPS}"):
    trainer.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  assert _steps(workdir) == [STEPS] and not os.path.exists(os.path.join(workdir, "results.json"))
  trained = losses(workdir)
  results = trainer.train_and_evaluate(config, workdir)  # evaluates; trains nothing more
  assert {"linear_probe_top1", "knn_top1", "pixel_linear_probe_top1"} <= set(results)
  assert losses(workdir) == trained


def test_finished_run_is_not_trained_or_evaluated_again(tmp_path, capsys):
  workdir = str(tmp_path / "w")
  config = _config(**{"eval.final": True})
  first = trainer.train_and_evaluate(config, workdir)
  mtime = os.path.getmtime(os.path.join(workdir, "results.json"))
  capsys.readouterr()
  again = trainer.train_and_evaluate(config, workdir)
  assert again == first and os.path.getmtime(os.path.join(workdir, "results.json")) == mtime
  assert "already finished 12 steps" in capsys.readouterr().out


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch, capsys, reference):
  workdir = str(tmp_path / "w")
  config = _config(checkpoint_every_steps=4, keep_checkpoints=3)
  calls = []
  shard = data_lib.shard_batch

  def shard_and_signal(batch, mesh):
    calls.append(1)
    if len(calls) == 10:
      _sigterm()
    return shard(batch, mesh)

  monkeypatch.setattr(data_lib, "shard_batch", shard_and_signal)
  with pytest.raises(trainer.Interrupted):
    trainer.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  assert _steps(workdir) == [4, 8, 10]
  for root, _, files in os.walk(os.path.join(workdir, "checkpoints", "10")):  # a disk fault: every file cut short
    for name in files:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
  capsys.readouterr()
  _assert_resumes_exactly(workdir, reference, config)
  err = capsys.readouterr().err
  warnings = [line for line in err.splitlines() if line.startswith("warning:")]
  assert len(warnings) == 1, err
  assert "the checkpoint at step 10 is damaged" in warnings[0] and "resuming from step 8" in warnings[0]
  moved = os.path.join(workdir, "checkpoints_damaged", "10")
  assert moved in warnings[0] and os.path.isdir(moved), "the damaged files are kept, not deleted"


def test_a_save_on_cpu_devices_compiles_nothing_and_restores_every_value(tmp_path):
  """Orbax's default outside GPUs cuts every replicated array into one slice per device, each cut an XLA
  compilation (80 for a tiny model's first save); on CPU devices the checkpointer writes whole shards."""
  import jax  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.train.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  repl = mesh_lib.replicated(mesh_lib.make_mesh(jax.devices()))
  # Shapes no other test saves (so no slicing program is in memory already), each with an axis that 8 divides
  # (where orbax would slice).
  state = {"w": jax.device_put(np.arange(7 * 88 * 3, dtype=np.float32).reshape(7, 88, 3), repl),
           "b": jax.device_put(np.arange(232, dtype=np.float32), repl)}
  checkpointer = Checkpointer(str(tmp_path))
  compiled = []  # programs compiled, or asked of the persistent compilation cache (where they may already be)
  asked = lambda event, **kw: compiled.append(event) if event.endswith("compile_requests_use_cache") else None
  built = lambda event, secs, **kw: compiled.append(event) if event.endswith("backend_compile_duration") else None
  jax.monitoring.register_event_listener(asked)
  jax.monitoring.register_event_duration_secs_listener(built)
  try:
    checkpointer.save(1, state, wait=True)
  finally:
    jax.monitoring.unregister_event_listener(asked)
    jax.monitoring.unregister_event_duration_listener(built)
  assert len(jax.devices()) == 8 and not compiled, compiled
  restored = checkpointer.restore(jax.eval_shape(lambda: state))
  jax.tree.map(np.testing.assert_array_equal, restored, jax.device_get(state))


def test_resume_with_other_training_settings_is_refused(tmp_path):
  workdir = str(tmp_path / "w")
  trainer.train_and_evaluate(_config(), workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    saved = f.read()
  with pytest.raises(UserError, match=r"other settings: total_steps=12 in the workdir, 24 now.*new --workdir"):
    trainer.train_and_evaluate(_config(total_steps=24), workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    assert f.read() == saved, "config.json keeps the settings the run was started with"
  # What only changes how the run is watched may change.
  trainer.train_and_evaluate(_config(log_every_steps=3, **{"eval.knn_k": 5}), workdir)


def test_sigkill_loses_only_the_steps_since_the_last_checkpoint(tmp_path, reference):
  """A real kill -9 of `python -m ssl_jax.main`, then the same command again."""
  import subprocess
  import time
  args = ("--config.total_steps=12", "--config.checkpoint_every_steps=4", "--config.log_every_steps=1",
          "--config.eval_every_steps=0", "--config.eval.final=false", "--config.batch_size=32",
          "--config.model.widths=(8,16)", "--config.optim.warmup_steps=2")
  workdir = str(tmp_path / "w")
  proc = subprocess.Popen(main_command(workdir, *args), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while not os.path.isdir(os.path.join(workdir, "checkpoints", "4")) and proc.poll() is None:
    assert time.time() < deadline
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=60)
  assert _steps(workdir) and _steps(workdir)[-1] < 12
  resumed = run_main(workdir, *args)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from step" in resumed.stdout
  got = losses(workdir)
  assert sorted(got) == list(range(1, 13))
  np.testing.assert_allclose([got[s] for s in got], [reference[s] for s in got], rtol=1e-6)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert all(json.loads(line) for line in f), "no half-written row is left behind"


def test_the_host_waits_for_the_step_max_steps_in_flight_back(tmp_path, monkeypatch):
  """With nothing to log until the end, the host still waits for each step MAX_STEPS_IN_FLIGHT back.

  Unbounded, two XLA CPU devices deadlocked in an all-reduce (XLA aborted the process after 40 s) when two runs
  shared the cores or a persistent compilation cache was on: `test_concurrent_runs_on_two_cpu_devices_finish`.
  """
  waited = []
  real = trainer.jax.block_until_ready

  def spy(x):
    waited.append(x)
    return real(x)

  monkeypatch.setattr(trainer.jax, "block_until_ready", spy)
  trainer.train_and_evaluate(_config(log_every_steps=STEPS), str(tmp_path))
  assert len(waited) == STEPS - trainer.MAX_STEPS_IN_FLIGHT


@pytest.mark.slow
def test_concurrent_runs_on_two_cpu_devices_finish(tmp_path):
  """Two MNIST-bags runs at once, each on two CPU devices, nothing logged until the end: before the bound on the
  steps in flight both aborted in XLA's rendezvous (40 s) every time on a 2-core machine."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  procs = []
  for seed in (100, 101):
    cmd = [sys.executable, "-m", "ssl_jax.main",
           f"--config={ROOT}/configs/mil/mil_mnist_bags.py:pooling=attention,train_bags=50,seed={seed}",
           f"--workdir={tmp_path / str(seed)}", "--config.log_every_steps=300", "--config.mil.test_bags=100",
           "--config.distributed.cpu_devices=2"]
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True))
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
    assert "bag AUC" in out
