"""Tests of ssl_jax.losses.contrastive against loop references written from the papers' formulas."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from ssl_jax.losses import contrastive as C

# ----------------------------------------------------------------------------------------------------------
# Naive float64 references, one explicit loop per sum of the papers' formulas.
# ----------------------------------------------------------------------------------------------------------


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_ntxent(z1, z2, t):
  """SimCLR eq. (1) for both views: l(i, j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t)."""
  u = _unit(np.concatenate([z1, z2]))
  n, b = len(u), len(z1)
  out = np.zeros(n)
  for i in range(n):
    pos = (i + b) % n
    denom = 0.0
    for k in range(n):
      if k != i:
        denom += np.exp(u[i] @ u[k] / t)
    out[i] = -np.log(np.exp(u[i] @ u[pos] / t) / denom)
  return out


def ref_info_nce(q, k, queue, t):
  """MoCo eq. (1): -log exp(q.k+/t) / (exp(q.k+/t) + sum_queue exp(q.k-/t)); no queue: other keys."""
  q, k = _unit(q), _unit(k)
  negs = _unit(queue) if queue is not None else None
  out = np.zeros(len(q))
  for i in range(len(q)):
    num = np.exp(q[i] @ k[i] / t)
    denom = num
    if negs is not None:
      for j in range(len(negs)):
        denom += np.exp(q[i] @ negs[j] / t)
    else:
      for j in range(len(k)):
        if j != i:
          denom += np.exp(q[i] @ k[j] / t)
    out[i] = -np.log(num / denom)
  return out


def ref_supcon(z, labels, t):
  """SupCon eq. (2), L_out: -1/|P(i)| sum_{p in P(i)} log exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t)."""
  u = _unit(z)
  out = np.zeros(len(u))
  for i in range(len(u)):
    denom = sum(np.exp(u[i] @ u[a] / t) for a in range(len(u)) if a != i)
    pos = [p for p in range(len(u)) if p != i and labels[p] == labels[i]]
    if pos:
      out[i] = -sum(np.log(np.exp(u[i] @ u[p] / t) / denom) for p in pos) / len(pos)
  return out


def ref_negative_cosine(p, z):
  return np.array([-(pi @ zi) / (np.linalg.norm(pi) * np.linalg.norm(zi)) for pi, zi in zip(
      np.asarray(p, np.float64), np.asarray(z, np.float64))])


# Jitted entry points (one compile per static configuration instead of one per eager op).
_STATIC = ("temperature", "block_size", "axis_name")
ntxent = jax.jit(C.ntxent, static_argnames=_STATIC)
info_nce = jax.jit(C.info_nce, static_argnames=_STATIC)
supcon = jax.jit(C.supcon, static_argnames=("temperature", "axis_name"))
negative_cosine = jax.jit(C.negative_cosine)


def _normal(seed, *shape, dtype=jnp.float32):
  return jax.random.normal(jax.random.key(seed), shape, dtype)


def _value_and_grads(f, *args):
  """Per-example values of `f` and the gradients of their mean w.r.t. every argument, in one jit."""
  def both(*a):
    return f(*a), jax.grad(lambda *a: jnp.mean(f(*a)), argnums=tuple(range(len(a))))(*a)
  return jax.jit(both)(*args)


def _assert_close(a, b, tol=1e-5):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------------------------------------
# Values against the references.
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b,d,t", [(4, 8, 0.1), (9, 5, 0.5)])
def test_ntxent_matches_reference(b, d, t):
  z1, z2 = _normal(0, b, d), _normal(1, b, d)
  out = ntxent(z1, z2, temperature=t)
  assert out.shape == (2 * b,) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, ref_ntxent(z1, z2, t), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ntxent(z1, z2, temperature=t, block_size=3), ref_ntxent(z1, z2, t),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t", [0.07, 0.5])
def test_ntxent_mean_matches_optax(t):
  b = 6
  z1, z2 = _normal(0, b, 8), _normal(1, b, 8)
  labels = jnp.concatenate([jnp.arange(b), jnp.arange(b)])
  expected = optax.losses.ntxent(jnp.concatenate([z1, z2]), labels, temperature=t)
  np.testing.assert_allclose(jnp.mean(ntxent(z1, z2, temperature=t)), expected, rtol=1e-5)


@pytest.mark.parametrize("b,k,d,t", [(4, 7, 8, 0.07), (6, 0, 5, 0.5)])
def test_info_nce_matches_reference(b, k, d, t):
  q, key = _normal(0, b, d), _normal(1, b, d)
  queue = _normal(2, k, d) if k else None
  out = info_nce(q, key, queue=queue, temperature=t)
  assert out.shape == (b,) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, ref_info_nce(q, key, queue, t), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,d,t", [(8, 6, 0.1), (11, 4, 0.5)])
def test_supcon_matches_reference(n, d, t):
  z = _normal(0, n, d)
  labels = jnp.array([0, 1, 0, 2, 1, 1, 0, 3, 2, 0, 1][:n])   # label 3 has no positive
  out = supcon(z, labels, temperature=t)
  expected = ref_supcon(z, np.asarray(labels), t)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  assert out[7] == 0.0   # the anchor without positive
  assert np.all(np.asarray(jax.grad(lambda z: supcon(z, labels, temperature=t)[7])(z)) == 0)


def test_supcon_multiview_flattens_view_major_and_reduces_to_ntxent():
  z = _normal(0, 5, 2, 6)   # [n, views, d]
  labels = jnp.array([0, 1, 1, 2, 0])
  flat = jnp.concatenate([z[:, 0], z[:, 1]])
  np.testing.assert_allclose(supcon(z, labels), ref_supcon(flat, np.tile(labels, 2), 0.1),
                             rtol=1e-5, atol=1e-5)
  # Distinct labels and two views: SupCon is NT-Xent, row for row.
  np.testing.assert_allclose(supcon(z, jnp.arange(5), temperature=0.2),
                             ntxent(z[:, 0], z[:, 1], temperature=0.2), rtol=1e-6, atol=1e-6)


def test_negative_cosine_matches_reference():
  p, z = _normal(0, 5, 7), _normal(1, 5, 7)
  out = negative_cosine(p, z)
  assert out.shape == (5,) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, ref_negative_cosine(p, z), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(negative_cosine(p, 3.0 * p), -np.ones(5), atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# Gradients, stability, dtypes.
# ----------------------------------------------------------------------------------------------------------

_LOSSES = {
    "ntxent": lambda a, b: C.ntxent(a, b, temperature=0.5),
    "ntxent_blocked": lambda a, b: C.ntxent(a, b, temperature=0.5, block_size=2),
    "info_nce": lambda a, b: C.info_nce(a, b, temperature=0.5),
    "info_nce_queue": lambda a, b: C.info_nce(a, b[:3], queue=b[3:], temperature=0.5),
    "info_nce_queue_blocked": lambda a, b: C.info_nce(a, b[:3], queue=b[3:], temperature=0.5,
                                                      block_size=2),
    "supcon": lambda a, b: C.supcon(jnp.stack([a, b], 1), jnp.array([0, 1, 0]), temperature=0.5),
    "negative_cosine": C.negative_cosine,
}


@pytest.mark.parametrize("name", list(_LOSSES))
def test_check_grads_float64(name):
  f = _LOSSES[name]
  with jax.enable_x64(True):
    a = jax.random.normal(jax.random.key(0), (3, 4), jnp.float64)
    # The queue losses take 3 keys and 5 queue rows from b.
    b = jax.random.normal(jax.random.key(1), (8 if "queue" in name else 3, 4), jnp.float64)
    assert f(a, b).dtype == jnp.float64
    check_grads(jax.jit(f), (a, b), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_low_temperature_is_finite():
  z1, z2 = _normal(0, 6, 8), _normal(1, 6, 8)
  labels = jnp.array([0, 0, 1, 1, 2, 3])
  losses = [
      lambda a, b: C.ntxent(a, b, temperature=0.01),
      lambda a, b: C.ntxent(a, b, temperature=0.01, block_size=4),
      lambda a, b: C.info_nce(a, b, temperature=0.01),
      lambda a, b: C.info_nce(a, b, queue=a + b, temperature=0.01, block_size=4),
      lambda a, b: C.supcon(jnp.stack([a, b], 1), labels, temperature=0.01),
  ]
  for f in losses:
    value, grads = _value_and_grads(f, z1, z2)
    assert np.all(np.isfinite(value)) and all(np.all(np.isfinite(g)) for g in grads)
  # Identical views at low temperature (positive logit 1/t = 100): still finite.
  assert np.all(np.isfinite(ntxent(z1, z1, temperature=0.01)))


def test_bfloat16_inputs_compute_in_float32():
  z1, z2 = _normal(0, 6, 16), _normal(1, 6, 16)
  h1, h2 = z1.astype(jnp.bfloat16), z2.astype(jnp.bfloat16)
  labels = jnp.array([0, 0, 1, 1, 2, 3])
  cases = [
      ntxent, functools.partial(ntxent, block_size=4), info_nce, negative_cosine,
      lambda a, b: supcon(jnp.concatenate([a, b]), jnp.tile(labels, 2)),
  ]
  for g in cases:
    low = g(h1, h2)
    assert low.dtype == jnp.float32 and np.all(np.isfinite(low))
    # Exactly the float32 computation on the rounded inputs, and close to the unrounded ones.
    np.testing.assert_allclose(low, g(h1.astype(jnp.float32), h2.astype(jnp.float32)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(low, g(z1, z2), atol=0.05)


# ----------------------------------------------------------------------------------------------------------
# Blockwise (custom VJP) path equals the dense path.
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [3, 64])   # 3: rows and keys padded to whole tiles; 64: tile > N
@pytest.mark.parametrize("loss", ["ntxent", "info_nce", "info_nce_queue"])
def test_blockwise_equals_dense(loss, block_size):
  z1, z2, queue = _normal(0, 10, 16), _normal(1, 10, 16), _normal(2, 13, 16)

  def f(a, b, queue, t, block_size):
    if loss == "ntxent":
      return C.ntxent(a, b, temperature=t, block_size=block_size)
    return C.info_nce(a, b, queue=queue if loss == "info_nce_queue" else None, temperature=t,
                      block_size=block_size)

  dense = functools.partial(f, block_size=None)
  blocked = functools.partial(f, block_size=block_size)
  # Values, and gradients w.r.t. the inputs, the queue and the temperature (applied outside the custom VJP).
  _assert_close(_value_and_grads(blocked, z1, z2, queue, 0.1), _value_and_grads(dense, z1, z2, queue, 0.1))


# ----------------------------------------------------------------------------------------------------------
# Sharded (shard_map over 8 CPU devices, gathered negatives) equals single-device.
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh():
  return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _sharded_value_and_grads(mesh, loss, *args, replicated=()):
  """Global mean of a per-example loss under shard_map (batch-sharded arguments except `replicated`), and
  its gradients w.r.t. the float arguments, in one jit."""

  def local(*a):
    return jax.lax.pmean(jnp.mean(loss(*a, axis_name="data")), "data")

  specs = tuple(P() if i in replicated else P("data") for i in range(len(args)))
  mean = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())
  argnums = tuple(i for i, x in enumerate(args) if jnp.issubdtype(x.dtype, jnp.floating))
  return jax.jit(jax.value_and_grad(mean, argnums))(*args)


def _single_value_and_grads(loss, *args):
  argnums = tuple(i for i, x in enumerate(args) if jnp.issubdtype(x.dtype, jnp.floating))
  return jax.jit(jax.value_and_grad(lambda *a: jnp.mean(loss(*a)), argnums))(*args)


_SHARDED = {   # (a, b, labels, axis_name) -> per-example losses; labels are used by supcon only
    "ntxent": lambda a, b, lab, axis_name=None: C.ntxent(a, b, temperature=0.2, axis_name=axis_name),
    "ntxent_blocked": lambda a, b, lab, axis_name=None: C.ntxent(
        a, b, temperature=0.2, axis_name=axis_name, block_size=3),
    "info_nce": lambda a, b, lab, axis_name=None: C.info_nce(a, b, temperature=0.2, axis_name=axis_name),
    "info_nce_blocked": lambda a, b, lab, axis_name=None: C.info_nce(
        a, b, temperature=0.2, axis_name=axis_name, block_size=3),
    "supcon": lambda a, b, lab, axis_name=None: C.supcon(jnp.stack([a, b], 1), lab, axis_name=axis_name),
}


@pytest.mark.parametrize("name", list(_SHARDED))
def test_sharded_equals_single_device(mesh, name):
  loss = _SHARDED[name]
  args = (_normal(0, 16, 8), _normal(1, 16, 8), jnp.arange(16) % 5)   # 2 rows per device
  _assert_close(_sharded_value_and_grads(mesh, loss, *args), _single_value_and_grads(loss, *args))


def test_sharded_ntxent_per_example_order(mesh):
  z1, z2 = _normal(0, 16, 8), _normal(1, 16, 8)
  per_device = jax.jit(jax.shard_map(lambda a, b: C.ntxent(a, b, axis_name="data"), mesh=mesh,
                                     in_specs=P("data"), out_specs=P("data")))(z1, z2)
  # Each device returns [its z1 rows; its z2 rows]: reorder to [all z1 rows; all z2 rows].
  reordered = per_device.reshape(8, 2, 2).transpose(1, 0, 2).reshape(-1)
  np.testing.assert_allclose(reordered, ntxent(z1, z2), rtol=1e-5, atol=1e-5)


def test_sharded_info_nce_with_replicated_queue(mesh):
  q, k, queue = _normal(0, 16, 8), _normal(1, 16, 8), _normal(2, 12, 8)
  for block_size in (None, 5):
    loss = lambda a, b, Q, axis_name=None: C.info_nce(
        a, b, queue=Q, axis_name=axis_name, block_size=block_size)
    # The queue's gradient is the sum of every device's contribution.
    _assert_close(_sharded_value_and_grads(mesh, loss, q, k, queue, replicated=(2,)),
                  _single_value_and_grads(loss, q, k, queue))


# ----------------------------------------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------------------------------------


def test_errors_name_the_shapes():
  x = jnp.ones((4, 8))
  with pytest.raises(ValueError, match=r"ntxent: .*same shape.*z1\(4, 8\), z2\(4, 7\)"):
    C.ntxent(x, jnp.ones((4, 7)))
  with pytest.raises(ValueError, match=r"ntxent: `z1` must have 2 dimensions.*z1\(4, 8, 1\)"):
    C.ntxent(x[..., None], x[..., None])
  with pytest.raises(ValueError, match=r"info_nce: .*same shape.*query\(4, 8\), key\(3, 8\)"):
    C.info_nce(x, jnp.ones((3, 8)))
  with pytest.raises(ValueError, match=r"info_nce: `queue` must have the feature dimension.*queue\(5, 6\)"):
    C.info_nce(x, x, queue=jnp.ones((5, 6)))
  with pytest.raises(ValueError, match=r"info_nce: `queue` must have 2 dimensions.*queue\(8,\)"):
    C.info_nce(x, x, queue=jnp.ones((8,)))
  with pytest.raises(ValueError, match=r"supcon: `labels` must have one entry.*z\(4, 8\), labels\(5,\)"):
    C.supcon(x, jnp.zeros((5,), jnp.int32))
  with pytest.raises(ValueError, match=r"supcon: `z` must have 2 or 3 dimensions.*z\(8,\)"):
    C.supcon(x[0], jnp.zeros((8,), jnp.int32))
  with pytest.raises(ValueError, match=r"negative_cosine: .*same shape.*p\(4, 8\), z\(8, 4\)"):
    C.negative_cosine(x, x.T)
  with pytest.raises(ValueError, match=r"ntxent: `temperature` must be positive; got 0.0"):
    C.ntxent(x, x, temperature=0.0)
  with pytest.raises(ValueError, match=r"info_nce: `block_size` must be a positive integer.*got 0"):
    C.info_nce(x, x, block_size=0)
