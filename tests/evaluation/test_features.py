"""extract_features: one compiled shape, pad rows dropped, batches sharded over the mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding

from ssl_jax.evaluation.features import extract_features


def _images(n=37):
  return np.random.default_rng(0).integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)


_W = np.random.default_rng(1).normal(size=(48, 6)).astype(np.float32)


def _reference(images):
  return (images.reshape(len(images), -1).astype(np.float32) / 255.0) @ _W


def test_matches_direct_computation_with_one_compiled_shape():
  traces = []

  @jax.jit
  def encode(x):
    traces.append(x.shape)
    return x.reshape(x.shape[0], -1) @ _W

  images = _images()
  feats = extract_features(encode, images, batch_size=8)
  assert feats.dtype == np.float32 and feats.shape == (37, 6)
  np.testing.assert_allclose(feats, _reference(images), rtol=1e-5, atol=1e-5)
  assert traces == [(8, 4, 4, 3)]  # 37 rows in 5 batches, the last padded: compiled once


def test_sharded_batches_and_custom_preprocess():
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  seen = []
  encode_jit = jax.jit(lambda x: x.reshape(x.shape[0], -1) @ _W)

  def encode(x):
    seen.append((x.shape, x.sharding))
    return encode_jit(x)

  preprocess = jax.jit(lambda b: b.astype(jnp.float32) / 127.5 - 1.0)
  images = _images()
  feats = extract_features(encode, images, batch_size=12, mesh=mesh, preprocess=preprocess)
  want = (images.reshape(len(images), -1).astype(np.float32) / 127.5 - 1.0) @ _W
  np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-4)
  assert {shape for shape, _ in seen} == {(16, 4, 4, 3)}  # 12 rounded up to a multiple of 8 devices
  sharding = seen[0][1]
  assert isinstance(sharding, NamedSharding) and sharding.spec[0] == "data"
  assert len(sharding.device_set) == 8


def test_bad_input_raises():
  with pytest.raises(ValueError, match=r"features \[8, d\]"):
    extract_features(jax.jit(lambda x: x[:3].reshape(3, -1)), _images(), batch_size=8)
  with pytest.raises(ValueError, match="non-empty batch"):
    extract_features(jax.jit(lambda x: x), np.zeros((0, 4, 4, 3), np.uint8), batch_size=8)
  with pytest.raises(ValueError, match="'data' axis"):
    mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    extract_features(jax.jit(lambda x: x), _images(), batch_size=8, mesh=mesh)
