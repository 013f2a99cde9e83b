"""Online linear probe: a live measure of representation quality during self-supervised training.

As in BYOL (deepmind-research/byol) and solo-learn, a linear classifier is trained alongside the
encoder on `stop_gradient(features)`. How a method attaches it:

  * its parameter tree has a "probe" subtree next to the encoder's, e.g.
    `params = {"encoder": ..., "projector": ..., "probe": OnlineProbe(C).init(key, feats)["params"]}`,
    and the same optimizer updates the whole tree (one `tx.update` per step);
  * inside the step, `logits = OnlineProbe(C).apply({"params": params["probe"]}, features)`; the
    module applies `jax.lax.stop_gradient` to its input itself, so the probe's loss moves only the
    probe's weights;
  * the step minimises `ssl_loss + probe_loss`, where `probe_loss, top1 = probe_loss_and_accuracy(
    logits, labels)`, and reports `train/probe_top1`.

Labels are used ONLY by the probe. Because of the stop_gradient, the encoder's gradient is exactly
the gradient of the self-supervised loss: the representation never sees a label, and the probe
accuracy is an honest (slightly pessimistic, since the features move under it) estimate of the
offline linear-probe accuracy.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.losses._utils import check_ndim, pmean, shape_error


class OnlineProbe(nn.Module):
  """Linear classifier on stop-gradient features: [b, d] -> logits [b, num_classes].

  Attributes:
    num_classes: number of classes C.
  """
  num_classes: int

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    features = jax.lax.stop_gradient(features)
    return nn.Dense(self.num_classes, name="head")(features.astype(jnp.float32))


def probe_loss_and_accuracy(
    logits: jax.Array,
    labels: jax.Array,
    *,
    axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Mean softmax cross-entropy of the probe and its top-1 accuracy on the batch.

  loss = mean_i -log softmax(logits_i)[y_i],   top1 = mean_i [argmax logits_i = y_i].

  Args:
    logits: probe outputs, shape [b, C] (per device when `axis_name` is set).
    labels: integer class ids, shape [b].
    axis_name: mesh axis to average over inside `shard_map`; None under plain `jit`.
  Returns:
    (loss, top1), two float32 scalars. Only `loss` carries a gradient; `top1` is a metric.
  """
  check_ndim("probe_loss_and_accuracy", 2, logits=logits)
  if jnp.ndim(labels) != 1 or labels.shape[0] != logits.shape[0]:
    raise shape_error("probe_loss_and_accuracy", "`labels` must be 1-D with one class id per row of `logits`",
                      logits=logits, labels=labels)
  logits = logits.astype(jnp.float32)
  loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  top1 = jax.lax.stop_gradient(jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)))
  return pmean(loss, axis_name), pmean(top1, axis_name)
