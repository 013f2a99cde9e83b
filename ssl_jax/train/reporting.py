"""What a run shows and writes: metrics.jsonl, TensorBoard, the progress bar, results table and report.png."""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
import time
from typing import Any

import numpy as np


class MetricsLog:
  """`metrics.jsonl`: one JSON object per logged step, appended; on resume, rows past the restored step go.

  Rows after the checkpoint a run resumes from were produced by work that is about to be redone, so they are
  dropped when the log is opened; the file then reads exactly as an uninterrupted run's.
  """

  def __init__(self, path: str, *, resume_step: int, enabled: bool = True):
    self.path = path
    self.enabled = enabled
    self.resumed_rows: list[dict[str, Any]] = []  # the rows kept from before the resume
    if not enabled:
      return
    rows = self.resumed_rows
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          line = line.strip()
          if not line:
            continue
          try:
            row = json.loads(line)
          except json.JSONDecodeError:  # a line cut short by a kill
            continue
          if row.get("step", 0) <= resume_step:
            rows.append(row)
    with open(path, "w") as f:
      for row in rows:
        f.write(json.dumps(row) + "\n")

  def previous_train_seconds(self) -> float:
    """Training time spent before the resume (0 for a fresh run), from the kept rows."""
    return max((r["train/seconds"] for r in self.resumed_rows if "train/seconds" in r), default=0.0)

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")

  def read(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]


def _plain(v):
  v = np.asarray(v)
  return v.item() if v.ndim == 0 else v.tolist()


class Progress:
  """Progress on the console: a tqdm bar on a terminal; plain lines every `every` steps otherwise.

  When stdout is a file or a pipe (a cluster job's log), a bar's carriage-return frames would pile up in
  it, so each update becomes one line ("step 400/1200  loss 1.234  5.1 steps/s  ETA 2:36") instead.
  Quiet when not enabled (processes other than 0).
  """

  def __init__(self, *, total: int, initial: int, enabled: bool, every: int = 50, stream=None):
    self._bar = None
    self._stream = stream or sys.stdout
    self._enabled = enabled
    self._total, self._n, self._every = total, initial, max(int(every), 1)
    self._start, self._t0, self._postfix = initial, time.perf_counter(), {}
    if enabled and self._stream.isatty():
      from tqdm import tqdm
      self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=self._stream,
                       mininterval=1.0, smoothing=0.1,
                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}")

  def update(self, n: int = 1, **postfix) -> None:
    if not self._enabled:
      return
    self._n += n
    if postfix:
      self._postfix.update(postfix)
    if self._bar is not None:
      self._bar.update(n)
      if postfix:
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
      return
    if n and (self._n % self._every == 0 or self._n == self._total):
      rate = (self._n - self._start) / max(time.perf_counter() - self._t0, 1e-9)
      eta = (self._total - self._n) / rate if rate > 0 else 0.0
      extra = "".join(f"  {k} {v:.4g}" for k, v in self._postfix.items())
      self.write(f"step {self._n}/{self._total}{extra}  {rate:.2f} steps/s  ETA {_clock(eta)}")

  def write(self, text: str) -> None:
    if not self._enabled:
      return
    if self._bar is not None:
      self._bar.write(text)
    else:
      print(text, file=self._stream, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def _clock(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rest = divmod(seconds, 3600)
  return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Stopwatch:
  def __init__(self):
    self.start = time.perf_counter()

  def __call__(self) -> float:
    return time.perf_counter() - self.start


def _label(key: str) -> str:
  from ssl_jax.evaluation.suites import LABELS  # pylint: disable=g-import-not-at-top
  return LABELS.get(key, key.replace("_", " "))


def results_table(results: dict[str, Any]) -> str:
  """The short table printed at the end of a run: every result the suites wrote, then steps and time."""
  from ssl_jax.evaluation.suites import LABELS  # pylint: disable=g-import-not-at-top
  rows = [(_label(k), v) for k, v in results.items() if k in LABELS]
  rows += [("data", results.get("data")), ("steps", results.get("steps")),
           ("train seconds", results.get("train_seconds"))]
  rows = [(name, value) for name, value in rows if value is not None]
  width = max(len(name) for name, _ in rows)
  lines = [f"{'result'.ljust(width)}  value", f"{'-' * width}  -------"]
  for name, value in rows:
    text = f"{value:.4f}" if isinstance(value, float) and value < 1.5 else (
        f"{value:.1f}" if isinstance(value, float) else str(value))
    lines.append(f"{name.ljust(width)}  {text}")
  return "\n".join(lines)


def write_report(path: str, rows: list[dict[str, Any]], results: dict[str, Any], *, title: str) -> None:
  """report.png: the training loss curve, and a bar for every score in [0, 1] that the suites wrote."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from ssl_jax.evaluation.suites import LABELS  # pylint: disable=g-import-not-at-top

  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
  steps = [r["step"] for r in rows if "train/loss" in r]
  loss = [r["train/loss"] for r in rows if "train/loss" in r]
  ax1.plot(steps, loss, color="tab:blue")
  ax1.set_xlabel("step")
  ax1.set_ylabel("train/loss")
  ax1.set_title("Training loss")
  ax1.grid(alpha=0.3)
  bars = [(LABELS[k], v) for k, v in results.items()
          if k in LABELS and not k.endswith("_mse") and isinstance(v, float) and 0.0 <= v <= 1.0]
  if bars:
    labels, values = zip(*bars)
    colors = ["tab:gray" if "raw pixels" in label else "tab:green" for label in labels]
    ax2.bar(range(len(values)), values, color=colors)
    ax2.set_xticks(range(len(values)), [textwrap.fill(label, 14) for label in labels], fontsize=8)
    for i, v in enumerate(values):
      ax2.text(i, v + 0.005, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    low = min(values)
    ax2.set_ylim(max(0.0, math.floor((low - 0.1) * 10) / 10), 1.0)
  ax2.set_title("Evaluation (test data)")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
