"""Timing helpers shared by the benchmark scripts (losses, train steps).

Conventions, the same for every table we publish:
  * JAX: the function is `jax.jit`-ed and compiled ahead of time (`.lower(...).compile()`); the compile time
    (trace + lower + XLA compile) is reported on its own and never mixed into the step time. One warm-up call
    follows, then every timed call ends in `jax.block_until_ready`.
  * PyTorch: eager mode, one warm-up call, then every timed call runs to completion (CPU ops are synchronous).
  * Both sides use every core this process may run on: PyTorch through `torch.set_num_threads`, JAX through
    XLA's CPU thread pool, which is sized to the cores by default.
  * The two sides are timed interleaved, one call of each per round, with the order alternated from round to
    round (ABBA), so that load from other processes on a shared machine hits both sides alike; we report medians.
    The garbage collector is off while timing (as in `timeit`).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def rel_err(a, b) -> float:
  """||a - b|| / ||b|| over all elements, in float64: how far a result is from its reference."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  a = np.asarray(a, np.float64).ravel()
  b = np.asarray(b, np.float64).ravel()
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def num_cores() -> int:
  """Cores this process may run on (the affinity mask, not the host's count)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def setup_torch_threads() -> int:
  """Give PyTorch one intra-op thread per core, as JAX's XLA CPU backend has by default; returns the count."""
  import torch  # pylint: disable=g-import-not-at-top

  n = num_cores()
  torch.set_num_threads(n)
  return n


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def machine_info(with_torch: bool = True) -> dict[str, Any]:
  """What the numbers were measured on: CPU, core count, library versions."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  info: dict[str, Any] = {
      "cpu": _cpu_model(),
      "cores": num_cores(),
      "python": platform.python_version(),
      "jax": jax.__version__,
      "jax_backend": jax.default_backend(),
      "numpy": np.__version__,
  }
  if with_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top

      info["torch"] = torch.__version__
      info["torch_threads"] = torch.get_num_threads()
    except ImportError:
      info["torch"] = "not installed"
  return info


def format_machine(info: dict[str, Any]) -> str:
  parts = [f"{info['cpu']}, {info['cores']} cores", f"python {info['python']}",
           f"jax {info['jax']} ({info['jax_backend']})"]
  if "torch" in info:
    threads = f", {info['torch_threads']} threads" if "torch_threads" in info else ""
    parts.append(f"torch {info['torch']}{threads}")
  return "; ".join(parts)


@dataclasses.dataclass
class Timing:
  """Wall-clock times of the timed calls, in seconds."""

  times: list[float]

  @property
  def median(self) -> float:
    return statistics.median(self.times)

  @property
  def median_ms(self) -> float:
    return 1e3 * self.median

  @property
  def min_ms(self) -> float:
    return 1e3 * min(self.times)

  @property
  def spread_ms(self) -> float:
    """Half the inter-quartile range, in ms: how noisy the median is."""
    if len(self.times) < 4:
      return 0.5e3 * (max(self.times) - min(self.times))
    q = statistics.quantiles(self.times, n=4)
    return 0.5e3 * (q[2] - q[0])


class JaxTimer:
  """A jitted JAX function compiled ahead of time for fixed arguments, then timed call by call."""

  def __init__(self, fn: Callable[..., Any], args: Sequence[Any], *, jit_kwargs: dict | None = None):
    import jax  # pylint: disable=g-import-not-at-top

    self._jax = jax
    self.args = tuple(args)
    jax.block_until_ready(self.args)
    t0 = time.perf_counter()
    self.compiled = jax.jit(fn, **(jit_kwargs or {})).lower(*self.args).compile()
    self.compile_s = time.perf_counter() - t0
    self.warm = False

  def call(self) -> Any:
    return self._jax.block_until_ready(self.compiled(*self.args))

  def warmup(self) -> Any:
    out = self.call()
    self.warm = True
    return out

  def time_once(self) -> float:
    t0 = time.perf_counter()
    self.call()
    return time.perf_counter() - t0


class TorchTimer:
  """An eager PyTorch callable timed call by call; `step()` runs forward and backward and returns the outputs."""

  def __init__(self, step: Callable[[], Any]):
    self.step = step
    self.warm = False

  def warmup(self) -> Any:
    out = self.step()
    self.warm = True
    return out

  def time_once(self) -> float:
    t0 = time.perf_counter()
    self.step()
    return time.perf_counter() - t0


def interleaved(timers: Sequence[JaxTimer | TorchTimer], runs: int) -> list[Timing]:
  """Time every timer `runs` times, one call each per round, reversing the order every other round (ABBA)."""
  for t in timers:
    if not t.warm:
      t.warmup()
  times: list[list[float]] = [[] for _ in timers]
  order = list(range(len(timers)))
  gc.collect()
  gc_was_enabled = gc.isenabled()
  gc.disable()  # as `timeit` does: no collection pause inside a timed call
  try:
    for r in range(runs):
      for i in (order if r % 2 == 0 else order[::-1]):
        times[i].append(timers[i].time_once())
  finally:
    if gc_was_enabled:
      gc.enable()
  return [Timing(ts) for ts in times]


def time_alone(timer: JaxTimer | TorchTimer, runs: int) -> Timing:
  return interleaved([timer], runs)[0]


def _proc_status_kib(field: str) -> int | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except OSError:
    pass
  return None


def rss_bytes() -> int | None:
  """Current resident set size (Linux `VmRSS`), or None where /proc is missing."""
  kib = _proc_status_kib("VmRSS")
  return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
  """Reset the peak RSS of this process to its current RSS (Linux >= 4.0, `/proc/self/clear_refs`)."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def peak_rss_bytes() -> int:
  """Peak resident set size of this process (Linux `VmHWM`, resettable with `reset_peak_rss`).

  Falls back to `getrusage(RUSAGE_SELF).ru_maxrss`, which on Linux is *inherited* through fork and exec: a
  child started by a big parent reports at least the parent's RSS at fork time, so it is only a fallback.
  """
  kib = _proc_status_kib("VmHWM")
  if kib is not None:
    return kib * 1024
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return rss if sys.platform == "darwin" else rss * 1024


def run_json_subprocess(argv: Sequence[str], *, timeout: float | None = None, env: dict | None = None) -> dict:
  """Run `python argv...` in a fresh interpreter and parse the last stdout line as JSON.

  A fresh process is the only honest way to measure peak memory: `ru_maxrss` never goes down, so whatever ran
  before in this process would hide the number we want.
  """
  proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, **(env or {})}, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.strip()]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f"subprocess {argv} failed with exit code {proc.returncode}:\n{proc.stderr[-2000:]}")
  return json.loads(lines[-1])


def gib(nbytes: float) -> str:
  return f"{nbytes / 2**30:.2f} GiB"


def fmt_ms(ms: float | None) -> str:
  if ms is None:
    return "-"
  if ms >= 100:
    return f"{ms:.0f}"
  if ms >= 10:
    return f"{ms:.1f}"
  return f"{ms:.2f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool,
                 align_right: Sequence[bool] | None = None) -> str:
  """A plain-text table padded to the widest cell, or a GitHub markdown table."""
  align_right = list(align_right) if align_right is not None else [False] * len(headers)
  if markdown:
    sep = ["---:" if r else "---" for r in align_right]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
  widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]

  def fmt(row):
    return "  ".join(str(c).rjust(w) if right else str(c).ljust(w) for c, w, right in zip(row, widths, align_right))

  return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])
