"""Config files, command-line overrides and validation: every mistake is one clear sentence."""

import os

import pytest

from ssl_jax.train import config as config_lib
from ssl_jax.train.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(ROOT, "configs"))
           for f in fs if f.endswith(".py")]


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_loads_and_validates(path):
  config = config_lib.load_config(path)
  config_lib.validate(config)
  for field in ("seed", "total_steps", "batch_size", "checkpoint_every_steps", "eval_every_steps",
                "log_every_steps"):
    assert field in config
  with open(path) as f:
    doc = f.read()
  assert "python -m ssl_jax.main --config=configs/" in doc
  assert "Result when we ran it" in doc


def test_overrides_parse_by_field_type():
  c = config_lib.base_config()
  config_lib.apply_overrides(c, ["--config.total_steps=200", "--config.seed=1", "--config.optim.lr=0.5",
                                 "--config.views.flip_p=0", "--config.model.widths=(8, 16)",
                                 "--config.data.name=digits"])
  assert c.total_steps == 200 and c.seed == 1 and c.optim.lr == 0.5 and c.views.flip_p == 0.0
  assert tuple(c.model.widths) == (8, 16) and c.data.name == "digits"


def test_unknown_field_suggests_the_close_one():
  with pytest.raises(UserError, match=r"unknown config field `total_step`; did you mean `total_steps`\?"):
    config_lib.apply_overrides(config_lib.base_config(), ["--config.total_step=3"])
  with pytest.raises(UserError, match=r"unknown config field `optim.learning_rate`"):
    config_lib.apply_overrides(config_lib.base_config(), ["--config.optim.learning_rate=3"])


def test_wrong_type_names_field_and_type():
  with pytest.raises(UserError, match=r"`batch_size` is a int \(now 256\); 'big' is not a valid int"):
    config_lib.apply_overrides(config_lib.base_config(), ["--config.batch_size=big"])
  with pytest.raises(UserError, match=r"`eval.final` is a bool"):
    config_lib.apply_overrides(config_lib.base_config(), ["--config.eval.final=maybe"])
  with pytest.raises(UserError, match=r"is a block of fields"):
    config_lib.apply_overrides(config_lib.base_config(), ["--config.optim=adam"])


def test_config_file_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    config_lib.load_config(str(tmp_path / "nope.py"))
  bad = tmp_path / "bad.py"
  bad.write_text("x = 1\n")
  with pytest.raises(UserError, match="no get_config"):
    config_lib.load_config(str(bad))
  extra = tmp_path / "extra.py"
  extra.write_text("from ssl_jax.train.config import base_config\n"
                   "def get_config():\n  c = base_config()\n  c.optim.lrr = 1.0\n  return c\n")
  with pytest.raises(UserError, match=r"unknown config field `optim.lrr`; did you mean `optim.lr`\?"):
    config_lib.load_config(str(extra))


def test_validate_rejects_bad_values():
  c = config_lib.base_config()
  c.total_steps = 0
  with pytest.raises(UserError, match="`total_steps` must be positive"):
    config_lib.validate(c)
  c = config_lib.base_config()
  c.model.dtype = "float16"
  with pytest.raises(UserError, match="model.dtype"):
    config_lib.validate(c)
