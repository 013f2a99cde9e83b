"""View presets under jit: shapes, normalisation, determinism, FixMatch's weak view geometry."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from ssl_jax.data import views as V

KEY = jax.random.key(0)
simclr = jax.jit(V.simclr_views, static_argnames="preset")
weak_strong = jax.jit(V.weak_strong_views, static_argnames="preset")
multi_crop = jax.jit(V.multi_crop_views, static_argnames="preset")


def images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_simclr_views_on_grayscale_fashion_mnist():
  preset = V.for_dataset(V.SIMCLR, "fashion_mnist")
  # 16 copies of one image (the same shape as the sharded test below, to share the compilation).
  x = np.repeat(images((1, 28, 28, 1)), 16, axis=0)
  v1, v2 = simclr(KEY, x, preset=preset)
  assert v1.shape == v2.shape == (16, 28, 28, 1) and v1.dtype == np.float32
  again = simclr(KEY, x, preset=preset)
  np.testing.assert_array_equal(v1, again[0])
  np.testing.assert_array_equal(v2, again[1])
  assert not np.array_equal(v1, v2)
  assert not np.array_equal(v1, simclr(jax.random.key(1), x, preset=preset)[0])
  assert len({np.asarray(v).tobytes() for v in v1}) == 16  # Each example has its own randomness.
  mean, std = preset.mean[0], preset.std[0]
  raw = np.asarray(v1) * std + mean  # Undo the normalisation: back in [0, 1].
  assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_views_of_a_sharded_batch_match_and_stay_sharded():
  from jax.sharding import NamedSharding, PartitionSpec as P
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  preset = V.for_dataset(V.SIMCLR, "fashion_mnist")
  x = images((16, 28, 28, 1), seed=2)
  sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  ref = simclr(KEY, x, preset=preset)
  out = simclr(KEY, sharded, preset=preset)
  for r, o in zip(ref, out):
    assert o.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), o.ndim)
    np.testing.assert_allclose(o, r, atol=1e-5)


def reflect_windows(image, pad):
  """Every pad-translated window of the reflect-padded image and of its mirror."""
  h, w = image.shape[:2]
  out = []
  for img in (image, image[:, ::-1]):
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out += [padded[dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
  return out


def test_weak_strong_views():
  x = images((4, 16, 16, 3))
  weak, strong = weak_strong(KEY, x, preset=V.FIXMATCH)
  assert weak.shape == strong.shape == x.shape and strong.dtype == np.float32
  assert float(strong.min()) >= 0.0 and float(strong.max()) <= 1.0
  as_float = x.astype(np.float32) * np.float32(1 / 255)
  for i in range(4):  # Weak = flip + a translation of at most 2 pixels (0.125 x 16), reflected.
    assert any(np.array_equal(weak[i], w) for w in reflect_windows(as_float[i], 2))
  assert not np.allclose(weak, strong)


def test_multi_crop_views():
  preset = V.for_dataset(dataclasses.replace(V.DINO, global_size=12, local_size=6, num_local=3),
                         "cifar10")
  globals_, locals_ = multi_crop(KEY, images((2, 16, 16, 3)), preset=preset)
  assert [g.shape for g in globals_] == [(2, 12, 12, 3)] * 2
  assert [l.shape for l in locals_] == [(2, 6, 6, 3)] * 3
  assert not np.array_equal(globals_[0], globals_[1])
  mean, std = np.array(preset.mean), np.array(preset.std)
  for v in globals_ + locals_:  # RGB colour ops, blur and solarize keep pixels in [0, 1].
    raw = np.asarray(v) * std + mean
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
  assert V.num_views(preset) == 5


@pytest.mark.parametrize("name", sorted(V.PRESETS))
def test_every_preset_traces_through_make_views(name):
  preset = V.PRESETS[name]
  if isinstance(preset, V.MultiCropViews):
    preset = dataclasses.replace(preset, global_size=16, local_size=8)
  x = jax.ShapeDtypeStruct((2, 16, 16, 3), np.uint8)
  out = jax.eval_shape(lambda k, im: V.make_views(k, im, preset), KEY, x)
  leaves = jax.tree.leaves(out)
  assert len(leaves) == V.num_views(preset)
  assert all(leaf.dtype == np.float32 and leaf.shape[0] == 2 for leaf in leaves)


def test_errors():
  with pytest.raises(TypeError, match="preset must be SimCLRViews"):
    V.make_views(KEY, images((2, 8, 8, 1)), "simclr")
  with pytest.raises(ValueError, match=r"must have shape \[b, H, W, C\]; got \(8, 8, 1\)"):
    V.simclr_views(KEY, images((8, 8, 1)))


def test_eval_view():
  x = images((2, 8, 8, 3))
  out = V.eval_view(x, size=4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
  assert out.shape == (2, 4, 4, 3)
  assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
