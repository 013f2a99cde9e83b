"""Every CIFAR-10 config (the published recipes, for a GPU or TPU) works with the real `tfds.load` path.

This machine has neither CIFAR-10 nor an accelerator, so TFDS is mocked (`tfds.testing.mock_data`: random
images of CIFAR-10's shapes through the real loading code). Fast: every CIFAR-10 config loads and validates
(`tests/train/test_config.py`), and SimCLR's recipe traces. Slow (`make test-slow`, tens of seconds each):
every config's stream loads and its method's `init` and `step` trace on a batch of the configured shapes and
model; and two real training steps of each config, checkpointed, at a batch of 16.
"""

import functools
import glob
import json
import os

import jax
import numpy as np
import pytest

from ssl_jax.train import config as config_lib
from ssl_jax.train import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CIFAR_CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "*", "*_cifar10.py")))


def _mocked(num_examples):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.testing.mock_data(num_examples=num_examples)


def _config(path: str, **overrides):
  config = config_lib.load_config(os.path.join(ROOT, path))
  assert config.data.name == "cifar10", f"{path} is named *_cifar10.py but trains on {config.data.name}"
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  config_lib.validate(config)
  return config


def test_there_are_cifar_configs():
  assert "configs/ssl/simclr_cifar10.py" in CIFAR_CONFIGS


@pytest.mark.parametrize("path", [pytest.param(p, marks=() if p == "configs/ssl/simclr_cifar10.py" else pytest.mark.slow)
                                  for p in CIFAR_CONFIGS])
def test_cifar_config_loads_its_data_and_traces(path):
  """The config's stream, init and step at the configured batch size and model, traced abstractly."""
  config = _config(path)
  with _mocked(num_examples=max(1024, 16 * config.batch_size)):  # room for mu x batch_size unlabelled
    plan = trainer.preflight(config)
    batch = trainer.load_stream(plan).global_batch(0)
  state = jax.eval_shape(functools.partial(plan.module.init, plan.method), jax.random.PRNGKey(0))
  state, metrics = jax.eval_shape(functools.partial(plan.module.step, plan.method), state, batch)
  assert "train/loss" in metrics and metrics["train/loss"].shape == ()
  assert jax.tree.leaves(state.params) or config.method == "label_propagation", "the method trains parameters"


@pytest.mark.slow
@pytest.mark.parametrize("path", CIFAR_CONFIGS)
def test_cifar_config_runs_two_steps(path, tmp_path):
  if "label_propagation" in path:
    pytest.skip("label propagation sizes its graph by CIFAR-10's 50,000 images, which mocked TFDS does not have")
  if "beit" in path:
    pytest.skip("BEiT's phase 2 loads the tokenizer of its phase-1 run (init_from), which this test has not trained")
  config = _config(path, total_steps=2, batch_size=16, checkpoint_every_steps=2, log_every_steps=1,
                   eval_every_steps=0, **{"eval.final": False})
  workdir = str(tmp_path / "run")
  with _mocked(num_examples=512):
    results = trainer.train_and_evaluate(config, workdir)
  assert results["steps"] == 2
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    losses = [r["train/loss"] for r in map(json.loads, f) if "train/loss" in r]
  assert len(losses) == 2 and np.all(np.isfinite(losses)), losses
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))
