"""Shared command-line plumbing: quiet libraries, parse `--flag=value` arguments, print errors as one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def quiet_libraries() -> None:
  """Keep TensorFlow, absl and orbax to warnings, so the console shows our progress and results."""
  import logging

  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.WARNING)
  absl_logging.use_python_logging()
  for name in ("absl", "orbax", "jax._src.xla_bridge", "tensorflow"):
    logging.getLogger(name).setLevel(logging.ERROR)
  try:
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")  # TF only reads data; leave accelerators to JAX
    tf.get_logger().setLevel("ERROR")
  except ImportError:
    pass
  try:
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()
  except ImportError:
    pass


def split_args(argv: list[str], *, known: tuple[str, ...], usage: str) -> tuple[dict[str, str], list[str]]:
  """`--name=value` for `known` names, and the `--config.*` overrides, in order."""
  values, overrides = {}, []
  for arg in argv:
    if arg in ("-h", "--help"):
      print(usage)
      sys.exit(0)
    if arg.startswith("--config.") and "=" in arg:
      overrides.append(arg)
      continue
    name, sep, value = arg.partition("=")
    if not sep or name[2:] not in known or not name.startswith("--"):
      from ssl_jax.train.errors import UserError
      raise UserError(f"Cannot read the argument {arg!r}; usage: {usage.splitlines()[0]}")
    values[name[2:]] = value
  return values, overrides


def run_main(body: Callable[[], int]) -> None:
  """Run `body`; a user's mistake prints one sentence on stderr and exits 2, with no traceback."""
  from ssl_jax.train.errors import UserError
  try:
    code = body()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  except FileNotFoundError as e:  # e.g. data.DatasetNotFoundError: its message is written for users
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  except KeyboardInterrupt:
    print("error: interrupted before training started; nothing to save.", file=sys.stderr, flush=True)
    sys.exit(130)
  sys.exit(code or 0)
