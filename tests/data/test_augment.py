"""On-device augmentations: exact geometry, colour semantics, per-key determinism, ranges."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data import augment as A

KEY = jax.random.key(0)


def images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def as_float(x):
  """What `to_float` computes: x * (1 / 255) in float32."""
  return x.astype(np.float32) * np.float32(1 / 255)


def jit(op, **static):
  """`op` with its hyperparameters fixed, compiled: one XLA program instead of many eager ops."""
  return jax.jit(functools.partial(op, **static))


def test_crop_with_full_scale_and_square_ratio_is_identity():
  x = images((3, 12, 12, 3))
  out = jit(A.random_resized_crop, scale=(1.0, 1.0), ratio=(1.0, 1.0))(KEY, x)
  assert out.dtype == jnp.float32 and out.shape == x.shape
  np.testing.assert_allclose(out, x / 255.0, atol=1e-6)


def test_crop_falls_back_to_the_central_crop():
  # A 12 x 16 image has no 1:1 crop of its full area: the fallback is the central 12 x 12.
  x = images((2, 12, 16, 1))
  out = jit(A.random_resized_crop, size=12, scale=(1.0, 1.0), ratio=(1.0, 1.0))(KEY, x)
  np.testing.assert_allclose(out, x[:, :, 2:14] / 255.0, atol=1e-6)


def test_random_crop_is_a_window_of_the_input():
  # Area 1/4 and ratio 1 of a 16 x 16 image is an 8 x 8 window; at output size 8 it is copied.
  x = images((6, 16, 16, 1), seed=1)
  out = np.asarray(jit(A.random_resized_crop, size=8, scale=(0.25, 0.25), ratio=(1.0, 1.0))(KEY, x))
  tops = set()
  for i in range(6):
    hits = [(t, l) for t in range(9) for l in range(9)
            if np.allclose(out[i], x[i, t:t + 8, l:l + 8] / 255.0, atol=1e-6)]
    assert len(hits) == 1, f"example {i} is not a window of its input"
    tops.add(hits[0])
  assert len(tops) > 1  # Positions are random per example.


def test_flip():
  x = images((2, 4, 5, 3))
  np.testing.assert_array_equal(jit(A.random_flip, p=1.0)(KEY, x), as_float(x[:, :, ::-1]))
  np.testing.assert_array_equal(jit(A.random_flip, p=0.0)(KEY, x), as_float(x))


@jax.jit
def all_ops(key, x):
  keys = jax.random.split(key, 8)
  return {
      "flip": A.random_flip(keys[0], x),
      "crop_pad": A.random_crop_pad(keys[1], x),
      "jitter": A.color_jitter(keys[2], x, p=1.0),
      "gray": A.random_grayscale(keys[3], x, p=0.5),
      "blur": A.gaussian_blur(keys[4], x, p=1.0),
      "solarize": A.solarize(keys[5], x, p=0.5),
      "rand_augment": A.rand_augment(keys[6], x, num_ops=3),
      "cutout": A.cutout(keys[7], x),
  }


def test_ops_are_deterministic_per_key_and_stay_in_range():
  x = images((8, 16, 16, 3))
  a, b = all_ops(KEY, x), all_ops(KEY, x)
  c = all_ops(jax.random.key(1), x)
  for name in a:
    assert a[name].shape == x.shape and a[name].dtype == jnp.float32, name
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a[name], c[name]), name
    assert float(a[name].min()) >= 0.0 and float(a[name].max()) <= 1.0, name


def test_per_example_randomness():
  x = np.repeat(images((1, 16, 16, 3)), 8, axis=0)  # Eight copies of one image.
  out = all_ops(KEY, x)
  for name in ("jitter", "blur", "rand_augment", "crop_pad"):
    distinct = {np.asarray(v).tobytes() for v in out[name]}
    assert len(distinct) > 1, name


def test_grayscale_images_never_get_colour_ops():
  x = images((4, 8, 8, 1))
  colour_only = jit(A.color_jitter, brightness=0.0, contrast=0.0, saturation=0.9, hue=0.5, p=1.0)
  np.testing.assert_array_equal(colour_only(KEY, x), as_float(x))
  grayscale = jit(A.random_grayscale, p=1.0)
  np.testing.assert_array_equal(grayscale(KEY, x), as_float(x))
  rgb = images((4, 8, 8, 3))
  assert not np.allclose(colour_only(KEY, rgb), as_float(rgb))
  gray = np.asarray(grayscale(KEY, rgb))
  np.testing.assert_allclose(gray[..., 0], gray[..., 1])
  np.testing.assert_allclose(gray[..., 0], rgb @ np.array([0.299, 0.587, 0.114]) / 255, atol=1e-5)


def test_brightness_scales_each_image_by_one_factor():
  x = images((6, 8, 8, 1)) // 2 + 1  # At most 128: no clipping at factor <= 1.5.
  out = np.asarray(jit(A.color_jitter, brightness=0.5, contrast=0.0, saturation=0.0, hue=0.0,
                       p=1.0)(KEY, x))
  ratio = out / (x / 255.0)
  for r in ratio:
    np.testing.assert_allclose(r, r.flat[0], rtol=1e-5)
    assert 0.5 <= r.flat[0] <= 1.5


def test_hsv_round_trip_and_hue_rotation():
  x = as_float(images((64, 3)))
  np.testing.assert_allclose(jax.jit(lambda y: A.hsv_to_rgb(A.rgb_to_hsv(y)))(x), x, atol=1e-5)
  red = jnp.array([[[1.0, 0.0, 0.0]]])
  np.testing.assert_allclose(jax.jit(A.adjust_hue)(red, 1 / 3), [[[0.0, 1.0, 0.0]]], atol=1e-5)


def test_blur_keeps_constants_and_mass():
  const = np.full((1, 9, 9, 1), 0.3, np.float32)
  np.testing.assert_allclose(jit(A.gaussian_blur, p=1.0)(KEY, const), const, atol=1e-6)
  delta = np.zeros((15, 15, 1), np.float32)
  delta[7, 7, 0] = 1.0
  out = np.asarray(jit(A.blur, kernel_size=7)(delta, 1.0))[..., 0]
  np.testing.assert_allclose(out.sum(), 1.0, atol=1e-5)
  np.testing.assert_allclose(out, out.T, atol=1e-7)
  np.testing.assert_allclose(out, out[::-1, ::-1], atol=1e-7)
  g = np.exp(-0.5 * np.arange(-3, 4) ** 2)
  np.testing.assert_allclose(out[7, 4:11], g * g[3] / g.sum() ** 2, atol=1e-6)


def test_solarize():
  x = np.array([0, 100, 127, 128, 200, 255], np.uint8).reshape(1, 1, 6, 1)
  f = as_float(x)
  np.testing.assert_allclose(jit(A.solarize, p=1.0)(KEY, x), np.where(f < 0.5, f, 1 - f), atol=1e-7)


def test_equalize_and_posterize_match_pil():
  from PIL import Image, ImageOps
  x = (images((12, 10, 3), seed=3) // 4 + 40).astype(np.uint8)
  ours = np.asarray(jax.jit(A._equalize)(as_float(x)))
  np.testing.assert_allclose(ours * 255, np.asarray(ImageOps.equalize(Image.fromarray(x))),
                             atol=1e-3)
  ours = np.asarray(jax.jit(A._posterize, static_argnums=1)(as_float(x), 5))
  np.testing.assert_allclose(ours * 255, np.asarray(ImageOps.posterize(Image.fromarray(x), 5)),
                             atol=1e-3)


def test_cutout_fills_one_square():
  x = np.zeros((16, 20, 20, 1), np.uint8)
  out = np.asarray(jit(A.cutout, max_fraction=0.5, fill=0.5)(KEY, x))[..., 0]
  assert set(np.unique(out)) <= {0.0, 0.5}
  for m in out == 0.5:
    if m.any():
      rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
      assert m[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # A rectangle.
      assert rows.size <= 11 and cols.size <= 11


def test_normalize_and_errors():
  x = np.full((2, 2, 2, 3), 255, np.uint8)
  mean, std = A.mean_std("cifar10")
  np.testing.assert_allclose(jax.jit(A.normalize, static_argnums=(1, 2))(x, mean, std)[0, 0, 0],
                             (1 - np.array(mean)) / np.array(std), rtol=1e-6)
  with pytest.raises(ValueError, match="must have 1 or C=3 entries"):
    A.normalize(x, (0.5, 0.5), (1.0, 1.0))
  with pytest.raises(ValueError, match="No mean/std for dataset 'nope'"):
    A.mean_std("nope")
  with pytest.raises(ValueError, match=r"images must have shape \[b, H, W, C\]; got \(4, 4, 3\)"):
    A.random_flip(KEY, np.zeros((4, 4, 3), np.uint8))
