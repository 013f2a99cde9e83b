"""Tests of Sinkhorn-Knopp, SwAV and DINO against NumPy ports of the official code, gradients, stability
and sharding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from ssl_jax.losses import clustering as C

# Jitted once per module; static arguments are the ones that change the program.
SINKHORN = jax.jit(C.sinkhorn_knopp, static_argnames=("num_iters",))
SWAV = jax.jit(C.swav, static_argnames=("num_iters", "crops_for_assign"))
DINO = jax.jit(C.dino)
DINO_PER_EXAMPLE = jax.jit(C.dino_per_example)
DINO_CENTER = jax.jit(C.dino_center)


def _mesh():
  return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _scores(v, b, k, seed=0):
  """Cosine-similarity-like prototype scores in [-1, 1], as SwAV produces them."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(v, b, 16))
  c = rng.normal(size=(k, 16))
  z /= np.linalg.norm(z, axis=-1, keepdims=True)
  c /= np.linalg.norm(c, axis=-1, keepdims=True)
  return (z @ c.T).astype(np.float32)


# ---------------------------------------------------------------- NumPy references (float64)

def _sinkhorn_ref(out, epsilon, iters):
  """NumPy port of facebookresearch/swav `distributed_sinkhorn` on one device (exp-based)."""
  q = np.exp(np.float64(out) / epsilon).T  # K x B
  b = q.shape[1]
  k = q.shape[0]
  q /= np.sum(q)
  for _ in range(iters):
    q /= np.sum(q, axis=1, keepdims=True)
    q /= k
    q /= np.sum(q, axis=0, keepdims=True)
    q /= b
  q *= b
  return q.T


def _log_softmax(x):
  x = x - x.max()
  return x - np.log(np.sum(np.exp(x)))


def _swav_ref(scores, temperature, epsilon, iters, crops_for_assign):
  """The official SwAV training-loop loss, with explicit loops over crops and examples."""
  scores = np.float64(scores)
  n_views, b, _ = scores.shape
  loss = 0.0
  for v in crops_for_assign:
    q = _sinkhorn_ref(scores[v], epsilon, iters)
    subloss = 0.0
    for u in range(n_views):
      if u == v:
        continue
      subloss -= np.mean([np.sum(q[i] * _log_softmax(scores[u, i] / temperature)) for i in range(b)])
    loss += subloss / (n_views - 1)
  return loss / len(crops_for_assign)


def _swav_grad_ref(scores, temperature, epsilon, iters, crops_for_assign):
  """d loss / d scores with the codes held fixed (torch.no_grad in the official code)."""
  scores = np.float64(scores)
  n_views, b, _ = scores.shape
  grad = np.zeros_like(scores)
  for v in crops_for_assign:
    q = _sinkhorn_ref(scores[v], epsilon, iters)
    for u in range(n_views):
      if u == v:
        continue
      for i in range(b):
        p = np.exp(_log_softmax(scores[u, i] / temperature))
        grad[u, i] += (p * q[i].sum() - q[i]) / temperature / b / (n_views - 1) / len(crops_for_assign)
  return grad


def _dino_ref(student, teacher, center, st, tt):
  """The official DINOLoss.forward (without the center update), with explicit loops."""
  student, teacher, center = np.float64(student), np.float64(teacher), np.float64(center).reshape(-1)
  total, n_terms = 0.0, 0
  for iq in range(teacher.shape[0]):
    for v in range(student.shape[0]):
      if v == iq:
        continue
      per_example = []
      for i in range(student.shape[1]):
        q = np.exp(_log_softmax((teacher[iq, i] - center) / tt))
        per_example.append(-np.sum(q * _log_softmax(student[v, i] / st)))
      total += np.mean(per_example)
      n_terms += 1
  return total / n_terms


def _dino_center_ref(center, teacher, momentum):
  rows = np.float64(teacher).reshape(-1, teacher.shape[-1])
  batch_center = np.sum(rows, axis=0, keepdims=True) / len(rows)
  return center * momentum + batch_center * (1 - momentum)


# ---------------------------------------------------------------- Sinkhorn

@pytest.mark.parametrize("b,k,epsilon,iters", [(12, 7, 0.05, 3), (20, 30, 0.05, 1), (9, 5, 0.3, 0)])
def test_sinkhorn_matches_official_exp_version(b, k, epsilon, iters):
  s = _scores(1, b, k, seed=b)[0]
  got = SINKHORN(jnp.asarray(s), epsilon=epsilon, num_iters=iters)
  assert got.shape == (b, k) and got.dtype == jnp.float32
  want = _sinkhorn_ref(s, epsilon, iters)
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
  if iters:
    np.testing.assert_allclose(np.sum(got, axis=1), 1.0, rtol=1e-5)


def test_sinkhorn_converges_to_equipartition():
  b, k = 24, 6
  q = SINKHORN(jnp.asarray(_scores(1, b, k, seed=2)[0]), epsilon=0.1, num_iters=300)
  np.testing.assert_allclose(np.sum(q, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.sum(q, axis=0), b / k, rtol=1e-3)
  assert np.all(np.asarray(q) >= 0)


def test_sinkhorn_is_stable_where_exp_overflows():
  s = 10.0 * _scores(1, 16, 8, seed=4)[0]  # scores / epsilon up to 200: exp overflows float32
  with np.errstate(over="ignore", invalid="ignore"):
    assert not np.all(np.isfinite(np.exp(np.float32(s) / np.float32(0.05))))
  q = SINKHORN(jnp.asarray(s), epsilon=0.05, num_iters=3)
  assert np.all(np.isfinite(q))
  np.testing.assert_allclose(np.sum(q, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(q, _sinkhorn_ref(s, 0.05, 3), rtol=1e-4, atol=1e-6)  # float64 does not overflow
  # bfloat16 scores are handled in float32 and give the assignment of the rounded scores.
  s16 = jnp.asarray(s, jnp.bfloat16)
  q16 = SINKHORN(s16, epsilon=0.05, num_iters=3)
  assert q16.dtype == jnp.float32
  np.testing.assert_allclose(q16, SINKHORN(s16.astype(jnp.float32), epsilon=0.05, num_iters=3), atol=1e-6)


def test_sinkhorn_has_no_gradient():
  s = jnp.asarray(_scores(1, 6, 4)[0])
  g = jax.grad(lambda x: jnp.sum(C.sinkhorn_knopp(x) * jnp.arange(4.0)))(s)
  np.testing.assert_array_equal(g, 0.0)


# ---------------------------------------------------------------- SwAV

@pytest.mark.parametrize("v,b,k,t,crops", [(2, 8, 6, 0.1, (0, 1)), (4, 6, 10, 0.2, (0, 1)), (3, 5, 4, 0.1, (1,))])
def test_swav_matches_official_loop(v, b, k, t, crops):
  s = _scores(v, b, k, seed=v * b)
  want = _swav_ref(s, t, 0.05, 3, crops)
  got = SWAV(jnp.asarray(s), temperature=t, crops_for_assign=crops)
  assert got.shape == () and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # A list of crops gives the same loss as the stacked array.
  np.testing.assert_allclose(SWAV([jnp.asarray(x) for x in s], temperature=t, crops_for_assign=crops),
                             got, rtol=1e-6)
  # Gradient with the codes held fixed, as the official code's torch.no_grad.
  g = jax.jit(jax.grad(C.swav), static_argnames=("crops_for_assign",))(
      jnp.asarray(s), temperature=t, crops_for_assign=crops)
  np.testing.assert_allclose(g, _swav_grad_ref(s, t, 0.05, 3, crops), rtol=1e-4, atol=1e-6)


def test_swav_is_stable_with_large_scores():
  s = jnp.asarray(10.0 * _scores(3, 8, 6, seed=9))
  val, g = jax.jit(jax.value_and_grad(C.swav))(s)
  assert np.isfinite(float(val)) and np.all(np.isfinite(g))
  np.testing.assert_allclose(val, _swav_ref(np.asarray(s), 0.1, 0.05, 3, (0, 1)), rtol=1e-4)


# ---------------------------------------------------------------- DINO

@pytest.mark.parametrize("s_crops,t_crops,b,k,st,tt", [(2, 2, 5, 7, 0.1, 0.04), (4, 2, 3, 9, 0.1, 0.07),
                                                       (3, 1, 4, 5, 0.2, 0.05)])
def test_dino_matches_official_loop(s_crops, t_crops, b, k, st, tt):
  rng = np.random.default_rng(s_crops * 10 + k)
  student = rng.normal(size=(s_crops, b, k)).astype(np.float32)
  teacher = rng.normal(size=(t_crops, b, k)).astype(np.float32)
  center = (0.3 * rng.normal(size=(1, k))).astype(np.float32)
  want = _dino_ref(student, teacher, center, st, tt)
  got = DINO(jnp.asarray(student), jnp.asarray(teacher), jnp.asarray(center),
             student_temperature=st, teacher_temperature=tt)
  assert got.shape == () and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-5)
  per_example = DINO_PER_EXAMPLE(list(student), list(teacher), jnp.asarray(center[0]),
                                 student_temperature=st, teacher_temperature=tt)
  assert per_example.shape == (b,)
  np.testing.assert_allclose(np.mean(per_example), want, rtol=1e-5)


def test_dino_gradients():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    student = jnp.asarray(rng.normal(size=(3, 4, 5)))
    teacher = jnp.asarray(rng.normal(size=(2, 4, 5)))
    center = jnp.asarray(0.1 * rng.normal(size=(5,)))
    check_grads(jax.jit(lambda s: C.dino(s, teacher, center)), (student,), order=1, modes=("fwd", "rev"),
                atol=1e-6, rtol=1e-6)
    # No gradient into the teacher or the center (stop_gradient on the targets).
    gt, gc = jax.jit(jax.grad(C.dino, argnums=(1, 2)))(student, teacher, center)
    np.testing.assert_array_equal(gt, 0.0)
    np.testing.assert_array_equal(gc, 0.0)


def test_dino_is_stable_with_sharp_teacher():
  rng = np.random.default_rng(1)
  student = jnp.asarray(50.0 * rng.normal(size=(4, 6, 64)), jnp.bfloat16)
  teacher = jnp.asarray(50.0 * rng.normal(size=(2, 6, 64)), jnp.bfloat16)
  center = jnp.zeros((1, 64))
  val, g = jax.jit(jax.value_and_grad(C.dino))(student, teacher, center, teacher_temperature=0.01)
  assert val.dtype == jnp.float32 and np.isfinite(float(val)) and np.all(np.isfinite(np.float32(g)))
  want = _dino_ref(np.float32(student), np.float32(teacher), np.zeros(64), 0.1, 0.01)
  np.testing.assert_allclose(val, want, rtol=1e-4)


@pytest.mark.parametrize("center_shape,teacher_as", [((1, 6), "array"), ((6,), "list"), ((6,), "rows")])
def test_dino_center_matches_official(center_shape, teacher_as):
  rng = np.random.default_rng(3)
  teacher = rng.normal(size=(2, 5, 6)).astype(np.float32)
  center = rng.normal(size=center_shape).astype(np.float32)
  arg = {"array": jnp.asarray(teacher), "list": list(teacher), "rows": jnp.asarray(teacher.reshape(10, 6))}
  got = DINO_CENTER(jnp.asarray(center), arg[teacher_as], momentum=0.8)
  assert got.shape == center_shape
  np.testing.assert_allclose(got, _dino_center_ref(center, teacher, 0.8).reshape(center_shape), rtol=1e-6)


# ---------------------------------------------------------------- sharding (8 CPU devices)

def _check_close(got, want, rtol=1e-5):
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    scale = float(jnp.max(jnp.abs(b)))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def test_sharded_sinkhorn_equals_single_device():
  mesh = _mesh()
  s = jnp.asarray(3.0 * _scores(1, 32, 6, seed=21)[0])  # 4 rows per device
  sharded = jax.jit(jax.shard_map(lambda x: C.sinkhorn_knopp(x, num_iters=3, axis_name="data"), mesh=mesh,
                                  in_specs=P("data"), out_specs=P("data")))
  _check_close(sharded(s), SINKHORN(s, num_iters=3))
  # Per-device Sinkhorn (no axis_name) is a different assignment: the test can tell.
  local = jax.jit(jax.shard_map(C.sinkhorn_knopp, mesh=mesh, in_specs=P("data"), out_specs=P("data")))
  assert float(jnp.max(jnp.abs(local(s) - sharded(s)))) > 1e-3


def test_sharded_swav_equals_single_device():
  mesh = _mesh()
  s = jnp.asarray(_scores(3, 16, 5, seed=22))  # [V, B, K], 2 examples per device
  sharded = jax.shard_map(lambda x: C.swav(x, axis_name="data"), mesh=mesh,
                          in_specs=P(None, "data"), out_specs=P())
  _check_close(jax.jit(jax.value_and_grad(sharded))(s), jax.jit(jax.value_and_grad(C.swav))(s))


def test_sharded_dino_and_center_equal_single_device():
  mesh = _mesh()
  rng = np.random.default_rng(23)
  student = jnp.asarray(rng.normal(size=(4, 16, 7)), jnp.float32)
  teacher = jnp.asarray(rng.normal(size=(2, 16, 7)), jnp.float32)
  center = jnp.asarray(0.2 * rng.normal(size=(1, 7)), jnp.float32)

  def sharded_loss(s, t, c):
    per = jax.shard_map(C.dino_per_example, mesh=mesh, in_specs=(P(None, "data"), P(None, "data"), P()),
                        out_specs=P("data"))(s, t, c)
    return jnp.mean(per)

  _check_close(jax.jit(jax.value_and_grad(sharded_loss))(student, teacher, center),
               jax.jit(jax.value_and_grad(C.dino))(student, teacher, center))

  def center_sum(c, t, axis_name=None):
    new = C.dino_center(c, t, momentum=0.7, axis_name=axis_name)
    return jnp.sum(new * jnp.arange(1.0, 8.0)), new

  sharded_center = jax.shard_map(lambda c, t: center_sum(c, t, "data"), mesh=mesh,
                                 in_specs=(P(), P(None, "data")), out_specs=(P(), P()))
  grad_fn = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))  # noqa: E731
  (_, c8), g8 = grad_fn(sharded_center)(center, teacher)
  (_, c1), g1 = grad_fn(center_sum)(center, teacher)
  _check_close((c8, g8), (c1, g1))
  np.testing.assert_allclose(c1, _dino_center_ref(np.asarray(center), np.asarray(teacher), 0.7), rtol=1e-6)


# ---------------------------------------------------------------- errors

def test_bad_inputs_raise():
  s = jnp.zeros((4, 5))
  with pytest.raises(ValueError, match=r"sinkhorn_knopp: `scores` must have 2 dimensions.*scores\(2, 4, 5\)"):
    C.sinkhorn_knopp(jnp.zeros((2, 4, 5)))
  with pytest.raises(ValueError, match=r"`epsilon` must be > 0"):
    C.sinkhorn_knopp(s, epsilon=0.0)
  with pytest.raises(ValueError, match=r"`num_iters` must be a non-negative"):
    C.sinkhorn_knopp(s, num_iters=-1)
  with pytest.raises(ValueError, match=r"swav: every crop .* same shape.*\[\(4, 5\), \(3, 5\)\]"):
    C.swav([s, jnp.zeros((3, 5))])
  with pytest.raises(ValueError, match=r"swav: .*at least 2 crops.*scores_per_view\(1, 4, 5\)"):
    C.swav([s])
  with pytest.raises(ValueError, match=r"swav: .*crops_for_assign.*\[0, 2\) for 2 crops; got .*\(0, 2\)"):
    C.swav([s, s], crops_for_assign=(0, 2))
  with pytest.raises(ValueError, match=r"swav: `scores_per_view` must have 3 dimensions"):
    C.swav(s)
  with pytest.raises(ValueError, match=r"dino: `center` must have shape \[K\] or \[1, K\] with K=5.*center\(4,\)"):
    C.dino(jnp.zeros((3, 4, 5)), jnp.zeros((2, 4, 5)), jnp.zeros(4))
  with pytest.raises(ValueError, match=r"dino: student and teacher .*student_logits\(3, 4, 5\), "
                                       r"teacher_logits\(2, 4, 6\)"):
    C.dino(jnp.zeros((3, 4, 5)), jnp.zeros((2, 4, 6)), jnp.zeros(6))
  with pytest.raises(ValueError, match=r"dino: need at least 2 student crops"):
    C.dino(jnp.zeros((1, 4, 5)), jnp.zeros((2, 4, 5)), jnp.zeros(5))
  with pytest.raises(ValueError, match=r"dino_center: `center` must have shape.*K=5.*center\(1, 4\)"):
    C.dino_center(jnp.zeros((1, 4)), jnp.zeros((2, 4, 5)))
  with pytest.raises(ValueError, match=r"dino_center: `momentum` must be in \[0, 1\]"):
    C.dino_center(jnp.zeros(5), jnp.zeros((2, 4, 5)), momentum=1.5)
