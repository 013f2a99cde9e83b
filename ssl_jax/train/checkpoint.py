"""Orbax checkpoints of a method state, behind one small class.

Checkpoints live in `<workdir>/checkpoints/<step>/`. Saving is asynchronous (training continues while the
files are written) and each save is committed atomically by orbax, so a run killed at any moment leaves the
previous checkpoints intact. Restoring takes an abstract state (shapes, dtypes and shardings, from
`jax.eval_shape`) and returns arrays already placed with those shardings.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Save and restore the whole train state (parameters, optimizer, statistics, RNG, step)."""

  def __init__(self, workdir: str, *, keep: int = 2):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, *, wait: bool = False) -> None:
    """Save `state` as step `step` (no-op if that step is already saved)."""
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    if wait:
      self._manager.wait_until_finished()

  def restore(self, abstract_state: Any, step: int | None = None) -> Any:
    """The state saved at `step` (default: the latest), with the shardings of `abstract_state`."""
    step = self.latest_step() if step is None else step
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(state: Any) -> Any:
  """Shapes, dtypes and shardings of `state`, for `Checkpointer.restore`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
