"""Devices: multi-host start-up, the data-parallel mesh, and shardings of states and batches."""

from __future__ import annotations

import os

from absl import logging
import jax
from jax.sharding import NamedSharding, PartitionSpec as P

from ssl_jax.errors import UserError

DATA_AXIS = "data"

# Environment variables whose value > 1 means "this process is one of several": SLURM's and Open MPI's.
_PROCESS_COUNT_ENV = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def _wants_distributed(dist) -> bool:
  if dist.initialize == "yes" or dist.coordinator_address:
    return True
  if dist.initialize == "no":
    return False
  if any(os.environ.get(name, "1") not in ("", "1") for name in _PROCESS_COUNT_ENV):
    return True
  return bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))


def initialize_distributed(dist) -> None:
  """Call `jax.distributed.initialize` when the config or the environment asks for several processes.

  With `distributed.coordinator_address` set, the address, process count and id come from the config;
  otherwise JAX detects them (SLURM, Open MPI, Cloud TPU, or the JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES and JAX_PROCESS_ID variables). Must run before anything touches the devices.
  """
  if not _wants_distributed(dist) or jax.distributed.is_initialized():
    return
  kwargs = {}
  if dist.coordinator_address:
    if dist.num_processes <= 0 or dist.process_id < 0:
      raise UserError("With distributed.coordinator_address set, also set distributed.num_processes and "
                      "distributed.process_id (this process's index).")
    kwargs = dict(coordinator_address=dist.coordinator_address, num_processes=dist.num_processes,
                  process_id=dist.process_id)
  elif os.environ.get("JAX_NUM_PROCESSES") or os.environ.get("JAX_PROCESS_ID"):
    # JAX reads JAX_COORDINATOR_ADDRESS from the environment, but not the process count and index.
    try:
      kwargs = dict(num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                    process_id=int(os.environ["JAX_PROCESS_ID"]))
    except (KeyError, ValueError) as e:
      raise UserError("Set both JAX_NUM_PROCESSES and JAX_PROCESS_ID (this process's index, from 0) to "
                      "integers, with JAX_COORDINATOR_ADDRESS=host:port of process 0.") from e
  # CPU devices of different processes talk over gloo (GPU and TPU bring their own collectives).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(**kwargs)
  except (RuntimeError, ValueError) as e:
    raise UserError(f"Multi-host start-up failed ({str(e).splitlines()[0]}); check the coordinator "
                    "address, the process count and that every process was started.") from e


def cpu_cores() -> int:
  """The CPU cores this process may run on (its affinity mask, e.g. under taskset or a SLURM allocation)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def auto_cpu_devices(batch_size: int, cores: int) -> int:
  """One CPU device per core, or fewer: the largest count <= cores that divides the global batch."""
  return max(d for d in range(1, max(1, min(cores, batch_size)) + 1) if batch_size % d == 0)


def setup_cpu_devices(config) -> int | None:
  """How many XLA CPU devices this process gets (`distributed.cpu_devices`); call before anything touches JAX.

  XLA:CPU runs each convolution on a single thread, while PyTorch's oneDNN uses every core: on a 2-core machine
  the convolutions of the benchmark ConvNet ran 1.75-1.84x faster with the batch split over two CPU devices, one
  per core (benchmarks/README.md). So by default (0) every run on CPU gets one device per core, as many as divide the
  global batch, and the trainer shards the batch over them as it does over GPUs: the same computation up to
  float rounding. A count set in the environment (XLA_FLAGS `--xla_force_host_platform_device_count`,
  JAX_NUM_CPU_DEVICES) wins over the config; the default also stays out of the way of multi-process runs (one
  device per process, as before). On GPU and TPU the setting has no effect (the CPU devices are not used).
  Returns the count set, or None when left to JAX.
  """
  requested = int(config.distributed.get("cpu_devices", 0))
  if requested < 0:
    raise UserError(f"Config field `distributed.cpu_devices` must be >= 0 (0 = one per CPU core), got {requested}.")
  if _HOST_DEVICES_FLAG in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices >= 0:
    return None  # the environment (or an earlier call in this process) chose the count
  if not requested:
    if _wants_distributed(config.distributed):
      return None
    requested = auto_cpu_devices(config.batch_size, cpu_cores())
  try:
    jax.config.update("jax_num_cpu_devices", requested)
  except RuntimeError:
    # JAX made its devices already in this process (a notebook, a test): the count is a speed setting, not part
    # of what is computed, so the run goes on on the devices there are (the start-up line says how many).
    logging.info("distributed.cpu_devices=%d not applied: JAX's devices exist already in this process.", requested)
    return None
  return requested


_HOST_DEVICES_FLAG = "xla_force_host_platform_device_count"


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over `devices` (default: every device of every process)."""
  if devices is not None:
    return jax.sharding.Mesh(list(devices), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh=None, *, what: str = "batch_size") -> None:
  """The global batch must split evenly over the mesh's devices."""
  n = mesh.size if mesh is not None else jax.device_count()
  if batch_size % n:
    lower, upper = batch_size // n * n, (batch_size // n + 1) * n
    options = f"{lower} or {upper}" if lower else str(upper)
    raise UserError(f"The global {what} {batch_size} is not divisible by the {n} devices; "
                    f"use a multiple of {n}, e.g. --config.{what}={options}.")
