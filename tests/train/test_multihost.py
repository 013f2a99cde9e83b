"""Multi-host code on one machine: two processes of 4 CPU devices each train like one process of 8."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "simclr", "digits_tiny.py")
ARGS = ("--config.total_steps=6", "--config.checkpoint_every_steps=3", "--config.log_every_steps=1",
        "--config.eval_every_steps=0", "--config.eval.final=false")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r["train/loss"] for r in map(json.loads, f) if "train/loss" in r]


def _env(devices: int):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def test_two_processes_match_one_process(tmp_path):
  single = tmp_path / "single"
  one = subprocess.run([sys.executable, "-m", "ssl_jax.main", f"--config={TINY}", f"--workdir={single}", *ARGS],
                       cwd=ROOT, env=_env(8), capture_output=True, text=True, timeout=300)
  assert one.returncode == 0, one.stderr[-3000:]

  multi = tmp_path / "multi"
  address = f"localhost:{_free_port()}"
  procs = [subprocess.Popen(
      [sys.executable, "-m", "ssl_jax.main", f"--config={TINY}", f"--workdir={multi}", *ARGS,
       f"--config.distributed.coordinator_address={address}", "--config.distributed.num_processes=2",
       f"--config.distributed.process_id={i}"],
      cwd=ROOT, env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "on 8 device(s)" in outs[0][0]
  np.testing.assert_allclose(_losses(multi), _losses(single), rtol=1e-5)
  steps = sorted(int(s) for s in os.listdir(multi / "checkpoints") if s.isdigit())
  assert steps == [3, 6]
