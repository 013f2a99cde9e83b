"""`--config.init_from=<workdir>`: a run starts from another run's parameters, exactly."""

import jax
import numpy as np
import pytest

from ssl_jax.errors import UserError
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A finished tiny SimCLR run and its final state."""
  workdir = str(tmp_path_factory.mktemp("simclr"))
  config = tiny_config("simclr", **{"eval.final": False, "eval_every_steps": 0})
  trainer.train_and_evaluate(config, workdir)
  plan = trainer.preflight(config)
  from ssl_jax.train.checkpoint import Checkpointer
  checkpointer = Checkpointer(workdir)
  state, step = checkpointer.restore_latest(plan.abstract_state)
  checkpointer.close()
  assert step == 12
  return workdir, jax.device_get(state)


def _fresh_state(config):
  plan = trainer.preflight(config)
  from ssl_jax.train.checkpoint import Checkpointer
  import tempfile
  with tempfile.TemporaryDirectory() as empty:
    checkpointer = Checkpointer(empty)
    state, restored = trainer.create_or_restore(plan, checkpointer)
    checkpointer.close()
  assert restored is None
  return jax.device_get(state)


def _equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_encoder_of_a_self_supervised_run_starts_a_semi_supervised_one(pretrained):
  workdir, source = pretrained
  config = tiny_config("fixmatch", **{"init_from": workdir, "model.widths": (8, 16)})
  state = _fresh_state(config)
  _equal(state.params["encoder"], source.params["encoder"])
  _equal(state.batch_stats["encoder"], source.batch_stats["encoder"])
  _equal(state.extra["ema"]["params"]["encoder"], source.params["encoder"])  # the EMA model starts there too
  scratch = _fresh_state(tiny_config("fixmatch"))
  _equal(state.params["classifier"], scratch.params["classifier"])  # the new head is fresh


def test_all_parts_of_the_same_method(pretrained):
  workdir, source = pretrained
  state = _fresh_state(tiny_config("simclr", init_from=workdir, init_params="all"))
  _equal(state.params, source.params)
  _equal(state.batch_stats, source.batch_stats)
  assert int(state.step) == 0, "a new run starts at step 0 with a fresh optimizer"


def test_mismatched_models_and_missing_runs_are_one_sentence(pretrained, tmp_path):
  workdir, _ = pretrained
  with pytest.raises(ValueError, match="do not match this model"):
    _fresh_state(tiny_config("fixmatch", init_from=workdir, **{"model.widths": (8, 32)}))
  with pytest.raises(ValueError, match="has a part `(probe|projector)` that this method does not have"):
    _fresh_state(tiny_config("fixmatch", init_from=workdir, init_params="all"))
  with pytest.raises(UserError, match="is not a training run"):
    _fresh_state(tiny_config("fixmatch", init_from=str(tmp_path)))


def test_finetuning_starts_from_the_other_runs_parameters_exactly(pretrained):
  workdir, source = pretrained
  state = _fresh_state(tiny_config("finetune", init_from=workdir))
  _equal(state.params["encoder"], source.params["encoder"])
  _equal(state.batch_stats["encoder"], source.batch_stats["encoder"])
  _equal(state.extra["ema"]["params"]["encoder"], source.params["encoder"])
  scratch = _fresh_state(tiny_config("finetune"))
  _equal(state.params["classifier"], scratch.params["classifier"])  # the new head is fresh


def test_the_two_phase_pair_of_configs_share_the_encoder():
  """configs/semi/fixmatch_from_simclr_fashion_mnist.py loads the encoder that the SimCLR config trains."""
  import os  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  phase1 = config_lib.load_config(os.path.join(root, "configs/ssl/simclr_fashion_mnist.py"))
  phase2 = config_lib.load_config(os.path.join(root, "configs/semi/fixmatch_from_simclr_fashion_mnist.py"))
  assert phase2.init_from == "workdirs/simclr_fashion_mnist" and phase2.init_params == "encoder"
  assert (phase1.model.encoder, tuple(phase1.model.widths), phase1.data.name) == (
      phase2.model.encoder, tuple(phase2.model.widths), phase2.data.name)
  scratch = config_lib.load_config(os.path.join(root, "configs/semi/fixmatch_from_simclr_fashion_mnist.py:pretrained="))
  assert scratch.init_from == ""
