"""Pretext tasks that turn unlabelled images into classification problems: RotNet and jigsaw puzzles.

Each task returns transformed inputs and integer labels; train with a softmax cross-entropy
(`optax.softmax_cross_entropy_with_integer_labels`). Images are NHWC, [b, h, w, c].
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.losses._utils import check_ndim, shape_error


def rotations(key: jax.Array | None, x: jax.Array, *,
              all_rotations: bool = True) -> tuple[jax.Array, jax.Array]:
  """RotNet inputs: images rotated by 0, 90, 180 or 270 degrees, labelled 0, 1, 2, 3.

  Rotation k turns the image by k * 90 degrees counter-clockwise, `np.rot90(image, k)` (as the
  RotNet code: 90 = flipud(transpose), 270 = transpose(flipud)).

  With `all_rotations=True` (what RotNet trains on) every image appears in all four rotations,
  grouped per image: x_rot[4 i + k] = rot90(x[i], k), labels[4 i + k] = k; `key` is unused and may
  be None. With `all_rotations=False` one rotation k_i ~ U{0..3} is drawn per image with `key`:
  x_rot[i] = rot90(x[i], k_i), labels[i] = k_i.

  Args:
    key: a JAX PRNG key (only used when all_rotations=False).
    x: square images, [b, h, h, c].
    all_rotations: return all four rotations of each image, or one random rotation.
  Returns:
    (x_rot, labels): x_rot [4b, h, h, c] (or [b, h, h, c]), labels int32 [4b] (or [b]).
  References: Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning by Predicting
    Image Rotations", arXiv:1803.07728.
  """
  check_ndim("rotations", 4, x=x)
  x = jnp.asarray(x)
  b, h, w, c = x.shape
  if h != w:
    raise shape_error("rotations", "images must be square (h == w) so every rotation keeps the "
                      "shape; crop or resize them first", x=x)
  rots = jnp.stack([jnp.rot90(x, k, axes=(1, 2)) for k in range(4)], axis=1)  # [b, 4, h, w, c]
  if all_rotations:
    labels = jnp.tile(jnp.arange(4, dtype=jnp.int32), b)
    return rots.reshape(4 * b, h, w, c), labels
  if key is None:
    raise ValueError("rotations: `key` is needed to draw one rotation per image when "
                     "all_rotations=False; got key=None.")
  labels = jax.random.randint(key, (b,), 0, 4, dtype=jnp.int32)
  return rots[jnp.arange(b), labels], labels


def _all_permutations(m: int) -> np.ndarray:
  """All m! permutations of range(m) in lexicographic order, uint8 [m!, m], vectorised."""
  perms = np.zeros((1, 0), np.uint8)
  for k in range(1, m + 1):
    # Permutations of range(k) from those of range(k - 1): choose the first element f, then relabel
    # the rest (values >= f shift up by one); blocks in order of f keep lexicographic order.
    blocks = [np.concatenate([np.full((len(perms), 1), f, np.uint8),
                              perms + (perms >= f).astype(np.uint8)], axis=1) for f in range(k)]
    perms = np.concatenate(blocks, axis=0)
  return perms


@functools.lru_cache(maxsize=16)
def _jigsaw_permutations(n: int, grid: int, seed: int, criterion: str) -> np.ndarray:
  cand = _all_permutations(grid * grid)
  cols = [np.ascontiguousarray(cand[:, k]) for k in range(cand.shape[1])]
  rng = np.random.default_rng(seed)
  j = int(rng.integers(len(cand)))
  chosen = []
  score = np.full(len(cand), np.iinfo(np.int32).max if criterion == "min" else 0, np.int32)
  taken = np.zeros(len(cand), bool)
  for _ in range(n):
    chosen.append(j)
    taken[j] = True
    p = cand[j]
    dist = np.zeros(len(cand), np.int32)
    for k, col in enumerate(cols):
      dist += col != p[k]
    score = np.minimum(score, dist) if criterion == "min" else score + dist
    j = int(np.argmax(np.where(taken, -1, score)))
  out = cand[np.asarray(chosen)].astype(np.int32)
  out.setflags(write=False)
  return out


def jigsaw_permutations(n: int, *, grid: int = 3, seed: int = 0, criterion: str = "min") -> np.ndarray:
  """A set of n tile permutations far apart in Hamming distance, for the jigsaw puzzle task.

  Greedy selection over all (grid^2)! permutations: start from one drawn at random (NumPy
  generator seeded with `seed`), then repeatedly add the candidate that maximises
    "min":  the minimum Hamming distance to the permutations chosen so far (farthest-point
            selection: the set's minimal pairwise distance is as large as the greedy can make it);
    "mean": the sum of Hamming distances to the chosen ones (Algorithm 1 of the paper, line 9-10).
  Ties go to the lexicographically first permutation, so the result is deterministic for a seed.
  Vectorised over the 9! = 362880 candidates of grid=3 (about 3 ms per chosen permutation);
  results are cached.

  Args:
    n: number of permutations (classes of the pretext task), 1 <= n <= (grid^2)!.
    grid: tiles per side, 2 or 3 (larger grids have too many permutations to enumerate).
    seed: seed of the first, random, permutation.
    criterion: "min" or "mean", see above.
  Returns:
    Read-only int32 NumPy array [n, grid * grid]; row r lists, for each output position t, which
    raster-order tile goes there (see `jigsaw`).
  References: Noroozi & Favaro 2016, "Unsupervised Learning of Visual Representations by Solving
    Jigsaw Puzzles", arXiv:1603.09246, Algorithm 1.
  """
  if grid not in (2, 3):
    raise ValueError(f"jigsaw_permutations: `grid` must be 2 or 3 (all (grid^2)! permutations are "
                     f"enumerated); got grid={grid}.")
  total = math.factorial(grid * grid)
  if not 1 <= n <= total:
    raise ValueError(f"jigsaw_permutations: `n` must be between 1 and {total} for grid={grid}; "
                     f"got n={n}.")
  if criterion not in ("min", "mean"):
    raise ValueError(f"jigsaw_permutations: `criterion` must be 'min' or 'mean'; got {criterion!r}.")
  return _jigsaw_permutations(int(n), int(grid), int(seed), criterion)


def jigsaw(key: jax.Array, x: jax.Array, permutations: jax.Array, *,
           tile_size: int | None = None) -> tuple[jax.Array, jax.Array]:
  """Jigsaw puzzle inputs: cut each image into grid x grid tiles and shuffle them by a random permutation.

  Tiles are numbered in raster order (tile r * grid + c is row r, column c). For example i a label
  y_i ~ U{0..len(permutations)-1} is drawn and output position t holds tile permutations[y_i, t]:
    tiles[i, t] = tile(x_i, permutations[y_i, t]),
  so the original tile s sits at the position t where permutations[y_i, t] = s. The network (one
  shared tile encoder, the concatenated features, a classifier) predicts y_i.

  With `tile_size` each tile is a random tile_size x tile_size crop inside its cell (drawn
  independently per tile), the gap of the paper (64-pixel tiles in 85-pixel cells) that stops the
  network from solving the puzzle by matching tile edges.

  Args:
    key: a JAX PRNG key.
    x: images [b, h, w, c], h and w divisible by grid.
    permutations: int [num_perms, grid * grid], e.g. from `jigsaw_permutations`.
    tile_size: None keeps whole cells; else the crop side, <= min(h, w) / grid.
  Returns:
    (tiles, labels): tiles [b, grid * grid, th, tw, c] (th = h / grid, tw = w / grid, or both
    tile_size), labels int32 [b], the permutation index.
  References: Noroozi & Favaro 2016, arXiv:1603.09246.
  """
  check_ndim("jigsaw", 4, x=x)
  check_ndim("jigsaw", 2, permutations=permutations)
  x = jnp.asarray(x)
  num_perms, length = permutations.shape
  grid = math.isqrt(length)
  if grid * grid != length or grid < 1:
    raise shape_error("jigsaw", "`permutations` must have shape [num_perms, grid * grid] with a "
                      "square length", permutations=permutations)
  if isinstance(permutations, np.ndarray):
    expected = np.arange(length)
    if not (np.sort(permutations, axis=1) == expected).all():
      raise ValueError(f"jigsaw: every row of `permutations` must be a permutation of "
                       f"range({length}); got permutations{permutations.shape} with other rows.")
  b, h, w, c = x.shape
  if h % grid or w % grid:
    raise shape_error("jigsaw", f"image height and width must be divisible by grid={grid} (from "
                      f"the permutation length {length}); crop or resize the images",
                      x=x, permutations=permutations)
  ch, cw = h // grid, w // grid
  if tile_size is not None and not 1 <= int(tile_size) <= min(ch, cw):
    raise ValueError(f"jigsaw: `tile_size` must be between 1 and the cell size {min(ch, cw)}; got "
                     f"tile_size={tile_size} for x{tuple(x.shape)} and grid={grid}.")
  cells = x.reshape(b, grid, ch, grid, cw, c).transpose(0, 1, 3, 2, 4, 5)
  cells = cells.reshape(b, length, ch, cw, c)
  key_label, key_crop = jax.random.split(key)
  labels = jax.random.randint(key_label, (b,), 0, num_perms, dtype=jnp.int32)
  order = jnp.asarray(permutations, jnp.int32)[labels]  # [b, length]
  tiles = jnp.take_along_axis(cells, order[:, :, None, None, None], axis=1)
  if tile_size is not None:
    ky, kx = jax.random.split(key_crop)
    ts = int(tile_size)
    oy = jax.random.randint(ky, (b, length), 0, ch - ts + 1)
    ox = jax.random.randint(kx, (b, length), 0, cw - ts + 1)
    crop = lambda t, i, j: jax.lax.dynamic_slice(t, (i, j, 0), (ts, ts, c))
    tiles = jax.vmap(jax.vmap(crop))(tiles, oy, ox)
  return tiles, labels
