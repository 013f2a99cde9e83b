"""Orbax checkpoints of a train state, behind one small class.

Checkpoints live in `<workdir>/checkpoints/<step>/`. Saving is asynchronous (training continues while the
files are written) and each save is committed atomically by orbax, so a run killed at any moment leaves
the previous checkpoints intact. Restoring takes an abstract state (shapes, dtypes and shardings, from
`jax.eval_shape`) and returns arrays already placed with those shardings.

`restore_latest` tells a damaged checkpoint (files cut short by a disk fault or a half-finished copy) from
one written for another model: a damaged one is moved aside to `<workdir>/checkpoints_damaged/<step>/`
(never deleted) with one warning line, and the newest checkpoint that restores is used instead; a
checkpoint of another model is a `UserError` that says so.

On CPU devices each replicated array is written from one device (`_whole_shards_on_cpu`): orbax's default there
cuts it into one slice per device, one XLA compilation per new shape, for nothing, since CPU devices share memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from ssl_jax.errors import UserError


class CheckpointMismatchError(UserError):
  """The checkpoint was written for another model (other parameter names or shapes)."""


def _names(path) -> str:
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
  return "/".join(parts)


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {_names(path): tuple(getattr(leaf, "shape", ())) for path, leaf in leaves}


@contextlib.contextmanager
def _quiet_absl():
  """Orbax logs an ERROR line for every file it cannot parse; we say it once, in our own words."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)


def _whole_shards_on_cpu() -> None:
  """On CPU devices, orbax writes each replicated array from one device rather than in slices from every replica.

  Orbax's default outside GPUs is replica-parallel writing: every replicated array is cut into one slice per
  device, each cut an eager op and each new shape one more XLA compilation (about 80 for a small model's first save
  in a process, most of the save's time). CPU devices share one memory, so the slicing gains nothing; orbax already
  turns it off on GPUs. The files written are the same.
  """
  if jax.default_backend() != "cpu":
    return
  current = ocp.type_handlers.get_type_handler(jax.Array)
  if not getattr(current, "_use_replica_parallel", True):
    return
  handler = ocp.type_handlers.ArrayHandler(
      use_replica_parallel=False, array_metadata_store=getattr(current, "_array_metadata_store", None))
  with _quiet_absl():  # orbax warns that a handler is replaced
    ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)


class Checkpointer:
  """Save and restore the whole train state (parameters, optimizer, statistics, RNG, step)."""

  def __init__(self, workdir: str, *, keep: int = 2):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.damaged_directory = os.path.abspath(os.path.join(workdir, "checkpoints_damaged"))
    self._keep = keep
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    _whole_shards_on_cpu()
    return ocp.CheckpointManager(
        self.directory, item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True,
                                             enable_async_checkpointing=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, *, wait: bool = False) -> bool:
    """Save `state` as step `step`; False (nothing done) when that step is already saved."""
    if step in self._manager.all_steps():
      if wait:
        self._manager.wait_until_finished()
      return False
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    if wait:
      self._manager.wait_until_finished()
    return True

  def restore(self, abstract_state: Any, step: int | None = None) -> Any:
    """The state saved at `step` (default: the latest), with the shardings of `abstract_state`."""
    step = self.latest_step() if step is None else step
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def mismatch(self, step: int, abstract_state: Any) -> str | None:
    """How the checkpoint at `step` differs from `abstract_state` ("" if it is unreadable: damaged)."""
    try:
      with _quiet_absl():
        metadata = self._manager.item_metadata(step)
    except Exception:  # noqa: BLE001 - any failure to read the metadata means damaged files
      return None
    if metadata is None:
      return None
    saved, wanted = _shapes(getattr(metadata, "tree", metadata)), _shapes(abstract_state)
    if saved == wanted:
      return ""
    missing = sorted(set(wanted) - set(saved))
    extra = sorted(set(saved) - set(wanted))
    shape = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
    if shape:
      k = shape[0]
      return f"`{k}` has shape {saved[k]} there and {wanted[k]} here"
    return (f"it has {len(extra)} arrays this model lacks (e.g. `{extra[0]}`)" if extra else
            f"it lacks {len(missing)} arrays of this model (e.g. `{missing[0]}`)")

  def restore_latest(self, abstract_state: Any, *, warn=None,
                     move_damaged: bool = True) -> tuple[Any, int] | None:
    """The newest checkpoint that restores, as (state, step); None when there is none.

    A checkpoint whose files cannot be read is moved to `checkpoints_damaged/` (or, with
    `move_damaged=False`, for readers of another run's workdir, left where it is) with a warning, and the
    one before it is tried; a checkpoint of another model raises `CheckpointMismatchError`.
    """
    warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
    for step in sorted(self._manager.all_steps(), reverse=True):
      difference = self.mismatch(step, abstract_state)
      if difference:
        raise CheckpointMismatchError(
            f"The checkpoint at step {step} in {self.directory} was written for another model ({difference}); "
            "use a new --workdir for a different model, or the config that wrote it.")
      if difference == "":
        try:
          with _quiet_absl():
            return self.restore(abstract_state, step), step
        except Exception as e:  # noqa: BLE001 - the metadata matched, so a failure here is damage
          reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120]}" if str(e).strip() else type(e).__name__
      else:
        reason = "its metadata cannot be read"
      older = [s for s in self._manager.all_steps() if s < step]
      if move_damaged:
        where = f"it was moved to {self._move_aside(step)}"
        then = f"resuming from step {max(older)}" if older else "no older checkpoint is left, so training starts over"
      else:
        where = "it is left in place"
        then = f"using step {max(older)}" if older else "no older checkpoint is left"
      warn(f"warning: the checkpoint at step {step} is damaged ({reason}); {where} and {then}.")
    return None

  def _move_aside(self, step: int) -> str:
    """Move checkpoint `step` into `checkpoints_damaged/` (process 0 only) and reopen the manager."""
    source = os.path.join(self.directory, str(step))
    target = os.path.join(self.damaged_directory, str(step))
    self._manager.close()
    if jax.process_index() == 0:
      os.makedirs(self.damaged_directory, exist_ok=True)
      suffix = 1
      while os.path.exists(target):
        target = os.path.join(self.damaged_directory, f"{step}.{suffix}")
        suffix += 1
      shutil.move(source, target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f"ssl_jax_move_aside_{step}")
    self._manager = self._open()
    return target

  def reached_preemption(self, step: int) -> bool:
    """True on every process at the step they agreed to save at after one of them got SIGTERM.

    JAX's preemption sync (started by `jax.distributed.initialize`) spreads the notice to every host and
    picks a step they all reach; with one process this is always False (the trainer's own signal
    handler covers that case).
    """
    if jax.process_count() == 1:
      return False
    return self._manager.reached_preemption(step)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    try:
      self._manager.wait_until_finished()
    finally:
      self._manager.close()

