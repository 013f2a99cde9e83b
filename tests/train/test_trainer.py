"""The whole training loop on a tiny model and tiny real data (scikit-learn digits)."""

import functools
import json
import os
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from ssl_jax.train import config as config_lib
from ssl_jax.train import mesh as mesh_lib
from ssl_jax.train import trainer

from tests.train._run import ROOT, TINY, losses, main_command, run_main


def tiny_config(**overrides):
  config = config_lib.load_config(TINY)
  config_lib.apply_overrides(config, [f"--config.{k}={v}" for k, v in overrides.items()])
  return config


def test_smoke_whole_loop_writes_everything(tmp_path):
  workdir = str(tmp_path / "run")
  results = trainer.train_and_evaluate(tiny_config(), workdir)
  for key in ("linear_probe_top1", "knn_top1", "pixel_linear_probe_top1", "train_seconds", "steps"):
    assert key in results
  assert results["steps"] == 20
  # Digits are easy: even 20 steps of SimCLR give features far above chance (0.1).
  assert results["linear_probe_top1"] > 0.5 and results["knn_top1"] > 0.5
  names = set(os.listdir(workdir))
  assert {"config.json", "checkpoints", "metrics.jsonl", "results.json", "report.png"} <= names
  assert any(n.startswith("events.out.tfevents") for n in names)
  assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()) == [10, 20]
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in rows if "train/loss" in r] == [5, 10, 15, 20]
  assert all(np.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["total_steps"] == 20
  # `python -m ssl_jax.evaluate` scores the latest checkpoint the same way.
  from ssl_jax import evaluate
  assert evaluate.main([f"--workdir={workdir}", "--config.eval.pixel_probe=false"]) == 0
  with open(os.path.join(workdir, "eval_results.json")) as f:
    evaluated = json.load(f)
  assert evaluated["steps"] == 20
  assert abs(evaluated["knn_top1"] - results["knn_top1"]) < 1e-6
  # Running again on the finished workdir restores step 20 and trains nothing more.
  again = trainer.train_and_evaluate(tiny_config(**{"eval.final": False}), workdir)
  assert again["steps"] == 20


def test_eight_devices_equal_one_device():
  """Global-batch semantics: the same loss and updated parameters (BatchNorm over the global batch)."""
  config = tiny_config()
  info, train, _ = trainer.load_data(config)
  module, method = trainer.build(config, info)
  batch = {"image": train.images[:64], "label": train.labels[:64]}
  outs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = mesh_lib.make_mesh(devices)
    repl, sharded = mesh_lib.replicated(mesh), mesh_lib.batch_sharded(mesh)
    state = jax.jit(functools.partial(module.init, method), out_shardings=repl)(jax.random.PRNGKey(0))
    step = jax.jit(functools.partial(module.step, method=method), in_shardings=(repl, sharded),
                   out_shardings=(repl, repl))
    state, metrics = step(state, jax.device_put(batch, sharded))
    outs.append(jax.device_get((metrics, state.params, state.batch_stats)))
  (m1, p1, s1), (m8, p8, s8) = outs
  np.testing.assert_allclose(m1["train/loss"], m8["train/loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), p1, p8)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), s1, s8)


RESUME_ARGS = ("--config.total_steps=300", "--config.checkpoint_every_steps=5", "--config.log_every_steps=1",
               "--config.eval_every_steps=0", "--config.eval.final=false")


def _run_until_checkpoint_then(sig, workdir):
  """Start a run, wait for its first checkpoint, then send `sig`; return the finished process."""
  proc = subprocess.Popen(main_command(workdir, *RESUME_ARGS), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  ckpt = os.path.join(workdir, "checkpoints", "5")
  deadline = time.time() + 240
  while not os.path.isdir(ckpt) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=120)
  return proc.returncode, out, err


@pytest.fixture(scope="module")
def reference_losses(tmp_path_factory):
  """train/loss at every step of an uninterrupted run."""
  reference = str(tmp_path_factory.mktemp("reference"))
  done = run_main(reference, *RESUME_ARGS)
  assert done.returncode == 0, done.stderr
  return losses(reference)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_with_identical_losses(tmp_path, sig, reference_losses):
  workdir = str(tmp_path / "killed")
  code, _, err = _run_until_checkpoint_then(sig, workdir)
  assert code != 0
  if sig == signal.SIGTERM:
    assert "Stopped by SIGTERM at step" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())
  assert steps and steps[-1] < 300, "the run finished before it could be killed"
  resumed = run_main(workdir, *RESUME_ARGS)
  assert resumed.returncode == 0, resumed.stderr
  assert f"resumed from step {steps[-1]}" in resumed.stdout
  ref, got = reference_losses, losses(workdir)
  assert sorted(got) == list(range(1, 301))
  np.testing.assert_allclose([got[s] for s in range(1, 301)], [ref[s] for s in range(1, 301)], rtol=1e-6)
