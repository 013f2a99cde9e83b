"""Mixed precision for every method: `model.dtype=bfloat16` computes the networks in bfloat16 while the
parameters, the optimizer state and the losses stay float32 (the recipe of big_vision and the Flax examples)."""

import functools

import jax
import jax.numpy as jnp
import pytest

from ssl_jax.train import trainer

from tests.methods.cases import CASES, tiny_config

_HEAVY = ("conv_general_dilated", "dot_general")


def _heavy_ops(jaxpr, out):
  """(primitive name, operand dtypes) of every convolution and matmul, in nested jaxprs too."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in _HEAVY:
      out.append((eqn.primitive.name, tuple(str(v.aval.dtype) for v in eqn.invars)))
    for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else ():
      _heavy_ops(sub, out)
    for p in eqn.params.values():
      for j in (p if isinstance(p, (list, tuple)) else [p]):
        if hasattr(j, "jaxpr") and hasattr(j.jaxpr, "eqns"):
          _heavy_ops(j.jaxpr, out)
        elif hasattr(j, "eqns"):
          _heavy_ops(j, out)
  return out


@pytest.mark.parametrize("method", sorted(CASES))
def test_bfloat16_compute_with_float32_parameters_and_optimizer_state(method):
  config = tiny_config(method, **{"model.dtype": "bfloat16"})
  plan = trainer.preflight(config)
  batch = trainer.load_stream(plan).global_batch(0)
  state = plan.module.init(plan.method, jax.random.key(0))
  step = functools.partial(plan.module.step, plan.method)
  ops = _heavy_ops(jax.make_jaxpr(step)(state, batch).jaxpr, [])
  encoder_ops = [dtypes for name, dtypes in ops if "bfloat16" in dtypes]
  assert encoder_ops, f"{method}: no convolution or matmul runs in bfloat16: {ops[:5]}"
  new_state, metrics = jax.eval_shape(step, state, batch)  # the shapes and dtypes, without compiling
  # Label propagation trains no parameters (its state is the graph and the labels it spreads).
  trees = (state.params, new_state.params, new_state.opt_state) if method != "label_propagation" else ()
  for tree in trees:
    floats = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats), f"{method}: parameters/optimizer not float32"
  assert metrics["train/loss"].dtype == jnp.float32
