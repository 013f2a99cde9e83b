"""What every reader of datasets shares: TensorFlow set up for input only, and the missing-data error.

`datasets` (loading) and `idx` (the offline TFDS builders) both import from here, never from each other's
top level, so neither module is part of an import cycle.
"""

from __future__ import annotations

import functools
from typing import Any


class DatasetNotFoundError(FileNotFoundError):
  """A dataset's files are missing or could not be downloaded; the message says how to get them."""


@functools.cache
def configure_tensorflow() -> Any:
  """Import TensorFlow for input pipelines only: hide GPUs from it, so it never takes their memory.

  Returns the `tensorflow` module. Called by every function that needs TF; safe to call again.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):
    pass  # TF was already initialised by the caller; its device choice stands.
  return tf
