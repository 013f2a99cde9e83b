"""The boundary every command shares: flags, quiet libraries, and mistakes as one sentence.

Every command (`ssl_jax.main`, `ssl_jax.evaluate`, and any added later) runs as
`cli.run(main)`: `main(argv) -> exit code`. What `run` guarantees:

* a user's mistake is one line `error: <what is wrong and how to fix it>` on stderr and exit status 2,
  never a traceback. A mistake is a `UserError`, an absl flag error, or a `ValueError`, `TypeError`,
  `KeyError` or `FileNotFoundError` that ssl_jax itself raised (its messages are written for users: a
  missing dataset, files that are not IDX files, a shape a model cannot take). An exception raised
  anywhere else is a bug, and keeps its traceback;
* the console shows our progress and results only: TensorFlow, XLA and absl are kept quiet.

Configs come from `ml_collections.config_flags` (`--config=FILE.py[:arg]`, locked, with typed
`--config.a.b=value` overrides); `parse` checks every override against the config first, so an unknown
field or a value of the wrong type is a sentence with a "did you mean" hint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# Before TensorFlow or XLA are imported anywhere: their C++ start-up lines are not for our users, and
# TensorFlow only reads data here (its oneDNN kernels do not matter).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def quiet_libraries() -> None:
  """Keep TensorFlow, absl and orbax to errors, so the console shows our progress and results."""
  import logging

  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.ERROR)
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


def _raised_by_us(e: BaseException) -> bool:
  """Whether the innermost frame that raised `e` is ssl_jax's own code (its messages are for users)."""
  tb = e.__traceback__
  last = None
  while tb is not None:
    last = tb
    tb = tb.tb_next
  return last is not None and os.path.abspath(last.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR)


def user_message(e: BaseException) -> str | None:
  """The sentence to show for `e`, or None when `e` is a bug (it then keeps its traceback)."""
  from absl import flags

  from ssl_jax.errors import UserError
  if isinstance(e, UserError):
    text = str(e)
  elif isinstance(e, flags.Error):
    text = f"{e}; see --help."
  elif isinstance(e, (ValueError, TypeError, KeyError, FileNotFoundError)) and _raised_by_us(e):
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
  else:
    return None
  text = str(text).split("\n-----", 1)[0]  # drop the note JAX appends to errors raised under jit
  return " ".join(text.split())


def run(main: Callable[[list[str]], int], argv: list[str] | None = None) -> None:
  """Run a command's `main(argv)`; exit with its code, or print a user's mistake in one line.

  The status is the error's `exit_code`: 2 for a mistake, 75 for a run stopped by a signal after saving
  its checkpoint (run the same command again to continue).
  """
  argv = sys.argv[1:] if argv is None else argv
  try:
    code = main(argv)
  except KeyboardInterrupt:
    print("error: interrupted before training started; nothing to save.", file=sys.stderr, flush=True)
    sys.exit(130)
  except Exception as e:  # pylint: disable=broad-except
    message = user_message(e)
    if message is None:
      raise
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(getattr(e, "exit_code", 2))
  sys.exit(code or 0)


def _overrides(argv: list[str]) -> list[tuple[str, str]]:
  """The `--config.a.b=value` (or `--config.a.b value`) overrides of `argv`, as (dotted name, text)."""
  out = []
  for i, arg in enumerate(argv):
    if arg.startswith("--config."):
      name, sep, text = arg[len("--config."):].partition("=")
      if not sep:
        text = argv[i + 1] if i + 1 < len(argv) else ""
      out.append((name, text))
  return out


def check_overrides(config, argv: list[str], *, allowed: Callable[[str], bool] | None = None,
                    why: str = "") -> None:
  """Every `--config.` override of `argv` must name a field of `config` and parse as its type."""
  import ml_collections

  from ssl_jax.errors import UserError
  from ssl_jax.train import config as config_lib
  for dotted, text in _overrides(argv):
    node = config
    parts = dotted.split(".")
    for part in parts:
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise config_lib.unknown_field(dotted, config, "command line")
      node = node[part]
    if isinstance(node, ml_collections.ConfigDict):
      raise UserError(f"Config field `{dotted}` is a block of fields; set one of its fields, e.g. "
                      f"--config.{dotted}.{next(iter(node.keys()))}=...")
    if allowed is not None and not allowed(dotted):
      raise UserError(f"--config.{dotted} cannot be changed here{why}.")
    config_lib._parse(f"Config field `{dotted}`", text, node)  # pylint: disable=protected-access


def parse(argv: list[str], *, usage: str, flags_spec: Callable, config_check: Callable | None = None):
  """Parse `argv` with absl into a fresh `FlagValues` defined by `flags_spec(flag_values)`.

  `-h`/`--help` prints `usage` and the flags and exits 0. Before absl reads the overrides,
  `config_check(argv)` may check them (see `check_overrides`), so mistakes become sentences.
  """
  from absl import flags

  from ssl_jax.errors import UserError
  fv = flags.FlagValues()
  flags_spec(fv)
  if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv):
    print(usage)
    print("flags:\n" + "\n".join(f"  --{name}: {fv[name].help}" for name in sorted(fv)))
    sys.exit(0)
  if config_check is not None:
    config_check(argv)
  try:
    positional = fv(["ssl_jax"] + list(argv))[1:]
  except flags.UnrecognizedFlagError as e:
    raise UserError(f"Unknown argument --{e.flagname}; usage: {usage.splitlines()[0]}") from e
  except flags.Error as e:
    raise UserError(f"{' '.join(str(e).split())}; usage: {usage.splitlines()[0]}") from e
  if positional:
    raise UserError(f"Cannot read the argument {positional[0]!r}; usage: {usage.splitlines()[0]}")
  return fv
