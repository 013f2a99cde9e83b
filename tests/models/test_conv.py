"""The convolution with a matmul kernel gradient (`ssl_jax.models.conv`) computes what XLA's convolution
computes: the same values and the same gradients for every stride, padding and kernel size the models use,
and the same parameters as `nn.Conv`, so that models and checkpoints are unchanged."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.models.conv import Conv, conv2d

CASES = [  # (input shape, kernel shape, strides, padding): the convolutions of ConvNet, ResNet and WRN
    ((8, 9, 9, 3), (3, 3, 3, 5), (1, 1), 1),
    ((4, 10, 10, 2), (3, 3, 2, 4), (2, 2), 1),
    ((2, 15, 15, 3), (7, 7, 3, 4), (2, 2), 3),
    ((3, 6, 6, 4), (1, 1, 4, 6), (2, 2), 0),
    ((3, 7, 8, 4), (3, 3, 4, 2), (2, 2), "SAME"),
    ((3, 7, 8, 4), (3, 3, 4, 2), (1, 2), "VALID"),
]


def _naive_kernel_grad(x, g, kernel_shape, strides, pads):
  """dL/dK[i, j, c, o] = sum_{b,y,x} Xpad[b, s*y+i, s*x+j, c] G[b, y, x, o], in float64 loops over (i, j)."""
  kh, kw, _, _ = kernel_shape
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
  g = np.asarray(g, np.float64)
  _, ho, wo, _ = g.shape
  out = np.zeros(kernel_shape)
  for i in range(kh):
    for j in range(kw):
      window = xp[:, i:i + strides[0] * (ho - 1) + 1:strides[0], j:j + strides[1] * (wo - 1) + 1:strides[1]]
      out[i, j] = np.einsum("byxc,byxo->co", window, g)
  return out


@pytest.mark.parametrize("shape, kshape, strides, padding", CASES)
def test_value_and_gradients_equal_xlas_convolution(shape, kshape, strides, padding):
  x = jax.random.normal(jax.random.key(0), shape)
  k = jax.random.normal(jax.random.key(1), kshape)

  def loss(fast):
    return lambda x, k: jnp.sum(jnp.sin(conv2d(x, k, strides=strides, padding=padding, fast_kernel_grad=fast)))

  np.testing.assert_allclose(conv2d(x, k, strides=strides, padding=padding, fast_kernel_grad=True),
                             conv2d(x, k, strides=strides, padding=padding, fast_kernel_grad=False), rtol=1e-6)
  fast = jax.grad(loss(True), argnums=(0, 1))(x, k)
  plain = jax.grad(loss(False), argnums=(0, 1))(x, k)
  for a, b in zip(fast, plain):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))
  # And against the formula itself, independently of XLA's convolution gradient.
  y, vjp = jax.vjp(lambda k_: conv2d(x, k_, strides=strides, padding=padding, fast_kernel_grad=True), k)
  g = jnp.cos(y)
  from ssl_jax.models.conv import _pads
  pads = _pads(padding, kshape[:2], strides, shape[1:3])
  np.testing.assert_allclose(vjp(g)[0], _naive_kernel_grad(x, g, kshape, strides, pads), rtol=1e-4, atol=1e-4)


def test_bfloat16_inputs_give_a_kernel_gradient_of_the_kernels_dtype():
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3), jnp.bfloat16)
  k = jax.random.normal(jax.random.key(1), (3, 3, 3, 4), jnp.bfloat16)
  dk = jax.grad(lambda k: jnp.sum(conv2d(x, k, padding=1, fast_kernel_grad=True).astype(jnp.float32)))(k)
  ref = jax.grad(lambda k: jnp.sum(conv2d(x, k, padding=1, fast_kernel_grad=False).astype(jnp.float32)))(k)
  assert dk.dtype == jnp.bfloat16
  np.testing.assert_allclose(dk.astype(np.float32), ref.astype(np.float32), rtol=2e-2, atol=2e-2)


def test_module_has_nn_convs_parameters_and_output():
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
  ours, theirs = Conv(5, (3, 3), strides=2, padding=1), nn.Conv(5, (3, 3), strides=2, padding=1)
  p_ours, p_theirs = ours.init(jax.random.key(1), x), theirs.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, p_ours) == jax.tree.map(jnp.shape, p_theirs)
  np.testing.assert_allclose(ours.apply(p_theirs, x), theirs.apply(p_theirs, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("b, strides", [(6, (1, 1)), (6, (2, 2)), (5, (1, 1))])
def test_kernel_gradient_by_chunks_of_images_equals_the_formula(monkeypatch, b, strides):
  """With enough input channels the kernel gradient is summed over chunks of images (a `lax.scan`); a tiny chunk
  size forces several chunks (of 2 or 3 images, or of 1 when b is prime), which must sum to the same gradient."""
  from ssl_jax.models import conv as conv_lib
  rows = (8 // strides[0]) * (8 // strides[1])  # output pixels per image
  monkeypatch.setattr(conv_lib, "_PATCH_CHUNK_BYTES", 3 * rows * 9 * 8 * 4)  # 3 images' patches
  assert conv_lib._chunk_images(b, rows, 9 * 8, 4) == {6: 3, 5: 1}[b]
  x = jax.random.normal(jax.random.key(0), (b, 8, 8, 8))
  k = jax.random.normal(jax.random.key(1), (3, 3, 8, 4))
  y, vjp = jax.vjp(lambda k_: conv2d(x, k_, strides=strides, padding=1, fast_kernel_grad=True), k)
  g = jnp.cos(y)
  pads = conv_lib._pads(1, (3, 3), strides, (8, 8))
  np.testing.assert_allclose(vjp(g)[0], _naive_kernel_grad(x, g, (3, 3, 8, 4), strides, pads), rtol=1e-4, atol=1e-4)
  plain = jax.vjp(lambda k_: conv2d(x, k_, strides=strides, padding=1, fast_kernel_grad=False), k)[1](g)[0]
  np.testing.assert_allclose(vjp(g)[0], plain, rtol=1e-4, atol=1e-4)


def test_kernel_gradient_of_a_batch_sharded_over_devices_loops_where_the_images_lie(monkeypatch):
  """With several devices the chunks are taken inside each device's part of the batch (one group per device):
  under a batch-sharded jit the gradient equals the formula, and the compiled step gathers no images across
  devices; the per-device sums meet in one all-reduce."""
  from jax.sharding import NamedSharding, PartitionSpec as P
  from ssl_jax.models import conv as conv_lib
  from ssl_jax.train import mesh as mesh_lib
  n = jax.device_count()
  assert n == 8, "conftest gives the tests 8 CPU devices"
  b = 3 * 2 * n  # 6 images per device: 2 chunks of 3 each
  monkeypatch.setattr(conv_lib, "_PATCH_CHUNK_BYTES", 3 * 64 * 9 * 8 * 4)
  assert conv_lib._groups(b) == n and conv_lib._groups(b + 1) == 1
  mesh = mesh_lib.make_mesh()
  x = jax.device_put(jax.random.normal(jax.random.key(0), (b, 8, 8, 8)), mesh_lib.batch_sharded(mesh))
  k = jax.device_put(jax.random.normal(jax.random.key(1), (3, 3, 8, 4)), mesh_lib.replicated(mesh))
  g = jax.device_put(jnp.cos(jax.random.normal(jax.random.key(2), (b, 8, 8, 4))), mesh_lib.batch_sharded(mesh))
  grad = jax.jit(lambda x, k, g: jax.vjp(lambda k_: conv2d(x, k_, padding=1, fast_kernel_grad=True), k)[1](g)[0],
                 out_shardings=mesh_lib.replicated(mesh))
  np.testing.assert_allclose(grad(x, k, g), _naive_kernel_grad(x, g, (3, 3, 8, 4), (1, 1), ((1, 1), (1, 1))),
                             rtol=1e-4, atol=1e-4)
  hlo = grad.lower(x, k, g).compile().as_text()
  assert "all-gather" not in hlo and "all-to-all" not in hlo
  assert hlo.count("all-reduce(") == 1
