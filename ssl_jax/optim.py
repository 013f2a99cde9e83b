"""Optimizers and learning-rate schedules from the `optim` block of a config.

`optim.name` picks SGD (momentum, Nesterov optional), AdamW, Adam with coupled L2 weight decay, or LARS;
`optim.lr` is the base rate for a batch of 256, scaled linearly with the global batch (`lr * batch_size / 256`,
Goyal et al. 2017) when `optim.scale_lr_with_batch` is set, as SimCLR and BYOL do. The schedule is linear
warm-up then cosine decay to `optim.end_lr_factor * peak`.

Weight decay, two kinds:

* `adamw` (Loshchilov & Hutter 2019) decays the weights outside Adam's normalisation,
  w <- w - lr (m_hat / (sqrt(v_hat) + eps) + wd w), so the per-step shrink is lr * wd;
* `adam` is PyTorch's `torch.optim.Adam(weight_decay=wd)`: coupled L2, g <- g + wd w added to the gradient
  *before* the moments, so once the data gradient is ~0 the decay term is normalised by Adam and moves the
  weights at the full rate lr. With lr 5e-4 and wd 1e-4 (Ilse et al.'s MNIST-bags recipe) `adamw` shrinks
  by 5e-8 per step, nothing, while `adam` is a real regulariser.

SGD, AdamW and LARS skip biases and normalisation scales (every parameter with fewer than two dimensions,
`decay_mask`), as is usual for them. `adam` decays *every* parameter, biases included, exactly as PyTorch
does for a parameter group given as `model.parameters()` (what the reference code of Ilse et al. passes):
it exists to reproduce PyTorch recipes, so it keeps their choice.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from ssl_jax.errors import UserError

OPTIMIZERS = ("sgd", "adamw", "adam", "lars")


def decay_mask(params: Any) -> Any:
  """True for weights that get weight decay: kernels and embeddings (ndim >= 2), not biases or BN scales."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def peak_learning_rate(optim, batch_size: int) -> float:
  """Base rate, scaled linearly with the global batch when asked."""
  return optim.lr * batch_size / 256 if optim.scale_lr_with_batch else optim.lr


def make_schedule(optim, *, batch_size: int, total_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 over `optim.warmup_steps`, then cosine decay to `end_lr_factor * peak`."""
  peak = peak_learning_rate(optim, batch_size)
  warmup = min(int(optim.warmup_steps), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=peak * optim.end_lr_factor)


def make_optimizer(optim, *, batch_size: int, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optax transformation and its schedule (the schedule is also logged as `train/lr`)."""
  schedule = make_schedule(optim, batch_size=batch_size, total_steps=total_steps)
  if optim.name == "sgd":
    tx = optax.chain(
        optax.add_decayed_weights(optim.weight_decay, mask=decay_mask),
        optax.sgd(schedule, momentum=optim.momentum or None, nesterov=optim.nesterov))
  elif optim.name == "adamw":
    tx = optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay,
                     mask=decay_mask)
  elif optim.name == "adam":
    # torch.optim.Adam(lr, betas=(b1, b2), eps=1e-8, weight_decay=wd): L2 on every parameter, then Adam.
    tx = optax.chain(
        optax.add_decayed_weights(optim.weight_decay, mask=None),
        optax.scale_by_adam(b1=optim.b1, b2=optim.b2, eps=1e-8),
        optax.scale_by_learning_rate(schedule))
  elif optim.name == "lars":
    tx = optax.lars(schedule, weight_decay=optim.weight_decay, weight_decay_mask=decay_mask,
                    trust_coefficient=optim.trust_coefficient, trust_ratio_mask=decay_mask,
                    momentum=optim.momentum, nesterov=optim.nesterov)
  else:
    raise UserError(f"Unknown optimizer optim.name={optim.name!r}: use one of {', '.join(OPTIMIZERS)}.")
  if optim.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), tx)
  return tx, schedule
