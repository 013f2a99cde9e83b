"""Cluster scale on one machine.

* Restore anywhere: a checkpoint written on 8 devices continues on 1 device, on 4, and on 2 processes x 4
  devices, with the losses of the uninterrupted 8-device run.
* The launch recipes of `experiments/launch/` run unchanged: the SLURM script under a fake two-node SLURM
  (a stand-in `srun` starts one process per node with the variables the real one sets, and
  `jax.distributed` finds its peers from them), and the Cloud TPU loop under a stand-in `gcloud` that runs
  the command on two local "workers". A run stopped and saved (status 75) is requeued / rerun; a mistake
  (status 2) is not.
"""

import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from tests.train._run import ROOT, TINY, cpu_env, free_port, losses, run_main

ARGS = ("--config.checkpoint_every_steps=20", "--config.keep_checkpoints=5", "--config.log_every_steps=1",
        "--config.eval_every_steps=0", "--config.eval.final=false", "--config.batch_size=32",
        "--config.model.widths=(8,16)", "--config.total_steps=40")
SLURM = os.path.join(ROOT, "experiments", "launch", "slurm.sbatch")
TPU = os.path.join(ROOT, "experiments", "launch", "tpu_pod.sh")

FAKE_SRUN = r"""#!/bin/bash
# srun for tests: one task per node of the job, all on this machine, with the variables srun sets.
while [[ "$1" == --* ]]; do shift; done
if [ -n "${FAKE_STATUS:-}" ]; then exit "$FAKE_STATUS"; fi
pids=()
for ((i = 0; i < SLURM_NNODES; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=0 SLURM_NODEID=$i SLURM_NTASKS=$SLURM_NNODES SLURM_STEP_NUM_NODES=$SLURM_NNODES \
    SLURM_STEP_NODELIST=localhost "$@" > "$LOGS/task$i.out" 2> "$LOGS/task$i.err" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p"; s=$?; [ "$s" -gt "$status" ] && status=$s; done
exit "$status"
"""

FAKE_SCONTROL = """#!/bin/bash
echo "$@" >> "$LOGS/scontrol.log"
"""

FAKE_GCLOUD = r"""#!/bin/bash
# gcloud for tests: `compute tpus tpu-vm ssh NAME --zone=Z --worker=all|0 --command=CMD` runs CMD on two local
# "workers" (JAX's coordinator variables stand in for the TPU metadata server). The first --worker=all call
# stops with status 75, as a preempted attempt would.
cmd=""; worker=""
for a in "$@"; do
  case "$a" in --command=*) cmd=${a#--command=};; --worker=*) worker=${a#--worker=};; esac
done
echo "$worker" >> "$LOGS/gcloud.log"
if [ "$worker" = 0 ]; then bash -c "$cmd"; exit $?; fi
if [ "$(grep -c all "$LOGS/gcloud.log")" = 1 ]; then exit 75; fi
pids=()
for i in 0 1; do
  JAX_COORDINATOR_ADDRESS=localhost:$PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=$i \
    bash -c "$cmd" > "$LOGS/worker$i.out" 2> "$LOGS/worker$i.err" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p"; s=$?; [ "$s" -gt "$status" ] && status=$s; done
exit "$status"
"""


def _tool(folder, name: str, text: str) -> None:
  path = folder / name
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """40 uninterrupted steps on 8 devices, with the checkpoint of step 20 kept."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  done = run_main(workdir, *ARGS, env=cpu_env(8))
  assert done.returncode == 0, done.stderr[-3000:]
  assert {"20", "40"} <= set(os.listdir(workdir / "checkpoints"))
  return workdir


def _from_step_20(reference, workdir):
  """A workdir holding the reference run as it was at step 20, as if it had been stopped there."""
  os.makedirs(workdir / "checkpoints")
  for name in ("config.json", "stream.json"):
    shutil.copy(reference / name, workdir / name)
  shutil.copytree(reference / "checkpoints" / "20", workdir / "checkpoints" / "20")
  return workdir


def _assert_continues(reference, workdir):
  got, ref = losses(workdir), losses(reference)
  assert sorted(got) == list(range(21, 41))
  np.testing.assert_allclose([got[s] for s in got], [ref[s] for s in got], rtol=2e-5)


@pytest.mark.parametrize("devices", [1, 4])
def test_checkpoint_of_8_devices_continues_on_fewer(devices, reference, tmp_path):
  workdir = _from_step_20(reference, tmp_path / "run")
  done = run_main(workdir, *ARGS, env=cpu_env(devices))
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"on {devices} device(s)" in done.stdout and "resumed from step 20" in done.stdout, done.stdout
  _assert_continues(reference, workdir)


def test_slurm_recipe_starts_two_nodes_that_continue_an_8_device_checkpoint(reference, tmp_path):
  """Two SLURM "nodes" of 4 devices resume the 8-device checkpoint: one global batch over 8 devices."""
  bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
  bin_dir.mkdir(), logs.mkdir()
  _tool(bin_dir, "srun", FAKE_SRUN)
  _tool(bin_dir, "scontrol", FAKE_SCONTROL)
  port = free_port(61440, 65535)  # jax derives the coordinator's port from the job id
  env = cpu_env(4, PATH=f"{bin_dir}:{os.environ['PATH']}", LOGS=str(logs), PYTHON=sys.executable,
                SLURM_JOB_ID=str(port - 61440 + 4096), SLURM_NNODES="2", SLURM_JOB_NODELIST="localhost")
  workdir = _from_step_20(reference, tmp_path / "run")
  job = subprocess.run(["bash", SLURM, TINY, str(workdir), *ARGS], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=400)
  task0 = (logs / "task0.out").read_text()
  assert job.returncode == 0, (job.stdout, job.stderr, (logs / "task0.err").read_text()[-3000:],
                               (logs / "task1.err").read_text()[-3000:])
  assert "on 8 device(s)" in task0 and "global batch 32" in task0 and "resumed from step 20" in task0, task0
  _assert_continues(reference, workdir)
  assert not (logs / "scontrol.log").exists(), "a finished run is not requeued"


@pytest.mark.parametrize("status, restarts, requeued", [(75, 0, True), (75, 20, False), (2, 0, False)])
def test_slurm_recipe_requeues_only_a_stopped_and_saved_run(status, restarts, requeued, tmp_path):
  bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
  bin_dir.mkdir(), logs.mkdir()
  _tool(bin_dir, "srun", FAKE_SRUN)
  _tool(bin_dir, "scontrol", FAKE_SCONTROL)
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOGS=str(logs), FAKE_STATUS=str(status),
             SLURM_JOB_ID="1234", SLURM_NNODES="2", SLURM_RESTART_COUNT=str(restarts))
  job = subprocess.run(["bash", SLURM, TINY, str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
  assert job.returncode == status
  log = logs / "scontrol.log"
  assert (log.read_text().split() == ["requeue", "1234"]) if requeued else not log.exists()


def test_tpu_recipe_reruns_a_stopped_attempt_on_every_worker_until_finished(tmp_path):
  bin_dir, logs, home = tmp_path / "bin", tmp_path / "logs", tmp_path / "home"
  for d in (bin_dir, logs, home / "ssl_jax" / ".venv" / "bin"):
    d.mkdir(parents=True)
  _tool(bin_dir, "gcloud", FAKE_GCLOUD)
  checkout = home / "ssl_jax"  # the recipe runs `cd ~/ssl_jax && .venv/bin/python -m ssl_jax.main ...`
  for name in ("ssl_jax", "configs"):
    os.symlink(os.path.join(ROOT, name), checkout / name)
  _tool(checkout / ".venv" / "bin", "python", f'#!/bin/bash\nexec {sys.executable} "$@"\n')
  env = cpu_env(4, PATH=f"{bin_dir}:{os.environ['PATH']}", LOGS=str(logs), HOME=str(home),
                PORT=str(free_port()), RETRY_DELAY="0", PYTHONPATH=ROOT)
  workdir = tmp_path / "run"
  job = subprocess.run(["bash", TPU, "my-tpu", "zone-a", TINY, str(workdir), *ARGS[:-1], "--config.total_steps=6"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
  assert job.returncode == 0, (job.stdout, job.stderr, (logs / "worker0.err").read_text()[-3000:])
  assert (logs / "gcloud.log").read_text().split() == ["all", "0", "all", "0"], "stopped once, then finished"
  assert "on 8 device(s)" in (logs / "worker0.out").read_text()
  assert sorted(losses(workdir)) == list(range(1, 7)) and (workdir / "results.json").exists()


def test_tpu_recipe_does_not_retry_a_mistake(tmp_path):
  bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
  bin_dir.mkdir(), logs.mkdir()
  _tool(bin_dir, "gcloud", '#!/bin/bash\necho "$@" >> "$LOGS/gcloud.log"; case "$*" in *--worker=all*) exit 2;; *) exit 1;; esac\n')
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOGS=str(logs), RETRY_DELAY="0")
  job = subprocess.run(["bash", TPU, "my-tpu", "zone-a", TINY, str(tmp_path / "run")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
  assert job.returncode == 2 and "not retrying" in job.stderr
  assert len((logs / "gcloud.log").read_text().splitlines()) == 2, "one attempt, one check for results.json"
