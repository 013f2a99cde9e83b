"""Multi-host code on one machine: two processes of 4 CPU devices each train like one process of 8, and
SIGTERM reaching one host makes every host stop at one agreed step and save it (JAX's preemption sync)."""

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.train._run import ROOT, cpu_env, free_port, losses, main_command, run_main

ARGS = ("--config.checkpoint_every_steps=1000", "--config.log_every_steps=1", "--config.eval_every_steps=0",
        "--config.eval.final=false", "--config.batch_size=32", "--config.model.widths=(8,16)")


def _start_two(workdir, *args):
  address = f"localhost:{free_port()}"
  return [subprocess.Popen(
      main_command(workdir, *args, f"--config.distributed.coordinator_address={address}",
                   "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}"),
      cwd=ROOT, env=cpu_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]


def _steps(workdir):
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())


@pytest.mark.slow  # three real processes, about a minute; test_cluster.py's SLURM test also starts two processes
def test_two_processes_match_one_process_and_agree_on_a_preemption(tmp_path):
  total = ("--config.total_steps=40",)
  single = tmp_path / "single"
  one = run_main(single, *ARGS, *total, env=cpu_env(8))
  assert one.returncode == 0, one.stderr[-3000:]

  multi = str(tmp_path / "multi")
  procs = _start_two(multi, *ARGS, *total)
  metrics = os.path.join(multi, "metrics.jsonl")
  deadline = time.time() + 240
  while time.time() < deadline and procs[0].poll() is None:  # SIGTERM to host 1 only, mid-run
    if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3:
      break
    time.sleep(0.01)
  procs[1].send_signal(signal.SIGTERM)
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 75, err[-3000:]  # EX_TEMPFAIL: stopped and saved, resubmit
  stopped = [int(re.search(r"Stopped by SIGTERM at step (\d+)", err).group(1)) for _, err in outs]
  assert stopped[0] == stopped[1] < 40, "both hosts stop at the step they agreed on"
  assert _steps(multi) == [stopped[0]]

  procs = _start_two(multi, *ARGS, *total)  # resubmitted: both resume from the saved step
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "on 8 device(s)" in outs[0][0] and f"resumed from step {stopped[0]}" in outs[0][0]
  got, ref = losses(multi), losses(single)
  assert sorted(got) == list(range(1, 41))
  np.testing.assert_allclose([got[s] for s in got], [ref[s] for s in got], rtol=1e-5)
  with open(os.path.join(multi, "config.json")) as f:
    assert json.load(f)["total_steps"] == 40
