"""The attention map of multiple-instance learning: a few test bags, each instance with its weight."""

from __future__ import annotations

import numpy as np


def pick_bags(labels: np.ndarray, count: int = 6) -> np.ndarray:
  """Indices of up to `count` bags, half positive and half negative where both exist, in order."""
  pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
  half = count // 2
  take_pos = pos[:max(half, count - len(neg))]
  take_neg = neg[:count - len(take_pos)]
  return np.sort(np.concatenate([take_pos, take_neg]))[:count]


def attention_figure(instances: np.ndarray, mask: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                     path: str, *, bag_scores: np.ndarray | None = None,
                     instance_labels: np.ndarray | None = None, count: int = 6, title: str = "") -> list[int]:
  """Draw `count` bags as rows of instances, each instance titled with its weight, and save a PNG.

  One mosaic image (a single `imshow`, so it costs well under a second): each tile is framed in a colour
  that grows with its weight relative to the bag's largest (white to dark red) and its weight is written
  above it; with `instance_labels`, a key instance's weight is written in bold and underlined by a green
  bar. Returns the drawn bag indices.

  Args:
    instances: uint8 [B, n, H, W, C] (an array, or a streamed dataset's `LazyImages`: only the drawn bags are
      read); mask: bool [B, n]; labels: int [B]; weights: [B, n] (attention
      weights, or instance scores in [0, 1] for the instance poolings).
    path: the PNG to write.
    bag_scores: [B] bag logits, shown at the start of each row.
    instance_labels: int [B, n], 1 for the instances that make a bag positive.
    count: bags to draw (half positive, half negative where both exist).
    title: the figure's title.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  mask, weights = np.asarray(mask), np.asarray(weights, np.float64)  # instances: read only the bags drawn
  rows = pick_bags(np.asarray(labels), count)
  cols = int(max(mask[rows].sum(1).max(), 1)) if len(rows) else 1
  h, w = instances.shape[2:4]
  frame, gap, text = max(2, h // 10), 2, max(8, h // 2)  # frame width, gap, room for the weight above a tile
  th, tw = h + 2 * frame + text + gap, w + 2 * frame + gap
  canvas = np.ones((len(rows) * th, cols * tw, 3))
  cmap = plt.get_cmap("Reds")
  notes = []
  for r, b in enumerate(rows):
    real = np.flatnonzero(mask[b])
    top = float(weights[b][real].max()) if real.size else 1.0
    for c, i in enumerate(real[:cols]):
      y, x = r * th + text, c * tw
      rel = weights[b, i] / top if top > 0 else 0.0
      canvas[y:y + h + 2 * frame, x:x + w + 2 * frame] = cmap(0.15 + 0.85 * rel)[:3]
      img = np.asarray(instances[b, i]).astype(np.float64) / 255.0
      canvas[y + frame:y + frame + h, x + frame:x + frame + w] = img if img.shape[-1] == 3 else img[..., :1]
      key = instance_labels is not None and instance_labels[b, i] == 1
      if key:
        canvas[y + h + 2 * frame:y + h + 2 * frame + gap, x:x + w + 2 * frame] = (0.1, 0.6, 0.1)
      notes.append((x + tw / 2 - gap / 2, y - 1, f"{weights[b, i]:.2f}", key))
  fig_w = min(2 + cols * tw / 40, 30)
  fig, ax = plt.subplots(figsize=(fig_w, fig_w * canvas.shape[0] / canvas.shape[1] + 0.6))
  ax.imshow(canvas, interpolation="nearest")
  for x, y, label, key in notes:
    ax.text(x, y, label, ha="center", va="bottom", fontsize=6, fontweight="bold" if key else "normal")
  ax.set_xticks([])
  ax.set_yticks([r * th + text + h / 2 for r in range(len(rows))])
  ax.set_yticklabels([f"bag {b}, label {int(labels[b])}" + ("" if bag_scores is None else
                                                             f"\nlogit {float(bag_scores[b]):.1f}")
                      for b in rows], fontsize=7)
  for spine in ax.spines.values():
    spine.set_visible(False)
  ax.set_title(title or "Test bags: each instance with its weight (bold, green bar: a key instance)", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return [int(b) for b in rows]
