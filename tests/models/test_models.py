"""Tests of the encoders and heads: shapes, parameter counts, BatchNorm, bf16, sharding, errors."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax.models import convnet as convnet_lib
from ssl_jax.models import heads, registry, resnet, vit, wide_resnet

# On CPU, XLA compiles the default (partitionable threefry) PRNG several times slower than "rbg";
# initialisation values do not matter here, so tests initialise with rbg keys.
KEY = jax.random.key(0, impl="rbg")
_RNG = np.random.default_rng(0)


def _normal(*shape) -> jax.Array:
  return jnp.asarray(_RNG.standard_normal(shape), jnp.float32)


def _num_params(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _init(model, x):
  """Jitted init: far faster than eager init, which compiles every op separately."""
  return jax.jit(lambda k, x: model.init(k, x, train=False))(KEY, x)


def _abstract_init(model, shape):
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.eval_shape(lambda x: model.init(KEY, x, train=False), x), x


# Small-input overrides: registry defaults except where the input size needs them.
_OVERRIDES = {"vit_micro": {"image_size": 32}, "vit_mini": {"patch_size": 4, "image_size": 32}, "vit_tiny": {"patch_size": 4, "image_size": 32},
              "vit_small": {"patch_size": 4, "image_size": 32}}
_FEATURE_DIMS = {"convnet": 128, "mlp": 128, "lenet_mil": 500, "lenet_mil_small": 128, "resnet18_cifar": 512, "resnet18_imagenet": 512,
                 "resnet50_cifar": 2048, "resnet50_imagenet": 2048, "wrn28_2": 128,
                 "vit_micro": 32, "vit_mini": 128, "vit_tiny": 192, "vit_small": 384}


def test_registry_names():
  assert set(registry.ENCODERS) == set(_FEATURE_DIMS)


@pytest.mark.parametrize("name", sorted(_FEATURE_DIMS))
def test_registry_feature_shapes(name):
  model = registry.make_encoder(name, **_OVERRIDES.get(name, {}))
  assert model.feature_dim == _FEATURE_DIMS[name]  # Known before any initialisation.
  variables, x = _abstract_init(model, (2, 32, 32, 3))
  for train in (False, True):
    out = jax.eval_shape(
        lambda v, x, train=train: model.apply(v, x, train=train, mutable=["batch_stats"])[0],
        variables, x)
    assert out.shape == (2, model.feature_dim) and out.dtype == jnp.float32
  has_bn = "batch_stats" in variables
  assert has_bn == (not name.startswith("vit") and name not in ("mlp", "lenet_mil", "lenet_mil_small")), "MIL encoders have no BN"


@pytest.mark.parametrize("shape", [(2, 8, 8, 1), (2, 28, 28, 1), (2, 32, 32, 3)])
def test_convnet_input_sizes(shape):
  model = convnet_lib.ConvNet()
  variables, x = _abstract_init(model, shape)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  assert out.shape == (2, 128)


def test_convnet_widths_configurable():
  model = registry.make_encoder("convnet", widths=(8, 24), convs_per_stage=2)
  assert model.feature_dim == 24
  variables, x = _abstract_init(model, (2, 28, 28, 1))
  assert sorted(variables["params"]) == ["bn0_0", "bn0_1", "bn1_0", "bn1_1", "conv0_0", "conv0_1",
                                         "conv1_0", "conv1_1"]
  assert jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape == (2, 24)


def test_max_pool_2x2_matches_reduce_window():
  x = _normal(2, 7, 6, 3)
  want = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  np.testing.assert_array_equal(convnet_lib.max_pool_2x2(x), want)


def test_parameter_counts_match_torchvision():
  # torchvision resnet18 / resnet50 without `fc`; the CIFAR stem swaps the 7x7x3x64 conv for 3x3.
  counts = {}
  for name in ("resnet18_cifar", "resnet18_imagenet", "resnet50_cifar", "resnet50_imagenet",
               "wrn28_2"):
    variables, _ = _abstract_init(registry.make_encoder(name), (1, 32, 32, 3))
    counts[name] = _num_params(variables["params"])
  assert counts["resnet18_imagenet"] == 11_689_512 - 513_000
  assert counts["resnet18_cifar"] == 11_689_512 - 513_000 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64
  assert counts["resnet50_imagenet"] == 25_557_032 - 2_049_000
  assert counts["resnet50_cifar"] == 25_557_032 - 2_049_000 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64
  # WRN-28-2 counted by hand: biased convs, BN before each conv, 1x1 projections when widening.
  def block(cin, cout):
    proj = cin * cout + cout if cin != cout else 0
    return 2 * cin + 9 * cin * cout + cout + 2 * cout + 9 * cout * cout + cout + proj
  widths = ((16, 32), (32, 64), (64, 128))
  stages = sum(block(cin, cout) + 3 * block(cout, cout) for cin, cout in widths)
  assert counts["wrn28_2"] == 9 * 3 * 16 + 16 + stages + 2 * 128  # About 1.47M, as in FixMatch.


def test_vit_parameter_counts():
  # timm vit_small_patch16_224 / vit_tiny_patch16_224 without the head and the CLS position slot.
  variables, _ = _abstract_init(vit.vit_small(16), (1, 224, 224, 3))
  assert _num_params(variables["params"]) == 22_050_664 - 384_000 - 1000 - 384
  variables, _ = _abstract_init(vit.vit_tiny(16), (1, 224, 224, 3))
  assert _num_params(variables["params"]) == 5_717_416 - 192_000 - 1000 - 192


def _random_variables(abstract, seed=0):
  """Random values for an abstract variable tree (positive where a variance is expected)."""
  rng = np.random.default_rng(seed)
  def value(path, leaf):
    if jax.tree_util.keystr(path).endswith("['var']"):
      return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
    return jnp.asarray(rng.normal(0.0, 0.05, leaf.shape), leaf.dtype)
  return jax.tree.map_with_path(value, abstract)


def _train_apply(model):
  return jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))


def test_resnet18_cifar_forward():
  # Full-size ResNet-18 forward on a batch of 2 at 32x32; random values instead of a real init,
  # whose compilation costs 10-20 s on CPU.
  model = registry.make_encoder("resnet18_cifar")
  abstract, x = _abstract_init(model, (2, 32, 32, 3))
  variables = _random_variables(abstract)
  x = _normal(*x.shape)
  feats = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
  assert feats.shape == (2, 512) and feats.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(feats))) and bool(jnp.all(feats >= 0))  # After a ReLU.
  assert float(jnp.abs(feats[0] - feats[1]).max()) > 0


def test_zero_init_residual():
  # Every block's last BN scale starts at 0 by default, the others at 1.
  x = jnp.ones((1, 8, 8, 3))
  params = _init(resnet.ResNet18(stem="cifar", num_filters=4, stage_sizes=(2, 1)), x)["params"]
  for block in ("stage1_block1", "stage1_block2", "stage2_block1"):
    np.testing.assert_array_equal(params[block]["bn2"]["scale"], 0.0)
    np.testing.assert_array_equal(params[block]["bn1"]["scale"], 1.0)
  np.testing.assert_array_equal(params["stage2_block1"]["proj_bn"]["scale"], 1.0)
  np.testing.assert_array_equal(params["stem_bn"]["scale"], 1.0)
  model = resnet.ResNet50(stem="cifar", num_filters=4, stage_sizes=(1,), zero_init_residual=False)
  params = _init(model, x)["params"]
  np.testing.assert_array_equal(params["stage1_block1"]["bn3"]["scale"], 1.0)


def test_batch_stats_update_only_in_train_mode():
  model = convnet_lib.ConvNet(widths=(4, 8))
  x = _normal(4, 8, 8, 1) * 3.0 + 1.0
  variables = _init(model, x)
  stats0 = variables["batch_stats"]

  @jax.jit
  def both(v, x):
    return (model.apply(v, x, train=True, mutable=["batch_stats"])[1],
            model.apply(v, x, train=False, mutable=["batch_stats"])[1])

  upd, same = both(variables, x)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats0, upd["batch_stats"])
  assert all(jax.tree.leaves(changed))
  jax.tree.map(np.testing.assert_array_equal, stats0, same["batch_stats"])


def test_batch_norm_momentum_and_eval_uses_running_stats():
  head = heads.MLPHead((8,), 4)
  x = _normal(16, 5) + 2.0
  variables = _init(head, x)

  @jax.jit
  def both(v, x):
    return (head.apply(v, x, train=True, mutable=["batch_stats"])[1],
            head.apply(v, x, train=False))

  upd, out = both(variables, x)
  h = x @ variables["params"]["dense_0"]["kernel"]  # No bias before BN.
  stats = upd["batch_stats"]["bn_0"]
  np.testing.assert_allclose(stats["mean"], 0.1 * h.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * h.var(0), rtol=1e-5)
  # Eval normalises with the running statistics: with mean 0 and var 1 the BN is the identity.
  p = variables["params"]
  want = jnp.maximum(h / np.sqrt(1 + 1e-5), 0) @ p["dense_1"]["kernel"] + p["dense_1"]["bias"]
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_mlp_head_layout():
  x = jnp.ones((4, 6))
  proj = heads.MLPHead((16, 16), 8, last_bn=True)
  variables = jax.eval_shape(lambda: proj.init(KEY, x, train=False))
  params = variables["params"]
  # Hidden linears before BN have no bias; the last BN has no affine parameters by default.
  assert sorted(params) == ["bn_0", "bn_1", "dense_0", "dense_1", "dense_2"]
  assert sorted(variables["batch_stats"]) == ["bn_0", "bn_1", "bn_2"]
  assert all("bias" not in params[f"dense_{i}"] for i in range(3))
  assert proj.feature_dim == 8
  affine = heads.MLPHead((16,), 8, last_bn=True, last_bn_affine=True)
  assert sorted(jax.eval_shape(lambda: affine.init(KEY, x, train=False))["params"]["bn_1"]) == [
      "bias", "scale"]
  no_bn = heads.MLPHead((16,), 8, use_bn=False)
  params = jax.eval_shape(lambda: no_bn.init(KEY, x, train=False))["params"]
  assert sorted(params) == ["dense_0", "dense_1"] and "bias" in params["dense_0"]


def test_heads_forward():
  x = _normal(4, 6) * jnp.arange(1.0, 5.0)[:, None]
  proj = heads.MLPHead((16,), 8, last_bn=True)
  lin = heads.LinearHead(10, zero_init=True)
  pv, lv = _init(proj, x), _init(lin, x)

  @jax.jit
  def run(pv, lv, x):
    return proj.apply(pv, x, train=True, mutable=["batch_stats"])[0], lin.apply(lv, x, train=True)

  z, logits = run(pv, lv, x)
  # A last BN without affine parameters standardises every output unit over the batch.
  np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(z.var(0), 1.0, rtol=1e-3)
  assert logits.shape == (4, 10)
  np.testing.assert_array_equal(logits, 0.0)


def test_wide_resnet_forward_and_momentum():
  x = _normal(2, 16, 16, 3)
  wrn = wide_resnet.WideResNet(depth=10, widen_factor=1)
  variables = _init(wrn, x)
  feats, upd = _train_apply(wrn)(variables, x)
  assert feats.shape == (2, 64) and bool(jnp.all(jnp.isfinite(feats)))
  # Momentum 0.999: the first BN's running mean moves by a thousandth of the stem output's mean.
  stem = nn.Conv(16, (3, 3), padding=1).apply({"params": variables["params"]["stem_conv"]}, x)
  np.testing.assert_allclose(upd["batch_stats"]["stage1_block1"]["bn1"]["mean"],
                             1e-3 * stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-8)


_SMALL_VIT = dict(hidden_dim=32, depth=1, num_heads=2, patch_size=4, image_size=16)


@pytest.mark.parametrize("pos_embed", ["learned", "sincos"])
def test_vit_forward_and_resolution_change(pos_embed):
  x = _normal(2, 16, 16, 3)
  model = vit.ViT(pos_embed=pos_embed, **_SMALL_VIT)
  variables = _init(model, x)
  assert ("pos_embed" in variables["params"]) == (pos_embed == "learned")

  @jax.jit
  def run(v, x):
    return (model.apply(v, x, train=False),
            # Other resolutions (multi-crop views) resize learned embeddings; sincos are recomputed.
            model.apply(v, x[:, :8, :12], train=False),
            model.apply(v, x.at[:, -4:, -4:].add(1.0), train=False))

  feats, small, moved = run(variables, x)
  assert feats.shape == (2, 32) and bool(jnp.all(jnp.isfinite(feats)))
  assert small.shape == (2, 32) and bool(jnp.all(jnp.isfinite(small)))
  # The CLS feature attends to every patch, so changing the last patch changes it.
  assert not np.allclose(feats, moved)


def test_vit_sincos_embedding_and_drop_path():
  emb = vit.sincos_pos_embed(2, 3, 8)
  assert emb.shape == (6, 8)
  # Patch (row 1, col 2): [sin(1 w), cos(1 w), sin(2 w), cos(2 w)] with w = (1, 1e-2).
  w = np.array([1.0, 1e-2])
  np.testing.assert_allclose(emb[5], np.concatenate(
      [np.sin(w), np.cos(w), np.sin(2 * w), np.cos(2 * w)]), rtol=1e-6)
  x = _normal(4, 16, 16, 3)
  # Two blocks: the drop rate grows linearly from 0 in the first block to 0.5 in the last.
  drop = vit.ViT(drop_path_rate=0.5, **{**_SMALL_VIT, "depth": 2})
  plain = vit.ViT(**{**_SMALL_VIT, "depth": 2})
  variables = _init(plain, x)  # Same parameters with or without stochastic depth.

  @jax.jit
  def run(v, x):
    return (drop.apply(v, x, train=True, rngs={"dropout": jax.random.key(1, impl="rbg")}),
            drop.apply(v, x, train=False), plain.apply(v, x, train=True))

  dropped, eval_feats, plain_train = run(variables, x)
  assert not np.allclose(dropped, eval_feats)
  np.testing.assert_allclose(eval_feats, plain_train, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,kwargs,shape", [
    ("convnet", {"widths": (8, 16)}, (2, 28, 28, 1)),
    ("resnet18_cifar", {"num_filters": 8, "stage_sizes": (1, 1)}, (2, 16, 16, 3)),
    ("wrn28_2", {"depth": 10, "widen_factor": 1}, (2, 16, 16, 3)),
    ("vit_tiny", {"patch_size": 4, "image_size": 16, "depth": 1}, (2, 16, 16, 3)),
])
def test_bf16_compute(name, kwargs, shape):
  x = _normal(*shape)
  f32 = registry.make_encoder(name, **kwargs)
  bf16 = registry.make_encoder(name, dtype=jnp.bfloat16, **kwargs)
  variables = _init(f32, x)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
  assert jax.tree.structure(variables) == jax.tree.structure(_abstract_init(bf16, shape)[0])

  @jax.jit
  def run(v, x):
    feats, upd = bf16.apply(v, x, train=True, mutable=["batch_stats"])
    return feats, upd, bf16.apply(v, x, train=False), f32.apply(v, x, train=False)

  feats, upd, got, want = run(variables, x)
  assert feats.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(feats)))
  # Running statistics stay float32 (BatchNorm computes in float32).
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(upd))
  got = got.astype(jnp.float32)
  assert float(jnp.linalg.norm(got - want) / jnp.linalg.norm(want)) < 5e-2


def test_sharded_batch_norm_uses_global_batch():
  assert jax.device_count() == 8
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  model = resnet.ResNet18(stem="cifar", num_filters=4, stage_sizes=(1, 1))
  # Each device's shard has a different mean, so per-shard statistics would differ from global ones.
  x = _normal(16, 8, 8, 3) + jnp.repeat(jnp.arange(8.0), 2)[:, None, None, None]
  variables = _init(model, x)
  forward = _train_apply(model)
  want_feats, want_upd = forward(variables, x)
  x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  v_repl = jax.device_put(variables, NamedSharding(mesh, P()))
  feats, upd = forward(v_repl, x_sharded)
  assert len(feats.sharding.device_set) == 8
  np.testing.assert_allclose(feats, want_feats, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               upd["batch_stats"], want_upd["batch_stats"])
  # And both are global statistics: the stem BN's running mean is 0.1 x the mean over all 16.
  stem = nn.Conv(4, (3, 3), padding=1, use_bias=False).apply(
      {"params": variables["params"]["stem_conv"]}, x)
  np.testing.assert_allclose(upd["batch_stats"]["stem_bn"]["mean"],
                             0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
  shard0 = 0.1 * stem[:2].mean(axis=(0, 1, 2))
  assert not np.allclose(upd["batch_stats"]["stem_bn"]["mean"], shard0, rtol=1e-2)


def test_errors():
  with pytest.raises(ValueError, match="Unknown encoder 'resnet19' in model.encoder; did you mean 'resnet18_cifar'"):
    registry.make_encoder("resnet19")
  x = jnp.ones((1, 8, 8, 3))
  with pytest.raises(ValueError, match="stem must be one of"):
    resnet.ResNet18(stem="tiny").init(KEY, x, train=False)
  with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
    wide_resnet.WideResNet(depth=27).init(KEY, x, train=False)
  with pytest.raises(ValueError, match="divisible by patch_size=16"):
    vit.vit_tiny(16).init(KEY, jnp.ones((1, 20, 20, 3)), train=False)
  with pytest.raises(ValueError, match="add a channel axis"):
    convnet_lib.ConvNet().init(KEY, jnp.ones((1, 28, 28)), train=False)


@pytest.mark.parametrize("shape, use_scale, use_bias, dtype", [
    ((16, 5, 5, 6), True, True, jnp.float32), ((32, 7), False, False, jnp.float32),
    ((8, 4, 4, 3), True, True, jnp.bfloat16)])
def test_batch_norm_equals_flax_batch_norm_with_its_closed_form_gradient(shape, use_scale, use_bias, dtype):
  """`heads.BatchNorm` (closed-form backward pass) against `nn.BatchNorm(use_fast_variance=False)`: the same
  variables, output and running statistics, and the same gradients of x, scale and bias up to float rounding;
  also through the running statistics (their cotangents are part of the closed form)."""
  from ssl_jax.models.heads import BatchNorm
  x = (jax.random.normal(jax.random.key(0), shape) * 3.0 + 1.5).astype(dtype)
  w = jax.random.normal(jax.random.key(1), shape)
  ours = BatchNorm(use_running_average=False, momentum=0.9, use_scale=use_scale, use_bias=use_bias)
  flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.9, use_scale=use_scale, use_bias=use_bias,
                         use_fast_variance=False, dtype=jnp.float32)
  v_ours, v_flax = ours.init(jax.random.key(2), x), flax_bn.init(jax.random.key(2), x)
  assert jax.tree.map(jnp.shape, v_ours) == jax.tree.map(jnp.shape, v_flax)
  c = shape[-1]
  params = {k: jnp.linspace(0.5, 1.5, c) if k == "scale" else jnp.linspace(-1.0, 1.0, c)
            for k in v_flax.get("params", {})}
  stats = {"mean": jnp.linspace(-0.1, 0.1, c), "var": jnp.linspace(0.9, 1.1, c)}

  def loss(module):
    def f(params, x):
      y, upd = module.apply({"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
      s = upd["batch_stats"]
      return jnp.sum(jnp.sin(y) * w) + jnp.sum(jnp.cos(s["mean"]) + s["var"] ** 2), (y, s)
    return jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(params, x)

  (l_ours, (y_ours, s_ours)), g_ours = loss(ours)
  (l_flax, (y_flax, s_flax)), g_flax = loss(flax_bn)
  assert y_ours.dtype == y_flax.dtype == jnp.float32
  np.testing.assert_allclose(y_ours, y_flax, rtol=1e-6, atol=1e-6)
  for k in ("mean", "var"):
    np.testing.assert_allclose(s_ours[k], s_flax[k], rtol=1e-6, atol=1e-7)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_flax)):
    assert a.dtype == b.dtype
    scale = float(jnp.max(jnp.abs(b.astype(jnp.float32))))
    np.testing.assert_allclose(a.astype(jnp.float32), b.astype(jnp.float32), rtol=1e-5, atol=2e-6 * scale
                               if dtype == jnp.float32 else 1e-2 * scale)
  # Inference mode normalises with the running statistics, as flax does.
  np.testing.assert_allclose(
      BatchNorm(use_running_average=True, use_scale=use_scale, use_bias=use_bias).apply(
          {"params": params, "batch_stats": stats}, x),
      nn.BatchNorm(use_running_average=True, use_scale=use_scale, use_bias=use_bias, dtype=jnp.float32).apply(
          {"params": params, "batch_stats": stats}, x), rtol=1e-6, atol=1e-6)


def test_conv_net_pools_before_relu_as_it_would_after():
  """`ConvNet` applies ReLU after the max-pool; relu(pool(x)) and pool(relu(x)) agree in value and gradient,
  ties among the maxima and all-negative windows included."""
  from ssl_jax.models.convnet import max_pool_2x2
  x = jnp.round(jax.random.normal(jax.random.key(0), (4, 6, 6, 3)) * 2.0) / 2.0  # many exact ties
  w = jax.random.normal(jax.random.key(1), (4, 3, 3, 3))
  f_new = lambda x: jnp.sum(jax.nn.relu(max_pool_2x2(x)) * w)
  f_old = lambda x: jnp.sum(max_pool_2x2(jax.nn.relu(x)) * w)
  assert float(f_new(x)) == float(f_old(x))
  np.testing.assert_array_equal(jax.grad(f_new)(x), jax.grad(f_old)(x))
