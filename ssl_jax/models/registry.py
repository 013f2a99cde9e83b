"""Encoders by name, for configs: `make_encoder(config.model.encoder, **overrides)`."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable

import flax.linen as nn

from ssl_jax.models.convnet import ConvNet
from ssl_jax.models.resnet import ResNet18, ResNet50
from ssl_jax.models.small import MLP, LeNetMIL
from ssl_jax.models.vit import vit_micro, vit_mini, vit_small, vit_tiny
from ssl_jax.models.wide_resnet import WRN28_2

ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "convnet": ConvNet,
    "mlp": MLP,
    "lenet_mil": LeNetMIL,
    "lenet_mil_small": functools.partial(LeNetMIL, widths=(8, 16), features=128),
    "resnet18_cifar": functools.partial(ResNet18, stem="cifar"),
    "resnet18_imagenet": functools.partial(ResNet18, stem="imagenet"),
    "resnet50_cifar": functools.partial(ResNet50, stem="cifar"),
    "resnet50_imagenet": functools.partial(ResNet50, stem="imagenet"),
    "wrn28_2": WRN28_2,
    "vit_micro": vit_micro,
    "vit_mini": vit_mini,
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
}


def make_encoder(name: str, **kwargs) -> nn.Module:
  """The encoder registered as `name`, built with `kwargs` overriding its fields (e.g. dtype).

  Every encoder maps images [b, h, w, c] to features [b, encoder.feature_dim] with
  `encoder.apply(variables, x, train=...)`. `mlp`, `lenet_mil` and `lenet_mil_small` have no BatchNorm (for MIL).
  """
  if name not in ENCODERS:
    close = difflib.get_close_matches(name, list(ENCODERS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"Unknown encoder {name!r} in model.encoder; {hint}known encoders: "
                     f"{', '.join(sorted(ENCODERS))}.")
  return ENCODERS[name](**kwargs)
