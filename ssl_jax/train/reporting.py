"""What a run shows and writes: metrics.jsonl, TensorBoard, the progress bar, results table and report.png."""

from __future__ import annotations

import json
import math
import os
import sys
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
  """A one-line progress bar with steps/s and ETA (tqdm), quiet when not on a terminal or not process 0."""

  def __init__(self, *, total: int, initial: int, enabled: bool):
    self._bar = None
    if enabled:
      from tqdm import tqdm
      self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stdout,
                       mininterval=1.0, smoothing=0.1,
                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}")

  def update(self, n: int = 1, **postfix) -> None:
    if self._bar is not None:
      self._bar.update(n)
      if postfix:
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

  def write(self, text: str) -> None:
    if self._bar is not None:
      self._bar.write(text)
    else:
      print(text, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


class Stopwatch:
  def __init__(self):
    self.start = time.perf_counter()

  def __call__(self) -> float:
    return time.perf_counter() - self.start


def results_table(results: dict[str, Any]) -> str:
  """The short table printed at the end of a run."""
  rows = [
      ("linear probe top-1 (SSL features)", results.get("linear_probe_top1")),
      ("kNN top-1 (SSL features)", results.get("knn_top1")),
      ("linear probe top-1 (raw pixels)", results.get("pixel_linear_probe_top1")),
      ("steps", results.get("steps")),
      ("train seconds", results.get("train_seconds")),
  ]
  width = max(len(name) for name, _ in rows)
  lines = [f"{'result'.ljust(width)}  value", f"{'-' * width}  -------"]
  for name, value in rows:
    if value is None:
      continue
    text = f"{value:.4f}" if isinstance(value, float) and value < 1.5 else (
        f"{value:.1f}" if isinstance(value, float) else str(value))
    lines.append(f"{name.ljust(width)}  {text}")
  return "\n".join(lines)


def write_report(path: str, rows: list[dict[str, Any]], results: dict[str, Any], *, title: str) -> None:
  """report.png: the training loss curve and the accuracy bars."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  steps = [r["step"] for r in rows if "train/loss" in r]
  loss = [r["train/loss"] for r in rows if "train/loss" in r]
  ax1.plot(steps, loss, color="tab:blue")
  ax1.set_xlabel("step")
  ax1.set_ylabel("train/loss")
  ax1.set_title("SSL training loss")
  ax1.grid(alpha=0.3)
  names = [("linear_probe_top1", "linear probe\n(SSL)"), ("knn_top1", "kNN\n(SSL)"),
           ("pixel_linear_probe_top1", "linear probe\n(pixels)")]
  bars = [(label, results[key]) for key, label in names if isinstance(results.get(key), float)]
  if bars:
    labels, values = zip(*bars)
    colors = ["tab:green", "tab:olive", "tab:gray"][:len(values)]
    ax2.bar(labels, values, color=colors)
    for i, v in enumerate(values):
      ax2.text(i, v + 0.005, f"{v:.3f}", ha="center", va="bottom")
    low = min(values)
    ax2.set_ylim(max(0.0, math.floor((low - 0.1) * 10) / 10), 1.0)
  ax2.set_ylabel("test top-1 accuracy")
  ax2.set_title("Evaluation")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
