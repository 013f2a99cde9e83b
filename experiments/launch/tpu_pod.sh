#!/bin/bash
# Train with ssl_jax on a Cloud TPU VM pod slice, and keep going through preemptions.
#
#   experiments/launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.field=value ...]
#   e.g. experiments/launch/tpu_pod.sh my-v4-32 us-central2-b configs/ssl/simclr_cifar10.py /mnt/shared/runs/simclr_c10
#
# Run it from your workstation (gcloud configured). Every TPU VM worker runs the same
# `python -m ssl_jax.main` command (`--worker=all`); on Cloud TPU `jax.distributed.initialize()` needs no
# arguments: it reads the slice's topology from the TPU metadata server. WORKDIR must be a folder every
# worker sees at the same path (a Filestore/NFS mount, or gcsfuse), because all workers write the orbax
# checkpoints and process 0 writes the logs.
#
# Set-up, once per slice (SETUP=1 runs it): clone this repository to ~/ssl_jax on every worker and install
# it with the TPU build of JAX:
#   git clone <this repository> ~/ssl_jax && cd ~/ssl_jax && make install && .venv/bin/pip install "jax[tpu]"
#
# Preemption (spot/preemptible TPUs, maintenance): the workers get SIGTERM, agree on one step, save it and
# exit with status 75 (EX_TEMPFAIL); this loop runs the same command again, which resumes from that step,
# until WORKDIR/results.json exists. It also retries when ssh itself failed (255: a preempted VM drops the
# session) and stops on anything else (2: a mistake, whose `error:` line says what to fix).
# If the slice itself was deleted by a preemption, recreate it (or use a queued resource) and rerun this
# script: the run continues from its workdir. Status 0 (finished) or 2 (a mistake, see its `error:` line)
# ends the loop.
set -u
if [ $# -lt 4 ]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [--config.field=value ...]" >&2
  exit 2
fi
TPU=$1
ZONE=$2
CONFIG=$3
WORKDIR=$4
shift 4
MAX_RESTARTS=${MAX_RESTARTS:-20}
GCLOUD=${GCLOUD:-gcloud}

ssh_all() {
  "$GCLOUD" compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="$1"
}

if [ "${SETUP:-0}" = 1 ]; then
  ssh_all "test -d ~/ssl_jax || git clone ${REPO:?set REPO to this repository\'s URL} ~/ssl_jax; cd ~/ssl_jax && make install && .venv/bin/pip install -q 'jax[tpu]'"
fi

args=$(printf ' %q' "$@")
for attempt in $(seq 0 "$MAX_RESTARTS"); do
  echo "ssl_jax: attempt $attempt on $TPU, workdir $WORKDIR"
  ssh_all "cd ~/ssl_jax && .venv/bin/python -m ssl_jax.main --config=$(printf %q "$CONFIG") --workdir=$(printf %q "$WORKDIR")$args"
  status=$?
  # gcloud may fold the workers' statuses into one (and gives 255 when a preempted VM drops the ssh
  # session), so "finished" is read from the workdir: results.json is written after the final evaluation.
  if "$GCLOUD" compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=0 \
       --command="test -f $(printf %q "$WORKDIR")/results.json"; then
    echo "ssl_jax: finished; results in $WORKDIR/results.json"
    exit 0
  fi
  if [ "$status" -ne 75 ] && [ "$status" -ne 255 ]; then
    echo "ssl_jax: the run failed with status $status (2: a mistake, see its error: line); not retrying." >&2
    exit "$status"
  fi
  echo "ssl_jax: stopped (status $status) before finishing; running the same command again to continue."
  sleep "${RETRY_DELAY:-30}"
done
echo "ssl_jax: gave up after $MAX_RESTARTS restarts; rerun this script to continue." >&2
exit 75
