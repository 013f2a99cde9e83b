"""Multi-host code on one machine: two processes of 4 CPU devices each train like one process of 8."""

import os
import socket
import subprocess

import numpy as np

from tests.train._run import ROOT, losses, main_command, run_main

ARGS = ("--config.total_steps=6", "--config.checkpoint_every_steps=3", "--config.log_every_steps=1",
        "--config.eval_every_steps=0", "--config.eval.final=false")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def test_two_processes_match_one_process(tmp_path):
  single = tmp_path / "single"
  one = run_main(single, *ARGS, env=_env(8))
  assert one.returncode == 0, one.stderr[-3000:]

  multi = tmp_path / "multi"
  address = f"localhost:{_free_port()}"
  procs = [subprocess.Popen(
      main_command(multi, *ARGS, f"--config.distributed.coordinator_address={address}",
                   "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}"),
      cwd=ROOT, env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "on 8 device(s)" in outs[0][0]
  np.testing.assert_allclose(list(losses(multi).values()), list(losses(single).values()), rtol=1e-5)
  steps = sorted(int(s) for s in os.listdir(multi / "checkpoints") if s.isdigit())
  assert steps == [3, 6]
