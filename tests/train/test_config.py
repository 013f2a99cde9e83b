"""Config files, the method-owned sections, parametrised files, overrides and validation."""

import os

import ml_collections
import pytest

from ssl_jax import cli
from ssl_jax.errors import UserError
from ssl_jax.methods import METHODS
from ssl_jax.train import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(os.path.relpath(os.path.join(dp, f), ROOT)
                 for dp, _, fs in os.walk(os.path.join(ROOT, "configs")) for f in fs if f.endswith(".py"))


@pytest.mark.parametrize("path", CONFIGS)
def test_every_config_loads_validates_and_says_how_it_ran(path):
  config = config_lib.load_config(os.path.join(ROOT, path))
  config_lib.validate(config)
  family, name = path.split(os.sep)[1:]
  assert family in ("ssl", "semi", "mil", "metric", "transfer")
  assert name.startswith(config.method + "_"), "configs are named <method>_<dataset>.py"
  assert METHODS[config.method].__name__.split(".")[-2] == family, "a config lives in its method's family"
  with open(os.path.join(ROOT, path)) as f:
    doc = f.read()
  assert f"python -m ssl_jax.main --config={path}" in doc
  assert "Result when we ran it" in doc and "RESULT_PENDING" not in doc


def test_the_base_holds_only_what_every_run_has():
  """A method's fields live in its own section, never in the common base."""
  common = config_lib.common_config()
  assert set(common) == {"method", "seed", "total_steps", "batch_size", "checkpoint_every_steps",
                         "keep_checkpoints", "eval_every_steps", "log_every_steps", "init_from", "init_params",
                         "data", "model", "optim", "eval", "distributed"}
  for name, module in METHODS.items():
    c = config_lib.base_config(name)
    assert set(c) == set(common) | {name}
    assert isinstance(c[name], ml_collections.ConfigDict) and c[name].to_dict() == module.config().to_dict()


def test_parametrised_config_file():
  path = os.path.join(ROOT, "configs", "semi", "fixmatch_fashion_mnist.py")
  assert config_lib.load_config(path).fixmatch.labels == 250
  c = config_lib.load_config(path + ":labels=40,label_seed=3")
  assert (c.fixmatch.labels, c.fixmatch.label_seed) == (40, 3)
  with pytest.raises(UserError, match="labels=... is an int|is an int"):
    config_lib.load_config(path + ":labels=many")


def test_parse_arg_types_and_errors():
  arg = config_lib.parse_arg("labels=40,mining=batch_semi_hard,fast=true,lr=0.5",
                             labels=250, mining="batch_hard", fast=False, lr=1.0)
  assert arg == {"labels": 40, "mining": "batch_semi_hard", "fast": True, "lr": 0.5} and arg.labels == 40
  with pytest.raises(UserError, match="Cannot read the config argument 'x=1'"):
    config_lib.parse_arg("x=1", labels=250)


def test_command_line_overrides_parse_by_field_type():
  from ssl_jax import main
  argv = [f"--config={os.path.join(ROOT, 'configs', 'ssl', 'simclr_digits_tiny.py')}", "--workdir=/tmp/unused",
          "--config.total_steps=200", "--config.optim.lr=0.5", "--config.simclr.views.flip_p=0",
          "--config.model.widths=(8, 16)", "--config.simclr.views.crop_scale=(0.3, 1.0)",
          "--config.eval.final=false"]

  captured = {}

  def fake_train(config, workdir):
    captured["config"] = config
  import ssl_jax.train.trainer as trainer_lib
  original = trainer_lib.train_and_evaluate
  trainer_lib.train_and_evaluate = fake_train
  try:
    assert main.main(argv) == 0
  finally:
    trainer_lib.train_and_evaluate = original
  c = captured["config"]
  assert c.total_steps == 200 and c.optim.lr == 0.5 and c.simclr.views.flip_p == 0.0 and c.eval.final is False
  assert tuple(c.model.widths) == (8, 16) and tuple(c.simclr.views.crop_scale) == (0.3, 1.0)
  with pytest.raises(AttributeError):  # locked: a typo in code cannot add a field either
    c.optim.lrr = 1.0


def test_unknown_field_hints():
  base = config_lib.base_config("simclr")
  for typo, hint in (("optim.learnig_rate", "optim.lr"), ("optim.learning_rate", "optim.lr"),
                     ("total_step", "total_steps"), ("model.backbone", "model.encoder"),
                     ("simclr.temprature", "simclr.temperature")):
    with pytest.raises(UserError, match=f"unknown config field `{typo}`; did you mean `{hint}`"):
      cli.check_overrides(base, [f"--config.{typo}=1"])
  with pytest.raises(UserError, match="`optim.foo`; known fields here: optim.b1"):
    cli.check_overrides(base, ["--config.optim.foo=1"])
  for where in (lambda dotted: cli.check_overrides(base, [f"--config.{dotted}=1"]),
                lambda dotted: config_lib.override(base, dotted, "1")):
    with pytest.raises(UserError, match="field `seed` is a value \\(0\\), not a block of fields, so `seed.x` does"):
      where("seed.x")


def test_from_command_builds_the_config_a_command_line_trains():
  command = ["python", "-m", "ssl_jax.main", "--config=configs/semi/fixmatch_fashion_mnist.py:labels=40,label_seed=3",
             "--workdir=w", "--config.seed=3", "--config.total_steps=10", "--config.model.widths=(8,16)",
             "--config.total_steps=12"]  # the last of two overrides wins, as on the command line
  c = config_lib.from_command(command, cwd=ROOT)
  assert (c.fixmatch.labels, c.fixmatch.label_seed, c.seed, c.total_steps) == (40, 3, 3, 12)
  assert tuple(c.model.widths) == (8, 16)
  with pytest.raises(UserError, match="names no --config=FILE"):
    config_lib.from_command(["python", "-m", "ssl_jax.main", "--config.seed=1"])
  with pytest.raises(UserError, match="did you mean `total_steps`"):
    config_lib.from_command([*command, "--config.total_step=1"], cwd=ROOT)


def test_config_json_round_trip_keeps_types():
  c = config_lib.base_config("byol")
  back = config_lib.from_json(config_lib.to_json(c), where="config.json")
  assert back.to_dict() == c.to_dict() and isinstance(back.model.widths, tuple)
  assert config_lib.training_changes(c, back) == []
  back.byol.tau_base = 0.9
  back.eval.knn_k = 3  # only how the run is watched: not a training change
  assert config_lib.training_changes(c, back) == ["byol.tau_base=0.99 in the workdir, 0.9 now"]


def test_validate_rejects_bad_values():
  c = config_lib.base_config()
  c.total_steps = 0
  with pytest.raises(UserError, match="`total_steps` must be positive"):
    config_lib.validate(c)
  c = config_lib.base_config()
  c.model.dtype = "float16"
  with pytest.raises(UserError, match="model.dtype"):
    config_lib.validate(c)
  c = config_lib.base_config()
  c.init_params = "decoder"
  with pytest.raises(UserError, match="`init_params` must be one of encoder, all"):
    config_lib.validate(c)


def test_mil_mnist_bags_arguments_set_the_recipe():
  path = os.path.join(ROOT, "configs", "mil", "mil_mnist_bags.py")
  default = config_lib.load_config(path)
  assert (default.optim.name, default.mil.augment_shift, default.batch_size, default.total_steps) == (
      "adamw", 2, 16, 300)
  # Dropout 0.25 in the attention MLP by default, only for the poolings that have one.
  assert default.mil.pooling == "gated_attention" and default.mil.attention_dropout == 0.25
  assert config_lib.load_config(path + ":pooling=attention").mil.attention_dropout == 0.25
  assert config_lib.load_config(path + ":pooling=instance_max").mil.attention_dropout == 0.0
  assert config_lib.load_config(path + ":attention_dropout=0").mil.attention_dropout == 0.0
  c = config_lib.load_config(path + ":optim=adam,shift=0,flip=0.5,attention_dropout=0.25,batch_size=4,steps=1200")
  config_lib.validate(c)
  assert (c.optim.name, c.optim.weight_decay, c.mil.augment_shift, c.mil.augment_flip) == ("adam", 1e-4, 0, 0.5)
  assert (c.mil.attention_dropout, c.batch_size, c.total_steps) == (0.25, 4, 1200)
