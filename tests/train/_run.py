"""Running `python -m ssl_jax.main` on the tiny digits config, as the trainer tests do."""

import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "ssl", "simclr_digits_tiny.py")


def main_command(workdir, *overrides, config=TINY) -> list[str]:
  return [sys.executable, "-m", "ssl_jax.main", f"--config={config}", f"--workdir={workdir}", *overrides]


def run_main(workdir, *overrides, config=TINY, env=None, timeout=300) -> subprocess.CompletedProcess:
  return subprocess.run(main_command(workdir, *overrides, config=config), cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def losses(workdir) -> dict[int, float]:
  """train/loss by step, from the run's metrics.jsonl."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["train/loss"] for r in map(json.loads, f) if "train/loss" in r}


def free_port(lo: int | None = None, hi: int | None = None) -> int:
  """A TCP port nobody listens on: any (the OS's pick), or the first free one in [lo, hi]."""
  for port in ([0] if lo is None else range(lo, hi + 1)):
    with socket.socket() as s:
      try:
        s.bind(("localhost", port))
      except OSError:
        continue
      return s.getsockname()[1]
  raise RuntimeError(f"no free port in [{lo}, {hi}]")


def xla_flags(devices: int | None = None) -> str:
  """This process's XLA_FLAGS with the CPU device count replaced by `devices` (None: removed).

  The other flags stay, so a subprocess compiles as the tests do (conftest's LLVM level) and shares their
  persistent compilation cache."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  if devices is not None:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  return " ".join(flags)


def cpu_env(devices: int, **more) -> dict[str, str]:
  """This environment with `devices` CPU devices per process (and `more` variables)."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = xla_flags(devices)
  env.update(more)
  return env
