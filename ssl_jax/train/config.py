"""Experiment configs: Python files with `get_config()`, command-line overrides, and validation.

Every experiment starts from `base_config()`, which declares every field the trainer reads, so an override
of a field that does not exist is an error, not a silently ignored typo. Overrides look like absl's:
`--config.total_steps=200 --config.optim.lr=0.5 --config.data.name=digits`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import os
from typing import Any

import ml_collections

from ssl_jax.train.errors import UserError

DTYPES = ("float32", "bfloat16")


def base_config() -> ml_collections.ConfigDict:
  """Every field the trainer reads, with defaults; experiments change values, never add fields."""
  c = ml_collections.ConfigDict()
  c.method = "simclr"
  c.seed = 0
  c.total_steps = 1000
  c.batch_size = 256              # global, over all devices and hosts
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 500        # kNN monitor on a subset; 0 disables
  c.log_every_steps = 50
  c.keep_checkpoints = 2

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"   # a TFDS catalog name, or "fashion_mnist"/"mnist" IDX folders, or "digits"
  c.data.data_dir = ""            # folder of MNIST-format IDX files; "" means the default for the dataset
  c.data.tfds_data_dir = ""       # TFDS data_dir; "" means TFDS's default (~/tensorflow_datasets)

  c.views = ml_collections.ConfigDict()  # SimCLR augmentations (ssl_jax.data.views), made on device in the step
  c.views.crop_scale_min = 0.08   # RandomResizedCrop area range
  c.views.crop_scale_max = 1.0
  c.views.flip_p = 0.5
  c.views.brightness = 0.4        # colour jitter strengths; saturation and hue act on RGB images only
  c.views.contrast = 0.4
  c.views.saturation = 0.4
  c.views.hue = 0.1
  c.views.jitter_p = 0.8
  c.views.grayscale_p = 0.2       # RGB only
  c.views.blur_p = 0.0
  c.views.solarize_p = 0.0

  c.model = ml_collections.ConfigDict()
  c.model.encoder = "convnet"     # a name in ssl_jax.models.ENCODERS
  c.model.widths = (16, 32, 64, 128)  # ConvNet only
  c.model.proj_hidden_dim = 512
  c.model.proj_dim = 128
  c.model.proj_layers = 2
  c.model.dtype = "float32"       # compute dtype; parameters stay float32

  c.simclr = ml_collections.ConfigDict()
  c.simclr.temperature = 0.2
  c.simclr.block_size = 0         # 0: dense NT-Xent; N: blockwise log-sum-exp over N columns

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "lars"           # sgd | adamw | lars
  c.optim.lr = 0.3                # for a batch of 256 when scale_lr_with_batch
  c.optim.scale_lr_with_batch = True
  c.optim.warmup_steps = 100
  c.optim.end_lr_factor = 0.0
  c.optim.weight_decay = 1e-6
  c.optim.momentum = 0.9
  c.optim.nesterov = False
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.trust_coefficient = 0.001
  c.optim.grad_clip_norm = 0.0    # 0 disables

  c.eval = ml_collections.ConfigDict()
  c.eval.online_probe = True      # linear head on stop_gradient(features), trained alongside (labels reach only it)
  c.eval.final = True             # linear probe + kNN at the end of training
  c.eval.pixel_probe = True       # the same linear probe on raw pixels, as a baseline
  c.eval.monitor_examples = 10000  # training examples used by the kNN monitor during training
  c.eval.knn_k = 20
  c.eval.knn_temperature = 0.07
  c.eval.probe_epochs = 20        # linear probe passes over the training features
  c.eval.feature_batch_size = 1000

  c.distributed = ml_collections.ConfigDict()
  c.distributed.initialize = "auto"  # auto: when the environment asks for it (SLURM, TPU pod, JAX_COORDINATOR_ADDRESS)
  c.distributed.coordinator_address = ""
  c.distributed.num_processes = 0
  c.distributed.process_id = -1
  return c


def load_config(path: str) -> ml_collections.ConfigDict:
  """Import `path` and call its `get_config()`."""
  if not os.path.isfile(path):
    raise UserError(f"Config file {path!r} does not exist: pass --config=configs/<family>/<experiment>.py.")
  spec = importlib.util.spec_from_file_location("_ssl_jax_config", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # a config file is user code: report where it broke, in one line
    raise UserError(f"Config file {path} failed to load ({type(e).__name__}: {e}); fix the file.") from e
  if not hasattr(module, "get_config"):
    raise UserError(f"Config file {path} has no get_config() function; define one that returns a ConfigDict.")
  config = module.get_config()
  check_fields(config, base_config(), where=path)
  return config


def check_fields(config, base, *, where: str, prefix: str = "") -> None:
  """Every field of `config` must exist in `base` (and vice versa), with the same kind of value."""
  for key in config.keys():
    name = prefix + key
    if key not in base:
      raise _unknown(name, base, prefix, where)
    value, ref = config[key], base[key]
    if isinstance(ref, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise UserError(f"{where}: config field `{name}` must be a block of fields, got {value!r}.")
      check_fields(value, ref, where=where, prefix=name + ".")
  for key in base.keys():
    if key not in config:
      raise UserError(f"{where}: config field `{prefix + key}` is missing; start the config from "
                      "ssl_jax.train.config.base_config().")


def _unknown(name: str, base, prefix: str, where: str) -> UserError:
  known = [prefix + k for k in base.keys()]
  close = difflib.get_close_matches(name, known, n=1)
  hint = f"did you mean `{close[0]}`?" if close else f"known fields here: {', '.join(known)}."
  return UserError(f"{where}: unknown config field `{name}`; {hint}")


def _parse(name: str, text: str, current: Any) -> Any:
  """Parse an override's text as the type of the field it replaces."""
  kind = type(current).__name__
  try:
    if isinstance(current, bool):
      low = text.lower()
      if low not in ("true", "false", "1", "0"):
        raise ValueError
      return low in ("true", "1")
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, str):
      return text
    if isinstance(current, (tuple, list)):
      value = ast.literal_eval(text)
      value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
      if current and not all(isinstance(v, type(current[0])) or
                             (isinstance(current[0], float) and isinstance(v, int)) for v in value):
        raise ValueError
      return type(current)(value)
  except (ValueError, SyntaxError):
    pass
  else:
    raise UserError(f"Config field `{name}` has unsupported type {kind}.")
  raise UserError(f"Config field `{name}` is a {kind} (now {current!r}); {text!r} is not a valid {kind}.")


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> ml_collections.ConfigDict:
  """Apply `--config.a.b=value` overrides; an unknown field or a value of the wrong type is a UserError."""
  base = base_config()
  for item in overrides:
    if not item.startswith("--config.") or "=" not in item:
      raise UserError(f"Cannot read the argument {item!r}: overrides look like --config.total_steps=200.")
    dotted, text = item[len("--config."):].split("=", 1)
    node, ref, parts = config, base, dotted.split(".")
    for i, part in enumerate(parts):
      prefix = ".".join(parts[:i]) + ("." if i else "")
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise _unknown(dotted, ref if isinstance(ref, ml_collections.ConfigDict) else base, prefix,
                       "command line")
      if i < len(parts) - 1:
        node, ref = node[part], ref[part]
    current = node[parts[-1]]
    if isinstance(current, ml_collections.ConfigDict):
      raise UserError(f"Config field `{dotted}` is a block of fields; set one of its fields, e.g. "
                      f"--config.{dotted}.{next(iter(current.keys()))}=...")
    node[parts[-1]] = _parse(dotted, text, current)
  return config


def validate(config) -> None:
  """Checks that need no devices or data: positive counts, known names, consistent intervals."""
  for field in ("total_steps", "batch_size", "checkpoint_every_steps", "log_every_steps"):
    if config[field] <= 0:
      raise UserError(f"Config field `{field}` must be positive, got {config[field]}.")
  if config.eval_every_steps < 0:
    raise UserError(f"Config field `eval_every_steps` must be >= 0 (0 disables), got {config.eval_every_steps}.")
  if config.model.dtype not in DTYPES:
    raise UserError(f"Config field `model.dtype` must be one of {', '.join(DTYPES)}, got {config.model.dtype!r}.")
  if config.simclr.temperature <= 0:
    raise UserError(f"Config field `simclr.temperature` must be positive, got {config.simclr.temperature}.")
  if not 0 < config.views.crop_scale_min <= config.views.crop_scale_max <= 1:
    raise UserError("Config fields `views.crop_scale_min` <= `views.crop_scale_max` must lie in (0, 1], got "
                    f"{config.views.crop_scale_min} and {config.views.crop_scale_max}.")
  if config.distributed.initialize not in ("auto", "yes", "no"):
    raise UserError("Config field `distributed.initialize` must be auto, yes or no, got "
                    f"{config.distributed.initialize!r}.")


def to_json(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)
