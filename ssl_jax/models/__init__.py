"""Encoders and heads (Flax Linen).

Every encoder maps normalised images [b, h, w, c] to pooled features [b, feature_dim] with
`__call__(x, *, train)`, has `dtype` (compute) and `param_dtype` fields, and a `feature_dim`
property available before initialisation. BatchNorm statistics live in the "batch_stats" collection.
"""

from __future__ import annotations

from ssl_jax.models.convnet import ConvNet
from ssl_jax.models.heads import LinearHead, MLPHead, batch_norm
from ssl_jax.models.mil import AttentionMIL, GatedAttention
from ssl_jax.models.registry import ENCODERS, make_encoder
from ssl_jax.models.small import MLP, LeNetMIL
from ssl_jax.models.resnet import BasicBlock, Bottleneck, ResNet, ResNet18, ResNet34, ResNet50
from ssl_jax.models.vit import ViT, vit_micro, vit_mini, vit_small, vit_tiny
from ssl_jax.models.wide_resnet import WRN28_2, WRN28_8, WideResNet

__all__ = [
    "ENCODERS", "AttentionMIL", "BasicBlock", "Bottleneck", "ConvNet", "GatedAttention",
    "LeNetMIL", "LinearHead", "MLP", "MLPHead", "ResNet", "ResNet18", "ResNet34", "ResNet50", "ViT", "WRN28_2",
    "WRN28_8", "WideResNet", "batch_norm", "make_encoder", "vit_micro", "vit_mini", "vit_small", "vit_tiny",
]
