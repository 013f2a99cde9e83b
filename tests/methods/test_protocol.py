"""The shared tests every method passes (one line in `cases.CASES` adds a method to them):

* a smoke run on tiny real data that writes its family's results, and `ssl_jax.evaluate` of it;
* a run killed (SIGTERM, at whatever step the signal lands) and resumed equals the uninterrupted smoke run,
  loss for loss (so evaluating during training does not change training either);
* one step on 8 devices equals one step on 1 device (metrics, parameters, statistics, extra state).
"""

import json
import os
import signal
import threading
import time

import jax
import numpy as np
import pytest

from ssl_jax import data as data_lib
from ssl_jax.methods import METHODS
from ssl_jax.train import mesh as mesh_lib
from ssl_jax.train import trainer

from tests.methods.cases import CASES, result_keys, tiny_config

METHOD_NAMES = sorted(CASES)


def test_every_method_has_a_case():
  assert set(CASES) == set(METHODS), "add the new method to tests/methods/cases.py"


def _losses(workdir) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["train/loss"] for r in map(json.loads, f) if "train/loss" in r}


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_smoke_run_and_a_killed_and_resumed_run(method, tmp_path):
  """The smoke run (with its evaluations) is also the reference of the resume check, which thereby checks
  that evaluating during training never changes what training does."""
  workdir = str(tmp_path / method)
  results = trainer.train_and_evaluate(tiny_config(method), workdir)
  assert result_keys(method) <= set(results), results
  for key in result_keys(method):
    assert 0.0 <= results[key] <= 1.0, (key, results[key])
  names = set(os.listdir(workdir))
  assert {"config.json", "checkpoints", "metrics.jsonl", "results.json", "report.png", "stream.json"} <= names
  losses = _losses(workdir)
  assert sorted(losses) == list(range(1, 13)) and all(np.isfinite(v) for v in losses.values())
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    monitored = [r for r in map(json.loads, f) if any(k.startswith("eval/") for k in r)]
  assert [r["step"] for r in monitored] == [6], "the monitor runs every eval_every_steps"
  if "representation" in METHODS[method].SUITES:  # the label-free collapse monitor of every SSL method
    assert 1.0 <= monitored[0]["eval/rankme"] <= 16, monitored[0]
  if method in EVALUATED:  # `python -m ssl_jax.evaluate` scores the checkpoint with the same suites
    _check_evaluate(method, workdir, results)
  _check_kill_and_resume(method, losses, tmp_path)


# `ssl_jax.evaluate` runs a method's suites on its checkpoint: checked on the first method of each set of
# suites (what it reads from a method is `predict`, which the smoke run's own final evaluation exercises).
EVALUATED = {next(m for m in METHOD_NAMES if METHODS[m].SUITES == suites)
             for suites in {METHODS[m].SUITES for m in METHOD_NAMES}}


def _check_evaluate(method, workdir, results):
  """`python -m ssl_jax.evaluate` scores the checkpoint with the same suites, under a recorded name."""
  from ssl_jax import evaluate
  assert evaluate.main([f"--workdir={workdir}", "--config.eval.pixel_baseline=false"]) == 0
  with open(os.path.join(workdir, "eval_results.json")) as f:
    evaluated = json.load(f)["step_12 eval.pixel_baseline=false"]
  assert evaluated["steps"] == 12 and result_keys(method) <= set(evaluated)
  for key in result_keys(method) - {"linear_probe_top1"}:  # the probe's shuffles make it vary a little
    np.testing.assert_allclose(evaluated[key], results[key], atol=1e-6, err_msg=key)


def _check_kill_and_resume(method, reference, tmp_path):
  """A run killed by SIGTERM (at whatever step the signal lands) and resumed equals `reference`, loss for loss."""
  config = tiny_config(method, **{"eval.final": False, "eval_every_steps": 0})
  killed = str(tmp_path / "killed")
  watcher = _sigterm_when(lambda: os.path.join(killed, "checkpoints", "4"))
  with pytest.raises(trainer.Interrupted, match=r"Stopped by SIGTERM at step (\d+); the checkpoint of step"):
    trainer.train_and_evaluate(config, killed)
  watcher.join()
  steps = sorted(int(s) for s in os.listdir(os.path.join(killed, "checkpoints")) if s.isdigit())
  assert steps and steps[-1] < 12, "the run finished before the signal"
  trainer.train_and_evaluate(config, killed)
  got = _losses(killed)
  assert sorted(got) == list(range(1, 13))
  np.testing.assert_allclose([got[s] for s in range(1, 13)], [reference[s] for s in range(1, 13)], rtol=1e-6)


def _sigterm_when(path_fn, timeout=300.0):
  """Send SIGTERM to this process as soon as `path_fn()` exists (a watcher thread)."""
  def watch():
    deadline = time.time() + timeout
    while time.time() < deadline and not os.path.exists(path_fn()):
      time.sleep(0.005)
    os.kill(os.getpid(), signal.SIGTERM)
  thread = threading.Thread(target=watch, daemon=True)
  thread.start()
  return thread


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_eight_devices_equal_one_device(method):
  """Global-batch semantics: the same metrics and new state (BatchNorm over the global batch)."""
  config = tiny_config(method)
  plan = trainer.preflight(config)
  batch = trainer.load_stream(plan).global_batch(0)
  outs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = mesh_lib.make_mesh(devices)
    repl, sharded = mesh_lib.replicated(mesh), mesh_lib.batch_sharded(mesh)
    # Jitted by the trainer's own functions: on 8 devices these are the smoke run's compiled programs.
    state = trainer.jit_init(plan, repl)(jax.random.PRNGKey(config.seed), None)
    state, metrics = trainer.jit_step(plan, repl, sharded)(state, data_lib.shard_batch(batch, mesh))
    outs.append(jax.device_get((metrics, state)))
  (m1, s1), (m8, s8) = outs
  assert len(jax.devices()) == 8
  for key in m1:
    np.testing.assert_allclose(m1[key], m8[key], rtol=2e-4, atol=1e-5, err_msg=key)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  jax.tree.map(close, s1.params, s8.params)
  jax.tree.map(close, s1.batch_stats, s8.batch_stats)
  jax.tree.map(close, s1.extra, s8.extra)
