"""One XLA CPU device per core (`distributed.cpu_devices`, `ssl_jax.train.mesh.setup_cpu_devices`).

XLA:CPU runs a convolution on one thread, so by default a run on CPU splits its batch over one device per core
(as many as divide the batch). A device count set in the environment (XLA_FLAGS, JAX_NUM_CPU_DEVICES) wins; the
default gives way to multi-process runs; a count that comes too late (JAX's devices exist) changes nothing; and a
run on two CPU devices trains what the same run trains on one, up to float rounding.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from ssl_jax.errors import UserError
from ssl_jax.train import mesh as mesh_lib
from ssl_jax.train.config import base_config
from tests.train._run import ROOT, losses, run_main, xla_flags

CHILD = """
import os, sys, json
if {cores}:
  os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:{cores}]))
from ssl_jax.train import mesh
from ssl_jax.train.config import base_config
c = base_config("simclr")
c.batch_size = {batch}
c.distributed.cpu_devices = {requested}
chosen = mesh.setup_cpu_devices(c)
import jax
print(json.dumps({{"chosen": chosen, "devices": jax.device_count(), "cores": mesh.cpu_cores()}}))
"""


def _child(*, batch: int, requested: int = 0, cores: int = 0, **env_vars) -> dict:
  """What `setup_cpu_devices` does in a fresh process whose environment sets no device count of its own."""
  import json
  env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
  env["XLA_FLAGS"] = xla_flags()  # no device count: the config's field chooses it
  env.update(env_vars)
  out = subprocess.run([sys.executable, "-c", CHILD.format(batch=batch, requested=requested, cores=cores)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("batch, cores, expected", [
    (256, 2, 2), (6, 4, 3), (7, 4, 1), (1, 16, 1), (32, 12, 8), (64, 1, 1), (3, 8, 3)])
def test_auto_count_is_the_largest_divisor_of_the_batch_up_to_the_cores(batch, cores, expected):
  assert mesh_lib.auto_cpu_devices(batch, cores) == expected


def test_default_gives_one_device_per_core_that_divides_the_batch():
  cores = mesh_lib.cpu_cores()
  got = _child(batch=12)
  assert got["cores"] == cores
  assert got["devices"] == got["chosen"] == mesh_lib.auto_cpu_devices(12, cores)
  # Pinned to one core (taskset, a SLURM allocation): one device.
  assert _child(batch=12, cores=1) == {"chosen": 1, "devices": 1, "cores": 1}


def test_explicit_count_and_counts_chosen_elsewhere():
  assert _child(batch=12, requested=3)["devices"] == 3
  # A count set in the environment wins over the default and over the config.
  assert _child(batch=12, XLA_FLAGS="--xla_force_host_platform_device_count=5") == {
      "chosen": None, "devices": 5, "cores": mesh_lib.cpu_cores()}
  assert _child(batch=12, requested=3, XLA_FLAGS="--xla_force_host_platform_device_count=5")["devices"] == 5
  assert _child(batch=12, requested=3, JAX_NUM_CPU_DEVICES="4")["devices"] == 4
  # ... and multi-process runs (one device per process, as before): the environment says "one of several".
  got = _child(batch=12, SLURM_NTASKS="2")
  assert got["chosen"] is None and got["devices"] == 1


def test_a_bad_count_is_one_sentence_and_a_late_one_changes_nothing(monkeypatch):
  c = base_config("simclr")
  c.distributed.cpu_devices = -1
  with pytest.raises(UserError, match="cpu_devices` must be >= 0"):
    mesh_lib.setup_cpu_devices(c)
  # In this process JAX made its (8) devices already; even without the environment's count, a config's count is a
  # speed setting: the run goes on on the devices there are (a notebook, an in-process test).
  import jax
  jax.devices()
  monkeypatch.setenv("XLA_FLAGS", "")
  for requested in (3, 0):
    c.distributed.cpu_devices = requested
    assert mesh_lib.setup_cpu_devices(c) is None
  assert jax.device_count() == 8


def test_a_run_on_two_cpu_devices_trains_what_it_trains_on_one(tmp_path):
  """The command line with the default device setting: the log names the devices, and two CPU devices give the
  losses of one (the batch, BatchNorm statistics and NT-Xent are global; only the float rounding differs)."""
  env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
  env["XLA_FLAGS"] = xla_flags()  # no device count: the config's field chooses it
  args = ("--config.total_steps=6", "--config.log_every_steps=1", "--config.eval_every_steps=0",
          "--config.eval.final=false", "--config.checkpoint_every_steps=6")
  by_count = {}
  for devices in (1, 2):
    out = run_main(tmp_path / str(devices), *args, f"--config.distributed.cpu_devices={devices}", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"global batch 64 on {devices} device(s) (cpu)" in out.stdout
    by_count[devices] = losses(tmp_path / str(devices))
  assert sorted(by_count[1]) == sorted(by_count[2]) == list(range(1, 7))
  np.testing.assert_allclose([by_count[2][s] for s in range(1, 7)], [by_count[1][s] for s in range(1, 7)],
                             rtol=2e-4)
