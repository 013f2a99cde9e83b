"""Running `python -m ssl_jax.main` on the tiny digits config, as the trainer tests do."""

import json
import os
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
