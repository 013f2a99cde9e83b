"""Experiment configs: `get_config()` files, the common base, method-owned sections, checks.

A config file starts from `base_config(method)`: the fields every run has (seed, steps, batch, data,
model.encoder, optim, eval, checkpointing, distributed, init_from) plus the method's own section, which
the method declares with its defaults (`METHODS[method].config()`, e.g. `config.byol.tau_base`). The file
changes values, never adds fields; `check_fields` refuses one that does not exist, with a "did you mean"
hint. Files may take an argument, big_vision's parametrised form:

    def get_config(arg=None):                      # --config=configs/semi/fixmatch_fashion_mnist.py:labels=40
      arg = parse_arg(arg, labels=250)
      c = base_config("fixmatch")
      c.fixmatch.labels = arg.labels

The command line (`ssl_jax.cli`) loads files with `ml_collections.config_flags` (locked), so
`--config.optim.lr=0.5` overrides are typed and unknown fields are refused.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import os
from typing import Any

import ml_collections

from ssl_jax.errors import UserError

DTYPES = ("float32", "bfloat16")
INIT_PARAMS = ("encoder", "all")

# Names people type for a field, mapped to the field's real name (for the "did you mean" hint).
ALIASES = {"learning_rate": "lr", "lr_rate": "lr", "base_lr": "lr", "wd": "weight_decay",
           "steps": "total_steps", "num_steps": "total_steps", "train_steps": "total_steps",
           "bs": "batch_size", "batch": "batch_size", "warmup": "warmup_steps", "optimizer": "name",
           "dataset": "name", "backbone": "encoder", "arch": "encoder", "tau": "tau_base"}


def _methods() -> dict[str, Any]:
  from ssl_jax.methods import METHODS  # pylint: disable=g-import-not-at-top
  return METHODS


def common_config() -> ml_collections.ConfigDict:
  """What every run has, whatever its method; `base_config(method)` adds the method's section."""
  c = ml_collections.ConfigDict()
  c.method = "simclr"
  c.seed = 0
  c.total_steps = 1000
  c.batch_size = 256              # global, over all devices and hosts (labelled batch, bags, P x K)
  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 2
  c.eval_every_steps = 500        # the suites' cheap monitors; 0 disables
  c.log_every_steps = 50
  c.init_from = ""                # workdir of another run: its latest checkpoint initialises this run
  c.init_params = "encoder"       # what init_from loads: "encoder" (and its BatchNorm) or "all" parts

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"   # TFDS catalog name, fashion_mnist/mnist IDX folders, digits, digits28[_mnist_layout], mnist5k, image_folder
  c.data.data_dir = ""            # folder of MNIST-format IDX files, or of images (image_folder); "" = default
  c.data.tfds_data_dir = ""       # TFDS data_dir; "" means TFDS's default (~/tensorflow_datasets)
  c.data.image_size = 0           # image_folder: resize to S x S; streamed varying sizes: shorter side S, centre crop
  c.data.streamed = "auto"        # auto | yes | no: read images by index from disk rather than holding them in memory
  c.data.channels = 0             # image_folder only: 1 (grayscale) or 3 (RGB); 0 decides from the images
  c.data.subset = ""              # label-free methods: train on the images of split SEED@LABELS and UNLABELLED others
                                  # only, "SEED@LABELS+UNLABELLED" (the 5,000 + 20,000 of baseline_vs_ssl); "" = all

  c.model = ml_collections.ConfigDict()
  c.model.encoder = "convnet"     # a name in ssl_jax.models.ENCODERS
  c.model.widths = (16, 32, 64, 128)  # convnet stage widths; mlp hidden widths
  c.model.patch_size = 16         # vit_* only; must divide the image side
  c.model.dtype = "float32"       # compute dtype; parameters stay float32

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "lars"           # sgd | adamw | adam (coupled L2, as PyTorch) | lars
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
  c.eval.final = True             # run the method's suites at the end of training
  c.eval.online_probe = True      # self-supervised: a linear head on stop_gradient(features), labels reach only it
  c.eval.pixel_baseline = True    # score raw pixels the same way (linear probe, retrieval) as a reference
  c.eval.monitor_examples = 10000  # examples the monitors use during training
  c.eval.knn_k = 20
  c.eval.knn_temperature = 0.07
  c.eval.probe_epochs = 20        # linear probe passes over the training features
  c.eval.probe_min_steps = 1000   # ... and at least this many optimizer steps (more passes on small sets)
  c.eval.batch_size = 1000        # rows per prediction call during evaluation (instances, for bags)
  c.eval.train_examples = 0       # the final suites' training features: a seeded subset of this size; 0 = all

  c.distributed = ml_collections.ConfigDict()
  c.distributed.initialize = "auto"  # auto: when the environment asks for it (SLURM, TPU pod, JAX_COORDINATOR_ADDRESS)
  c.distributed.coordinator_address = ""
  c.distributed.num_processes = 0
  c.distributed.process_id = -1
  # CPU only: XLA devices per process. XLA:CPU runs each convolution on one thread, so one device per core with the
  # batch split over them (data parallel, as on GPUs) uses every core. 0 = one per core, as many as divide the
  # batch (several processes: 1 each). A device count in XLA_FLAGS or JAX_NUM_CPU_DEVICES wins over this field.
  c.distributed.cpu_devices = 0
  return c


def base_config(method: str = "simclr") -> ml_collections.ConfigDict:
  """The common fields and the section of `method` (from `METHODS[method].config()`), with defaults."""
  methods = _methods()
  if method not in methods:
    raise UserError(f"Unknown method {method!r}{_hint(method, list(methods))}; known methods: "
                    f"{', '.join(methods)}.")
  c = common_config()
  c.method = method
  c[method] = methods[method].config()
  return c


class Arg(dict):
  """The parsed argument of a parametrised config file; fields read as attributes (`arg.labels`)."""

  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError as e:
      raise AttributeError(name) from e


def parse_arg(arg: str | None, **defaults) -> Arg:
  """Parse a config file's argument "k1=v1,k2=v2" into `defaults` updated with typed values.

  Every key must be one of `defaults`; a value takes the type of its default (bool, int, float, str).
  """
  out = Arg(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or key not in defaults:
      raise UserError(f"Cannot read the config argument {item!r}: it takes {', '.join(f'{k}=...' for k in defaults)}"
                      f" (e.g. --config=FILE.py:{next(iter(defaults), 'key')}=...).")
    out[key] = _parse(f"config argument `{key}`", text.strip(), defaults[key])
  return out


def load_config(path: str) -> ml_collections.ConfigDict:
  """Import a config file (`FILE.py` or `FILE.py:arg`), call its `get_config`, check its fields."""
  config = call_get_config(path)
  check_fields(config, base_config(_method_of(config, path)), where=path.partition(":")[0])
  return config


def call_get_config(path: str) -> ml_collections.ConfigDict:
  """What `get_config()` (or `get_config(arg)`) of the file returns, as a ConfigDict; errors as sentences."""
  file, _, arg = path.partition(":")
  if not os.path.isfile(file):
    raise UserError(f"Config file {file!r} does not exist: pass --config=configs/<family>/<method>_<dataset>.py.")
  spec = importlib.util.spec_from_file_location("_ssl_jax_config", file)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
      raise UserError(f"Config file {file} has no get_config() function; define one that returns "
                      "base_config(method) with your changes.")
    config = module.get_config(arg) if arg else module.get_config()
  except UserError:
    raise
  except Exception as e:  # a config file is user code: report where it broke, in one line
    raise UserError(f"Config file {file} failed to load ({type(e).__name__}: {_first_line(e)}); fix the "
                    "file.") from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserError(f"get_config() of {file} returned a {type(config).__name__}, not an "
                    "ml_collections.ConfigDict; return base_config(method) with your changes.")
  return config


def _method_of(config, where: str) -> str:
  method = config.get("method") if isinstance(config, ml_collections.ConfigDict) else None
  if not isinstance(method, str):
    raise UserError(f"{where}: the config has no `method` field; start it from base_config(method).")
  methods = _methods()
  if method not in methods:
    raise UserError(f"{where}: unknown method {method!r}{_hint(method, list(methods))}; known methods: "
                    f"{', '.join(methods)}.")
  return method


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0][:300] if text else type(e).__name__


def closest(name: str, known: list[str], prefix: str = "") -> str | None:
  """The known name closest to `name` (typos, and the usual other names of a field), or None."""
  # Compare the last names only: a shared "optim." would make every field of a block look close.
  leaf = lambda k: k[len(prefix):] if k.startswith(prefix) else k
  pool = {leaf(k): k for k in known}
  for alias, real in ALIASES.items():
    if prefix + real in known:
      pool.setdefault(alias, prefix + real)
  close = difflib.get_close_matches(leaf(name), list(pool), n=1, cutoff=0.6)
  return pool[close[0]] if close else None


def _hint(name: str, known: list[str], prefix: str = "") -> str:
  """" (did you mean `x`?)" for the closest known name, or ""."""
  close = closest(name, known, prefix)
  return f" (did you mean `{close}`?)" if close else ""


def unknown_field(name: str, base, where: str) -> UserError:
  """The error for a field `name` (dotted) that `base` does not have, with the closest known field."""
  parts = name.split(".")
  node, prefix = base, ""
  for part in parts[:-1]:
    if isinstance(node, ml_collections.ConfigDict) and part in node:
      node, prefix = node[part], prefix + part + "."
    else:
      break
  if not isinstance(node, ml_collections.ConfigDict):
    return UserError(f"{where}: config field `{prefix[:-1]}` is a value ({node!r}), not a block of fields, so "
                     f"`{name}` does not exist; set `{prefix[:-1]}` itself.")
  known = [prefix + k for k in node.keys()]
  close = closest(name, known, prefix)
  if close:
    return UserError(f"{where}: unknown config field `{name}`; did you mean `{close}`?")
  return UserError(f"{where}: unknown config field `{name}`; known fields here: {', '.join(known)}.")


def check_fields(config, base, *, where: str, prefix: str = "") -> None:
  """Every field of `config` must exist in `base` (and vice versa), blocks where `base` has blocks."""
  for key in config.keys():
    name = prefix + key
    if key not in base:
      raise unknown_field(name, _root(base, prefix), where)
    value, ref = config[key], base[key]
    if isinstance(ref, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise UserError(f"{where}: config field `{name}` must be a block of fields, got {value!r}.")
      check_fields(value, ref, where=where, prefix=name + ".")
  for key in base.keys():
    if key not in config:
      raise UserError(f"{where}: config field `{prefix + key}` is missing; start the config from "
                      f"ssl_jax.train.config.base_config({config.get('method', '...')!r}).")


def _root(base, prefix: str):
  """`base` is the block at `prefix`; rebuild a tree whose path `prefix` leads to it (for hints)."""
  node = base
  for part in reversed([p for p in prefix.split(".") if p]):
    node = ml_collections.ConfigDict({part: node})
  return node


def _parse(name: str, text: str, current: Any) -> Any:
  """Parse `text` as the type of `current` (bool, int, float, str, tuple)."""
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
      return type(current)(value)
  except (ValueError, SyntaxError):
    pass
  else:
    raise UserError(f"{name} has unsupported type {kind}.")
  a = "an" if kind[0] in "aeiou" else "a"
  raise UserError(f"{name} is {a} {kind} (now {current!r}); {text!r} is not a valid {kind}.")


def override(config, dotted: str, text: str) -> None:
  """Set `config.<dotted>` from the text of a `--config.<dotted>=<text>` flag, parsed as the field's type."""
  *parents, name = dotted.split(".")
  node = config
  for part in parents:
    node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
  if not isinstance(node, ml_collections.ConfigDict) or name not in node:
    raise unknown_field(dotted, config, "config")
  node[name] = _parse(f"Config field `{dotted}`", text, node[name])


def from_command(command: list[str], *, cwd: str = ".") -> ml_collections.ConfigDict:
  """The config a `python -m ssl_jax.main` command line trains: its `--config=FILE[:arg]` (relative to `cwd`), then
  its `--config.<dotted>=<text>` overrides in order. Experiment scripts compare it with a run already in a workdir."""
  files = [flag.split("=", 1)[1] for flag in command if flag.startswith("--config=")]
  if not files:
    raise UserError("The command names no --config=FILE; pass --config=configs/<family>/<method>_<dataset>.py.")
  config = load_config(os.path.join(cwd, files[-1]))
  for flag in command:
    if flag.startswith("--config."):
      dotted, _, text = flag[len("--config."):].partition("=")
      override(config, dotted, text)
  return config


def overrides_for(method: str, overrides: list[str]) -> list[str]:
  """The `KEY=VALUE` overrides (an experiment script's `--set`) that apply to a run of `method`: those of its own
  config section (`byol.tau_base=0.98`) and those outside every method's section (`total_steps=600`)."""
  from ssl_jax.methods import METHODS  # pylint: disable=g-import-not-at-top
  section = lambda text: text.split("=", 1)[0].split(".", 1)[0]
  return [o for o in overrides if section(o) not in METHODS or section(o) == method]


def unused_overrides(methods: list[str], overrides: list[str]) -> list[str]:
  """The overrides of a method's section that no run of `methods` reads (`overrides_for` drops them for all)."""
  return [o for o in overrides if not any(overrides_for(m, [o]) for m in methods)]


def validate(config) -> None:
  """Checks that need no devices or data: known method and fields, positive counts, known names."""
  check_fields(config, base_config(_method_of(config, "config")), where="config")
  for field in ("total_steps", "batch_size", "checkpoint_every_steps", "log_every_steps", "keep_checkpoints"):
    if config[field] <= 0:
      raise UserError(f"Config field `{field}` must be positive, got {config[field]}.")
  if config.eval_every_steps < 0:
    raise UserError(f"Config field `eval_every_steps` must be >= 0 (0 disables), got {config.eval_every_steps}.")
  if config.model.dtype not in DTYPES:
    raise UserError(f"Config field `model.dtype` must be one of {', '.join(DTYPES)}, got {config.model.dtype!r}.")
  from ssl_jax.models import ENCODERS  # pylint: disable=g-import-not-at-top
  if config.model.encoder not in ENCODERS:
    raise UserError(f"Unknown encoder {config.model.encoder!r} in model.encoder"
                    f"{_hint(config.model.encoder, list(ENCODERS))}; known encoders: {', '.join(ENCODERS)}.")
  from ssl_jax.optim import OPTIMIZERS  # pylint: disable=g-import-not-at-top
  if config.optim.name not in OPTIMIZERS:
    raise UserError(f"Unknown optimizer optim.name={config.optim.name!r}; use one of {', '.join(OPTIMIZERS)}.")
  if config.init_params not in INIT_PARAMS:
    raise UserError(f"Config field `init_params` must be one of {', '.join(INIT_PARAMS)}, got "
                    f"{config.init_params!r}.")
  if config.distributed.initialize not in ("auto", "yes", "no"):
    raise UserError("Config field `distributed.initialize` must be auto, yes or no, got "
                    f"{config.distributed.initialize!r}.")
  if config.eval.batch_size <= 0 or config.eval.monitor_examples <= 0:
    raise UserError("Config fields `eval.batch_size` and `eval.monitor_examples` must be positive.")
  if config.eval.train_examples < 0:
    raise UserError(f"Config field `eval.train_examples` must be >= 0 (0 = the whole train split), got "
                    f"{config.eval.train_examples}.")
  from ssl_jax.data.streamed import STREAMED  # pylint: disable=g-import-not-at-top
  if config.data.streamed not in STREAMED:
    raise UserError(f"Config field `data.streamed` must be one of {', '.join(STREAMED)}, got {config.data.streamed!r}.")
  if config.data.image_size < 0 or config.data.channels not in (0, 1, 3):
    raise UserError(f"Config fields `data.image_size` must be >= 0 (0 keeps the images' size) and `data.channels` "
                    f"0, 1 or 3; got {config.data.image_size} and {config.data.channels}.")


def to_json(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def from_json(text: str, *, where: str) -> ml_collections.ConfigDict:
  """A config written by `to_json`, with the types of `base_config` (tuples back from lists)."""
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise UserError(f"{where} is not valid JSON ({e.msg}); it was damaged, restore it from a copy.") from e
  if not isinstance(data, dict):
    raise UserError(f"{where} does not hold a config; restore it from a copy.")
  config = base_config(_method_of(ml_collections.ConfigDict({"method": data.get("method")}), where))

  def fill(node, values, prefix=""):
    for key, value in values.items():
      if key not in node:
        raise unknown_field(prefix + key, config, where)
      if isinstance(node[key], ml_collections.ConfigDict):
        fill(node[key], value, prefix + key + ".")
      elif isinstance(node[key], tuple):
        node[key] = tuple(value)
      elif isinstance(node[key], float) and isinstance(value, int):
        node[key] = float(value)
      else:
        node[key] = value

  fill(config, data)
  return config


# Fields a resumed run may change: how it is watched and where things are, not what it computes.
RESUMABLE_CHANGES = ("checkpoint_every_steps", "keep_checkpoints", "eval_every_steps", "log_every_steps",
                     "eval.", "distributed.", "data.data_dir", "data.tfds_data_dir", "init_from", "init_params")


def flatten(config, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(flatten(value, prefix + key + "."))
    else:
      out[prefix + key] = tuple(value) if isinstance(value, list) else value
  return out


def training_changes(saved, current) -> list[str]:
  """Fields that define the training (everything outside `RESUMABLE_CHANGES`) and differ, as "k: a -> b"."""
  a, b = flatten(saved), flatten(current)
  changes = []
  for key in sorted(set(a) | set(b)):
    if any(key == f or (f.endswith(".") and key.startswith(f)) for f in RESUMABLE_CHANGES):
      continue
    if a.get(key) != b.get(key):
      changes.append(f"{key}={a.get(key)!r} in the workdir, {b.get(key)!r} now")
  return changes
