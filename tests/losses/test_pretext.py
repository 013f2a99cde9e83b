"""Tests of the pretext tasks: RotNet rotations, jigsaw permutation sets and puzzles."""

from __future__ import annotations

import itertools
import time

import jax
import numpy as np
import pytest

from ssl_jax.losses import pretext as T

RNG = np.random.default_rng(0)
KEY = jax.random.key(0)


def _rotnet_rotate(img, deg):
  """The rotation function of the RotNet code (HWC numpy image)."""
  if deg == 0:
    return img
  if deg == 90:
    return np.flipud(np.transpose(img, (1, 0, 2)))
  if deg == 180:
    return np.fliplr(np.flipud(img))
  return np.transpose(np.flipud(img), (1, 0, 2))


def test_rotations_all_four_exact():
  x = RNG.normal(size=(3, 5, 5, 2)).astype(np.float32)
  xr, labels = T.rotations(None, x)
  xr, labels = np.asarray(xr), np.asarray(labels)
  assert xr.shape == (12, 5, 5, 2) and labels.dtype == np.int32
  np.testing.assert_array_equal(labels, [0, 1, 2, 3] * 3)
  for i in range(3):
    for k in range(4):
      np.testing.assert_array_equal(xr[4 * i + k], np.rot90(x[i], k))
      np.testing.assert_array_equal(xr[4 * i + k], _rotnet_rotate(x[i], 90 * k))


def test_rotations_one_random_per_image():
  x = RNG.normal(size=(16, 4, 4, 1)).astype(np.float32)
  xr, labels = jax.jit(lambda k, v: T.rotations(k, v, all_rotations=False))(KEY, x)
  xr, labels = np.asarray(xr), np.asarray(labels)
  assert xr.shape == x.shape and labels.shape == (16,)
  assert set(labels.tolist()) <= {0, 1, 2, 3} and len(set(labels.tolist())) > 1
  for i in range(16):
    np.testing.assert_array_equal(xr[i], np.rot90(x[i], labels[i]))


def _min_hamming(p):
  d = (p[:, None, :] != p[None, :, :]).sum(-1)
  np.fill_diagonal(d, p.shape[1] + 1)
  return d.min(axis=1)


def test_jigsaw_permutations_greedy_matches_bruteforce_grid2():
  """grid=2: a loop over all 4! permutations reproduces the greedy choice step by step."""
  for criterion in ("min", "mean"):
    got = T.jigsaw_permutations(10, grid=2, seed=3, criterion=criterion)
    assert got.shape == (10, 4) and got.dtype == np.int32
    cands = [list(p) for p in itertools.permutations(range(4))]
    chosen = [list(got[0])]
    for _ in range(9):
      best, best_score = None, -1
      for c in cands:  # lexicographic order: the first maximiser wins ties
        if c in chosen:
          continue
        dists = [sum(a != b for a, b in zip(c, q)) for q in chosen]
        score = min(dists) if criterion == "min" else sum(dists)
        if score > best_score:
          best, best_score = c, score
      chosen.append(best)
    np.testing.assert_array_equal(got, np.array(chosen))


def test_jigsaw_permutations_grid3_fast_valid_deterministic():
  t = time.perf_counter()
  p = T.jigsaw_permutations(100, seed=1)
  elapsed = time.perf_counter() - t
  assert elapsed < 5.0  # ~0.3 s on an idle core; loose for a loaded CI machine
  assert p.shape == (100, 9) and not p.flags.writeable
  np.testing.assert_array_equal(np.sort(p, axis=1), np.tile(np.arange(9), (100, 1)))
  assert len({tuple(r) for r in p}) == 100
  # The set's minimal pairwise distance is large (the paper's "mean" criterion gets 2 here).
  assert _min_hamming(p).min() >= 6
  # Farthest-point property against brute force over all 9! permutations (from itertools): each of
  # the first steps adds a permutation whose minimal distance to the chosen ones is the maximum.
  cands = np.array(list(itertools.permutations(range(9))), np.int8)
  for i in range(1, 6):
    dmin = np.min([(cands != q).sum(1) for q in p[:i]], axis=0)
    assert (p[:i] != p[i]).sum(1).min() == dmin.max()
  np.testing.assert_array_equal(T.jigsaw_permutations(100, seed=1), p)
  assert not np.array_equal(T.jigsaw_permutations(100, seed=2), p)


def test_jigsaw_tiles_reassemble_under_inverse_permutation():
  perms = T.jigsaw_permutations(24, grid=2)
  x = RNG.normal(size=(5, 6, 4, 3)).astype(np.float32)
  tiles, labels = jax.jit(T.jigsaw)(KEY, x, perms)
  tiles, labels = np.asarray(tiles), np.asarray(labels)
  assert tiles.shape == (5, 4, 3, 2, 3) and labels.shape == (5,) and labels.dtype == np.int32
  assert labels.min() >= 0 and labels.max() < 24 and len(set(labels.tolist())) > 1
  for i in range(5):
    perm = perms[labels[i]]
    unshuffled = np.empty_like(tiles[i])
    unshuffled[perm] = tiles[i]  # output position t holds tile perm[t]
    img = unshuffled.reshape(2, 2, 3, 2, 3).transpose(0, 2, 1, 3, 4).reshape(6, 4, 3)
    np.testing.assert_array_equal(img, x[i])


def test_jigsaw_tile_size_crops_inside_cells():
  perms = T.jigsaw_permutations(5, grid=3)
  x = RNG.normal(size=(2, 9, 9, 1)).astype(np.float32)
  tiles, labels = jax.jit(lambda k, v: T.jigsaw(k, v, perms, tile_size=2))(KEY, x)
  tiles = np.asarray(tiles)
  assert tiles.shape == (2, 9, 2, 2, 1)
  for i in range(2):
    for t in range(9):
      r, c = divmod(int(perms[labels[i], t]), 3)
      cell = x[i, 3 * r:3 * r + 3, 3 * c:3 * c + 3]
      windows = [cell[u:u + 2, v:v + 2] for u in range(2) for v in range(2)]
      assert any(np.array_equal(tiles[i, t], w) for w in windows)


def test_errors():
  with pytest.raises(ValueError, match=r"rotations: images must be square .*x\(2, 4, 5, 3\)"):
    T.rotations(None, np.zeros((2, 4, 5, 3)))
  with pytest.raises(ValueError, match=r"rotations: `key` is needed"):
    T.rotations(None, np.zeros((2, 4, 4, 3)), all_rotations=False)
  perms = T.jigsaw_permutations(4, grid=3)
  with pytest.raises(ValueError, match=r"jigsaw: image height and width must be divisible by grid=3"
                     r".*x\(1, 8, 9, 1\)"):
    T.jigsaw(KEY, np.zeros((1, 8, 9, 1)), perms)
  with pytest.raises(ValueError, match=r"jigsaw: `permutations` must have shape .*permutations\(4, 8\)"):
    T.jigsaw(KEY, np.zeros((1, 9, 9, 1)), np.zeros((4, 8), np.int32))
  with pytest.raises(ValueError, match=r"every row of `permutations` must be a permutation"):
    T.jigsaw(KEY, np.zeros((1, 9, 9, 1)), np.zeros((4, 9), np.int32))
  with pytest.raises(ValueError, match=r"`tile_size` must be between 1 and the cell size 3"):
    T.jigsaw(KEY, np.zeros((1, 9, 9, 1)), perms, tile_size=4)
  with pytest.raises(ValueError, match=r"`grid` must be 2 or 3"):
    T.jigsaw_permutations(10, grid=4)
  with pytest.raises(ValueError, match=r"`n` must be between 1 and 24"):
    T.jigsaw_permutations(25, grid=2)
