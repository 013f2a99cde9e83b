"""What makes each joint-embedding method that method (MoCo v2, Barlow Twins, VICReg, SupCon, NNCLR, SwAV,
DINO, MoCo v3), tested on one step of its tiny run against NumPy written from the papers' formulas."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.data import views as views_lib
from ssl_jax.methods import common
from ssl_jax.methods.ssl import dino as dino_method
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


def _setup(method, **overrides):
  """(plan, fresh state, batch of step 0) of a tiny run on one device."""
  plan = trainer.preflight(tiny_config(method, **overrides))
  batch = trainer.load_stream(plan).global_batch(0)
  state = jax.jit(functools.partial(plan.module.init, plan.method))(jax.random.PRNGKey(0))
  return plan, state, batch


_STEPS = {}


def _step(plan, state, batch):
  """One jitted step (compiled once per plan); the new state and metrics on the host."""
  if id(plan) not in _STEPS:
    _STEPS[id(plan)] = jax.jit(functools.partial(plan.module.step, plan.method))
  after, metrics = _STEPS[id(plan)](state, batch)
  return jax.device_get(after), jax.device_get(metrics)


def _normalize(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _logsumexp(x, axis):
  m = x.max(axis=axis, keepdims=True)
  return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


@functools.partial(jax.jit, static_argnums=2)
def _two_views(state, images, preset):
  """The step's two views, view 1 then view 2 [2B, H, W, C] (as the methods make them)."""
  v1, v2 = views_lib.simclr_views(common.step_key(state), images, preset)
  return jnp.concatenate([v1, v2])


def _chain(modules, params, batch_stats, x):
  """Apply modules (a tuple of (name, module)) one after another in training mode: (first output, last)."""
  @jax.jit
  def run(params, batch_stats, x):
    first = None
    for name, module in modules:
      x, _ = common.apply(module, params[name], batch_stats[name], x, train=True)
      first = x if first is None else first
    return first, x
  first, last = run({n: params[n] for n, _ in modules}, {n: batch_stats[n] for n, _ in modules}, x)
  return np.asarray(first, np.float64), np.asarray(last, np.float64)


# ------------------------------------------------------------------------------------------------ MoCo v2


def test_moco_v2_queue_holds_the_new_keys_in_order_and_the_loss_is_symmetric_infonce():
  plan, state, batch = _setup("moco_v2")
  m = plan.method
  x, b = _two_views(state, batch["image"], m.views), len(batch["image"])
  target, net = state.extra["target"], (("encoder", m.encoder), ("projector", m.projector))
  _, k = _chain(net, target["params"], target["batch_stats"], x)
  k = _normalize(k).reshape(2, b, -1)
  _, q = _chain(net, state.params, state.batch_stats, x)
  q = _normalize(q).reshape(2, b, -1)
  queue = np.asarray(state.extra["queue"], np.float64)
  t = m.temperature

  def nce(q, k, negatives):  # -log exp(q.k/t) / (exp(q.k/t) + sum_j exp(q.Q_j/t)), mean over the batch
    pos = np.sum(q * k, 1) / t
    return np.mean(_logsumexp(np.concatenate([pos[:, None], q @ negatives.T / t], 1), 1) - pos)

  want = 0.5 * (nce(q[0], k[1], queue[1]) + nce(q[1], k[0], queue[0]))
  # Start with the pointer at the last slot: the new keys fill the last B rows, the pointer wraps to 0.
  K = queue.shape[1]
  state = state.replace(extra={**state.extra, "queue_ptr": jnp.asarray(K - b, jnp.int32)})
  after, metrics = _step(plan, state, batch)
  np.testing.assert_allclose(metrics["train/loss"], want, rtol=1e-4)
  new = np.asarray(after.extra["queue"])
  np.testing.assert_allclose(new[:, K - b:], k, rtol=1e-4, atol=1e-5)  # view v's keys, in batch order
  np.testing.assert_array_equal(new[:, :K - b], queue[:, :K - b])      # the rest untouched
  assert int(after.extra["queue_ptr"]) == 0
  # A second step writes at the front.
  after2, _ = _step(plan, jax.tree.map(jnp.asarray, after), batch)
  assert int(after2.extra["queue_ptr"]) == b
  np.testing.assert_array_equal(np.asarray(after2.extra["queue"])[:, b:], new[:, b:])
  assert not np.allclose(np.asarray(after2.extra["queue"])[:, :b], new[:, :b])
  # The key network is the EMA of the query network and gets no gradient.
  tau = float(m.tau(0))
  for part in ("encoder", "projector"):
    jax.tree.map(lambda t0, o, t1: np.testing.assert_allclose(t1, tau * t0 + (1 - tau) * o, rtol=1e-5, atol=1e-6),
                 target["params"][part], after.params[part], after.extra["target"]["params"][part])


# ------------------------------------------------------------------------------- Barlow Twins and VICReg


def _barlow_reference(z1, z2, lam):
  """sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2, C the cross-correlation of batch-standardised z."""
  n, d = z1.shape
  zn = [(z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5) for z in (z1, z2)]
  c = np.zeros((d, d))
  for row in range(n):
    c += np.outer(zn[0][row], zn[1][row]) / n
  off = c - np.diag(np.diag(c))
  return np.sum((1 - np.diag(c)) ** 2) + lam * np.sum(off ** 2)


def _vicreg_reference(z1, z2, coeffs):
  n, d = z1.shape
  inv = np.mean((z1 - z2) ** 2)
  var = cov = 0.0
  for z in (z1, z2):
    c = np.cov(z, rowvar=False)  # unbiased, over the rows given
    var += np.mean(np.maximum(0.0, 1 - np.sqrt(np.diag(c) + 1e-4))) / 2
    cov += (np.sum(c ** 2) - np.sum(np.diag(c) ** 2)) / d
  return coeffs[0] * inv + coeffs[1] * var + coeffs[2] * cov


def test_barlow_twins_and_vicreg_statistics_are_over_the_global_batch():
  for method in ("barlow_twins", "vicreg"):
    plan, state, batch = _setup(method)
    m = plan.method
    x, b = _two_views(state, batch["image"], m.views), len(batch["image"])
    _, z = _chain((("encoder", m.encoder), ("projector", m.projector)), state.params, state.batch_stats, x)
    z1, z2 = z[:b], z[b:]
    if method == "barlow_twins":
      loss = lambda z1, z2: m.scale_loss * _barlow_reference(z1, z2, m.lambda_)
    else:
      loss = lambda z1, z2: _vicreg_reference(z1, z2, m.coeffs)
    _, metrics = _step(plan, state, batch)
    np.testing.assert_allclose(metrics["train/loss"], loss(z1, z2), rtol=1e-4, err_msg=method)
    # Per-shard statistics (two halves of the batch) would give another value: the test can tell them apart.
    halves = (loss(z1[:b // 2], z2[:b // 2]) + loss(z1[b // 2:], z2[b // 2:])) / 2
    assert abs(halves - loss(z1, z2)) > 1e-3 * abs(loss(z1, z2)), method


# ------------------------------------------------------------------------------------------------- SupCon


def _supcon_reference(z, labels, t):
  """L_out of the paper, with loops: z [2B, d] (view 1 then view 2), labels [2B]."""
  u = _normalize(z)
  out = []
  for i in range(len(u)):
    others = [a for a in range(len(u)) if a != i]
    log_den = _logsumexp(np.array([u[i] @ u[a] / t for a in others]), 0)
    pos = [p for p in others if labels[p] == labels[i]]
    out.append(np.mean([log_den - u[i] @ u[p] / t for p in pos]) if pos else 0.0)
  return np.mean(out)


def test_supcon_positives_are_the_views_of_the_same_label():
  plan, state, batch = _setup("supcon")
  m = plan.method
  x, b = _two_views(state, batch["image"], m.views), len(batch["image"])
  _, z = _chain((("encoder", m.encoder), ("projector", m.projector)), state.params, state.batch_stats, x)
  labels = np.asarray(batch["label"])
  _, metrics = _step(plan, state, batch)
  np.testing.assert_allclose(metrics["train/loss"], _supcon_reference(z, np.tile(labels, 2), m.temperature),
                             rtol=1e-4)
  # Other labels, other positives, another loss (all distinct labels: SimCLR's NT-Xent).
  shuffled = {**batch, "label": np.roll(labels, 1)}
  _, other = _step(plan, state, shuffled)
  np.testing.assert_allclose(other["train/loss"], _supcon_reference(z, np.tile(np.roll(labels, 1), 2),
                                                                    m.temperature), rtol=1e-4)
  assert abs(other["train/loss"] - metrics["train/loss"]) > 1e-3


# -------------------------------------------------------------------------------------------------- NNCLR


def test_nnclr_positive_is_the_support_queue_nearest_neighbour():
  plan, state, batch = _setup("nnclr")
  m = plan.method
  x, b = _two_views(state, batch["image"], m.views), len(batch["image"])
  net = (("encoder", m.encoder), ("projector", m.projector))
  _, z = _chain(net, state.params, state.batch_stats, x)
  _, p = _chain(net + (("predictor", m.predictor),), state.params, state.batch_stats, x)
  z, p = _normalize(z), _normalize(p)
  queue = np.asarray(state.extra["queue"], np.float64)
  # Fill half the queue with labelled rows so that nn_acc means something; the rest stays random.
  labels = np.asarray(batch["label"])
  K = len(queue)
  queue_labels = np.where(np.arange(K) % 2 == 0, np.arange(K) % 10, -1).astype(np.int32)
  state = state.replace(extra={**state.extra, "queue_labels": jnp.asarray(queue_labels)})

  def nearest(v):  # brute force: the row of largest cosine
    return max(range(K), key=lambda j: float(v @ queue[j]))

  nn1 = [nearest(v) for v in z[:b]]
  nn2 = [nearest(v) for v in z[b:]]
  t = m.temperature

  def nce(anchors, preds):
    logits = anchors @ preds.T / t
    return np.mean(_logsumexp(logits, 1) - np.diag(logits))

  want = 0.5 * (nce(_normalize(queue[nn1]), p[b:]) + nce(_normalize(queue[nn2]), p[:b]))
  after, metrics = _step(plan, state, batch)
  np.testing.assert_allclose(metrics["train/loss"], want, rtol=1e-4)
  np.testing.assert_allclose(metrics["train/nn_acc"], np.mean(queue_labels[nn1] == labels), atol=1e-6)
  # The support set then holds the batch's view-1 projections, in order, and their labels.
  np.testing.assert_allclose(np.asarray(after.extra["queue"])[:b], z[:b], rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(after.extra["queue"])[b:], queue[b:].astype(np.float32))
  np.testing.assert_array_equal(np.asarray(after.extra["queue_labels"])[:b], labels)
  assert int(after.extra["queue_ptr"]) == b % K


# --------------------------------------------------------------------------------------------------- SwAV


def _sinkhorn_reference(scores, eps, iters):
  """SwAV's distributed_sinkhorn on one device, in float64."""
  q = np.exp(scores / eps).T  # [K, B]
  k, b = q.shape
  q /= q.sum()
  for _ in range(iters):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  return (q * b).T


def test_swav_prototypes_stay_unit_norm_and_are_frozen_for_the_first_steps():
  plan, state, batch = _setup("swav")
  m = plan.method
  assert m.freeze_prototypes_steps == 2
  kernel = lambda s: np.asarray(s.params["prototypes"]["kernel"])
  start = kernel(state)
  np.testing.assert_allclose(np.linalg.norm(start, axis=1), 1.0, rtol=1e-6)
  s = state
  for k in range(3):
    s, metrics = _step(plan, jax.tree.map(jnp.asarray, s), batch)
    np.testing.assert_allclose(np.linalg.norm(kernel(s), axis=1), 1.0, rtol=1e-5)
    assert metrics["train/prototypes_frozen"] == (k < 2)
    if k < 2:  # frozen: not moved at all
      np.testing.assert_allclose(kernel(s), start, rtol=1e-6, atol=1e-7)
    if k == 1:  # while the rest of the network did (step 0 has learning rate 0 in the warm-up)
      assert not np.allclose(s.params["projector"]["dense_1"]["kernel"],
                             state.params["projector"]["dense_1"]["kernel"])
  assert np.abs(kernel(s) - start).max() > 1e-4, "after the frozen steps the prototypes learn"


def test_swav_loss_is_the_swapped_prediction_of_sinkhorn_codes():
  plan, state, batch = _setup("swav", **{"swav.queue_size": 0, "swav.freeze_prototypes_steps": 0})
  m = plan.method

  @jax.jit
  def scores_of(state, images):
    globals_, locals_ = views_lib.multi_crop_views(common.step_key(state), images, m.views)
    out = []
    for group in (jnp.concatenate(globals_), jnp.concatenate(locals_)):
      f, _ = common.apply(m.encoder, state.params["encoder"], state.batch_stats["encoder"], group, train=True)
      z, _ = common.apply(m.projector, state.params["projector"], state.batch_stats["projector"], f, train=True)
      out.append(z)
    return jnp.concatenate(out)

  b = len(batch["image"])
  z = _normalize(scores_of(state, batch["image"]))
  scores = (z @ _normalize(state.params["prototypes"]["kernel"]).T).reshape(-1, b, m.num_prototypes)
  t, n_views = m.temperature, len(scores)
  log_p = [s / t - _logsumexp(s / t, 1)[:, None] for s in scores]
  want = 0.0
  for v in (0, 1):
    q = _sinkhorn_reference(scores[v], m.epsilon, m.sinkhorn_iters)
    want += sum(np.mean(-np.sum(q * log_p[u], 1)) for u in range(n_views) if u != v) / (n_views - 1) / 2
  _, metrics = _step(plan, state, batch)
  np.testing.assert_allclose(metrics["train/loss"], want, rtol=1e-4)


# --------------------------------------------------------------------------------------------------- DINO


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_dino_centre_moves_by_its_momentum_and_the_teacher_temperature_warms_up():
  plan, state, batch = _setup("dino")
  m = plan.method
  b = len(batch["image"])

  @jax.jit
  def outputs(state, images):  # (teacher on the global crops, student on all crops), as the paper
    globals_, locals_ = views_lib.multi_crop_views(common.step_key(state), images, m.views)
    def run(params, stats, *groups):  # the encoder per crop size, the head once on all the crops' features
      f = [common.apply(m.encoder, params["encoder"], stats["encoder"], x, train=True)[0] for x in groups]
      return common.apply(m.head, params["head"], stats["head"], jnp.concatenate(f), train=True)[0]
    teacher = state.extra["teacher"]
    g, l = jnp.concatenate(globals_), jnp.concatenate(locals_)
    return (run(teacher["params"], teacher["batch_stats"], g), run(state.params, state.batch_stats, g, l))

  warm, final, steps = 0.04, 0.07, 4  # the case's warm-up: 0.04 -> 0.07 over 4 steps
  s = state
  for k in range(2):
    teacher, student = (np.asarray(o, np.float64).reshape(-1, b, m.head.num_prototypes)
                        for o in outputs(s, batch["image"]))
    center = np.asarray(s.extra["center"], np.float64)
    tau_t = warm + (final - warm) * k / steps
    # DINO's loss from its formula, with loops over the (teacher crop, student crop) pairs.
    want, pairs = 0.0, 0
    for t in range(len(teacher)):
      p_t = _softmax((teacher[t] - center) / tau_t)
      for v in range(len(student)):
        if v != t:
          log_p = student[v] / m.student_temperature
          log_p = log_p - _logsumexp(log_p, 1)[:, None]
          want, pairs = want + np.mean(-np.sum(p_t * log_p, 1)), pairs + 1
    new, metrics = _step(plan, jax.tree.map(jnp.asarray, s), batch)
    np.testing.assert_allclose(metrics["train/teacher_temperature"], tau_t, rtol=1e-6)
    np.testing.assert_allclose(metrics["train/loss"], want / pairs, rtol=1e-4)
    # c <- 0.9 c + 0.1 mean over both global crops of the whole batch.
    batch_mean = teacher.reshape(-1, teacher.shape[-1]).mean(0)
    np.testing.assert_allclose(new.extra["center"], 0.9 * center + 0.1 * batch_mean, rtol=1e-4, atol=1e-6)
    # The last layer is frozen for the first 2 steps; the teacher is the EMA of the student.
    np.testing.assert_array_equal(new.params["head"]["last_layer"], state.params["head"]["last_layer"])
    tau = float(m.tau(k))
    jax.tree.map(lambda t0, o, t1: np.testing.assert_allclose(t1, tau * t0 + (1 - tau) * o, rtol=1e-5, atol=1e-6),
                 s.extra["teacher"]["params"], {p: new.params[p] for p in ("encoder", "head")},
                 new.extra["teacher"]["params"])
    s = new
  assert np.abs(np.asarray(s.extra["center"])).max() > 0


def test_dino_koleo_adds_its_weight_times_the_spread_of_each_global_crops_features():
  plan0, state, batch = _setup("dino")
  plan, state_k, _ = _setup("dino", **{"dino.koleo_weight": 100.0})  # large: its gradient shows beside DINO's
  m = plan.method
  b = len(batch["image"])
  jax.tree.map(np.testing.assert_array_equal, state.params, state_k.params)  # KoLeo adds no parameter

  @jax.jit
  def global_features(state, images):
    globals_, _ = views_lib.multi_crop_views(common.step_key(state), images, m.views)
    return common.apply(m.encoder, state.params["encoder"], state.batch_stats["encoder"], jnp.concatenate(globals_),
                        train=True)[0]

  feats = np.asarray(global_features(state, batch["image"]), np.float64)
  want = []
  for g in range(m.views.num_global):  # -(1/b) sum_i log(min_j ||x_i - x_j||) on the unit sphere, per crop
    x = _normalize(feats[g * b:(g + 1) * b])
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.diag(np.full(b, np.inf))
    want.append(-np.mean(np.log(d.min(1) + 1e-8)))
  _, plain = _step(plan0, state, batch)
  _, metrics = _step(plan, state_k, batch)
  np.testing.assert_allclose(metrics["train/koleo"], np.mean(want), rtol=1e-4)
  np.testing.assert_allclose(metrics["train/loss"] - plain["train/loss"], 100.0 * np.sum(want), rtol=1e-3)
  assert "train/koleo" not in plain
  # The term reaches the gradient (the first step's learning rate is 0 in the warm-up, so compare gradients).
  assert abs(float(metrics["train/l2_grads"]) - float(plain["train/l2_grads"])) > 1e-4 * float(plain["train/l2_grads"])


def test_dino_head_with_batchnorm_normalises_over_every_crop_of_the_batch():
  plan, state, batch = _setup("dino")  # the ConvNet config has BatchNorm in the head; the method's default has not
  m = plan.method
  assert set(state.batch_stats["head"]) == {"bn_0", "bn_1"} and not dino_method.config().use_bn_in_head
  plain = dataclasses.replace(m.head, use_bn=False).init(jax.random.PRNGKey(0), jnp.zeros((2, 8)))
  assert "batch_stats" not in plain and "bn_0" not in plain["params"]

  @jax.jit
  def first_layer(state, images):  # the student's first head layer on all crops, global and local
    globals_, locals_ = views_lib.multi_crop_views(common.step_key(state), images, m.views)
    feats = [common.apply(m.encoder, state.params["encoder"], state.batch_stats["encoder"], jnp.concatenate(g),
                          train=True)[0] for g in (globals_, locals_)]
    dense = state.params["head"]["dense_0"]
    return jnp.concatenate(feats) @ dense["kernel"] + dense["bias"]

  h = np.asarray(first_layer(state, batch["image"]), np.float64)
  after, _ = _step(plan, state, batch)
  # Running mean <- 0.9 * 0 + 0.1 * the mean over all the crops (one head call, as the authors' MultiCropWrapper).
  np.testing.assert_allclose(after.batch_stats["head"]["bn_0"]["mean"], 0.1 * h.mean(0), rtol=1e-3, atol=1e-6)
  np.testing.assert_allclose(after.batch_stats["head"]["bn_0"]["var"], 0.9 + 0.1 * h.var(0), rtol=1e-3, atol=1e-6)


def test_dino_head_last_layer_is_weight_normalised():
  plan, state, _ = _setup("dino")
  m = plan.method
  feats = np.random.default_rng(0).normal(size=(5, m.encoder.feature_dim)).astype(np.float32)
  params = state.params["head"]
  scaled = {**params, "last_layer": params["last_layer"] * np.arange(1, m.head.num_prototypes + 1)}
  stats = state.batch_stats["head"]  # the head's BatchNorm (running statistics outside training)
  out = m.head.apply({"params": params, "batch_stats": stats}, feats)
  np.testing.assert_allclose(m.head.apply({"params": scaled, "batch_stats": stats}, feats), out, rtol=1e-5, atol=1e-6)
  assert np.abs(np.asarray(out)).max() <= 1 + 1e-5  # unit bottleneck times unit columns: a cosine


def test_dino_head_with_a_learned_norm_scales_each_unit_column_and_freezes_it_with_the_last_layer():
  plan, state, batch = _setup("dino", **{"dino.norm_last_layer": False})  # freeze_last_layer_steps = 2 in the case
  m = plan.method
  head = state.params["head"]
  np.testing.assert_array_equal(head["last_layer_g"], np.ones(m.head.num_prototypes, np.float32))  # g starts at 1
  g = np.linspace(0.5, 3.0, m.head.num_prototypes).astype(np.float32)
  feats = np.random.default_rng(0).normal(size=(5, m.encoder.feature_dim)).astype(np.float32)
  stats = {"batch_stats": state.batch_stats["head"]}
  unit = np.asarray(m.head.apply({"params": head, **stats}, feats), np.float64)  # g = 1: x_unit @ (V / ||V||)
  out = np.asarray(m.head.apply({"params": {**head, "last_layer_g": g}, **stats}, feats), np.float64)
  np.testing.assert_allclose(out, unit * g, rtol=1e-5, atol=1e-6)  # W[:, k] = g_k V[:, k] / ||V[:, k]||
  s = state
  for _ in range(3):
    s, _ = _step(plan, jax.tree.map(jnp.asarray, s), batch)
    if int(s.step) <= 2:  # the first two steps: V and g both frozen
      np.testing.assert_array_equal(s.params["head"]["last_layer_g"], head["last_layer_g"])
      np.testing.assert_array_equal(s.params["head"]["last_layer"], head["last_layer"])
  assert np.abs(s.params["head"]["last_layer_g"] - 1).max() > 0  # then g learns
  # With the default norm_last_layer there is no g at all.
  assert "last_layer_g" not in _setup("dino")[1].params["head"]


# ------------------------------------------------------------------------------------------------ MoCo v3


def test_moco_v3_symmetric_loss_and_the_momentum_encoder_gets_no_gradient():
  plan, state, batch = _setup("moco_v3")
  m = plan.method
  x, b = _two_views(state, batch["image"], m.views), len(batch["image"])
  target = state.extra["target"]
  net = (("encoder", m.encoder), ("projector", m.projector))
  _, k = _chain(net, target["params"], target["batch_stats"], x)
  _, q = _chain(net + (("predictor", m.predictor),), state.params, state.batch_stats, x)
  q, k, t = _normalize(q), _normalize(k), m.temperature

  def ctr(q, k):  # 2t * cross-entropy of q_i against all keys of the batch, positive k_i
    logits = q @ k.T / t
    return 2 * t * np.mean(_logsumexp(logits, 1) - np.diag(logits))

  after, metrics = _step(plan, state, batch)
  np.testing.assert_allclose(metrics["train/loss"], ctr(q[:b], k[b:]) + ctr(q[b:], k[:b]), rtol=1e-4)
  tau = float(m.tau(0))
  for part in ("encoder", "projector"):  # exactly the EMA: no gradient step reached the momentum network
    jax.tree.map(lambda t0, o, t1: np.testing.assert_allclose(t1, tau * t0 + (1 - tau) * o, rtol=1e-5, atol=1e-6),
                 target["params"][part], after.params[part], after.extra["target"]["params"][part])
  assert "predictor" not in after.extra["target"]["params"]
