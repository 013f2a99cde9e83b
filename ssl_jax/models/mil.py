"""Attention-based deep multiple-instance learning (Ilse, Tomczak & Welling 2018), Flax Linen.

`GatedAttention` scores every instance of a padded bag; `AttentionMIL` is the whole bag classifier
(instance encoder -> attention scorer -> `ssl_jax.losses.mil.attention_pool` -> linear head).
Bags of different sizes are batched padded, with a boolean mask [bags, max_instances] (True = real).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.losses._utils import shape_error
from ssl_jax.losses.mil import attention_pool


class GatedAttention(nn.Module):
  """Attention scorer of attention-based MIL: one logit per instance.

    gated:      s_i = w^T ( tanh(V h_i) * sigmoid(U h_i) )
    not gated:  s_i = w^T tanh(V h_i)

  V and U are dense layers with bias (as in the authors' code); w has no bias, since a constant shift
  of all scores does not change the softmax over a bag. Softmax and masking are left to
  `attention_pool`.

  Attributes:
    hidden_dim: width of V and U (L in the paper's notation is the input width, D this one).
    gated: use the gating branch sigmoid(U h); False gives the plain tanh attention.
    dropout: dropout rate on the hidden units tanh(V h) (* sigmoid(U h)) before w; 0 disables.
  Call args:
    features: instance embeddings h, [bags, n, d] (any leading dimensions work).
    deterministic: no dropout (evaluation); with dropout > 0 and False, a "dropout" rng is needed.
  Returns:
    Scores of shape [bags, n] (features.shape without the last axis).
  References: Ilse et al. 2018, arXiv:1802.04712, eq. (8) and (9).
  """
  hidden_dim: int = 128
  gated: bool = True
  dropout: float = 0.0

  @nn.compact
  def __call__(self, features: jax.Array, *, deterministic: bool = True) -> jax.Array:
    a = jnp.tanh(nn.Dense(self.hidden_dim, name="V")(features))
    if self.gated:
      a = a * nn.sigmoid(nn.Dense(self.hidden_dim, name="U")(features))
    a = nn.Dropout(self.dropout)(a, deterministic=deterministic or not self.dropout)
    return nn.Dense(1, use_bias=False, name="w")(a)[..., 0]


class AttentionMIL(nn.Module):
  """Attention-MIL bag classifier: encode instances, score them, attention-pool, classify the bag.

    h_i = f(x_i),   s = GatedAttention(h),   (z, a) = attention_pool(h, s, mask),   logits = W z + c

  Padded instances are replaced by zeros before the encoder sees them, so NaN/inf padding never
  reaches any value or gradient; their attention weight is exactly 0. A bag with no real instance
  pools to z = 0, so its logits are the classifier bias.

  Attributes:
    num_classes: number of bag logits (1 for the binary bag label of the paper, with a sigmoid loss).
    encoder: instance encoder, called once as `encoder(x)` on all instances flattened to
      [bags * n, *instance_shape] and returning [bags * n, d]. Avoid BatchNorm in it (padded
      instances would enter the batch statistics); LayerNorm/GroupNorm are fine. None uses an MLP on
      the flattened instance with `hidden` widths and ReLU.
    hidden: widths of the default MLP encoder (ignored when `encoder` is given).
    attention_dim: hidden width of the attention scorer.
    gated: gated attention (True) or plain tanh attention (False).
  Call args:
    instances: [bags, n, *instance_shape], padded along n.
    mask: boolean [bags, n], True for a real instance.
  Returns:
    (bag_logits [bags, num_classes], weights [bags, n]), the weights being the attention of each
    instance (0 on padding), usable for instance-level interpretation.
  References: Ilse et al. 2018, arXiv:1802.04712.
  """
  num_classes: int
  encoder: nn.Module | None = None
  hidden: Sequence[int] = (256, 128)
  attention_dim: int = 128
  gated: bool = True

  @nn.compact
  def __call__(self, instances: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    if jnp.ndim(instances) < 3:
      raise shape_error("AttentionMIL", "`instances` must have shape [bags, n, *instance_shape] "
                        "(at least 3 dimensions)", instances=instances, mask=mask)
    if tuple(jnp.shape(mask)) != tuple(jnp.shape(instances)[:2]):
      raise shape_error("AttentionMIL", "`mask` must have shape [bags, n] equal to the first two "
                        "dimensions of `instances`", instances=instances, mask=mask)
    bags, n = instances.shape[:2]
    m = jnp.asarray(mask).astype(bool)
    x = jnp.where(m.reshape(m.shape + (1,) * (instances.ndim - 2)), instances, 0)
    x = x.reshape((bags * n,) + instances.shape[2:])
    if self.encoder is not None:
      h = self.encoder(x)
    else:
      h = x.reshape(bags * n, -1)
      for i, width in enumerate(self.hidden):
        h = nn.relu(nn.Dense(width, name=f"encoder_{i}")(h))
    h = h.reshape(bags, n, -1)
    scores = GatedAttention(self.attention_dim, self.gated, name="attention")(h)
    pooled, weights = attention_pool(h, scores, m)
    logits = nn.Dense(self.num_classes, name="classifier")(pooled)
    return logits, weights
