"""PyTorch eager SimCLR used by `benchmarks/train_step.py` as the baseline for ssl_jax's training step.

Written the way a PyTorch user would write it without torchvision: batched augmentations on tensors, the
encoders as plain `nn.Module`s, lightly's NT-Xent, `torch.optim.AdamW`. Every piece mirrors the ssl_jax code it
is compared with, so the two sides do the same work per step:

  * views (`ssl_jax.data.views.simclr_views` / `ssl_jax.data.augment`): per example, a random resized crop
    drawn as torchvision draws it (10 candidate boxes, central-crop fallback) and resampled bilinearly
    (`affine_grid` + `grid_sample`; crops are never smaller than the output here, so ssl_jax's antialiasing
    does not change the work), a flip, colour jitter (brightness, contrast, and for RGB saturation and hue in
    HSV) in a random order per example with probability `jitter_p`, random grayscale (RGB only), solarize
    when its probability is positive, then per-channel normalisation;
  * encoders (`ssl_jax.models`): the same layers, widths, BatchNorm placement and pooling, checked to have
    the same number of parameters;
  * projector (`ssl_jax.models.heads.MLPHead`): Linear (no bias) - BN - ReLU per hidden layer, then Linear;
  * loss: lightly's `NTXentLoss` (no memory bank, one process), over both views' projections;
  * optimiser: AdamW with weight decay on weights of two or more dimensions only, linear warm-up then cosine
    learning rate, as `ssl_jax.train.optim` with `optim.name = "adamw"`.
BatchNorm: momentum 0.1 in PyTorch's convention (0.9 in Flax's), epsilon 1e-5, statistics over both views at
once (one forward pass of the concatenated views), as the ssl_jax step does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from _torch_losses import ntxent  # lightly's NT-Xent, shared with benchmarks/losses.py

_GRAY = (0.299, 0.587, 0.114)
BN_MOMENTUM = 0.1  # = 1 - Flax's 0.9
BN_EPS = 1e-5


# ----------------------------------------------------------------------------------------------------------
# Augmentations, batched: [b, C, H, W] float in [0, 1], one random draw per example.
# ----------------------------------------------------------------------------------------------------------


def sample_crops(b: int, height: int, width: int, *, scale: tuple[float, float],
                 ratio: tuple[float, float], attempts: int = 10, generator=None) -> torch.Tensor:
  """[b, 4] boxes (top, left, h, w) in pixels, drawn as torchvision's RandomResizedCrop.get_params."""
  area = height * width * torch.empty(b, attempts).uniform_(scale[0], scale[1], generator=generator)
  log_r = torch.empty(b, attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
  aspect = torch.exp(log_r)
  cw = torch.round(torch.sqrt(area * aspect))
  ch = torch.round(torch.sqrt(area / aspect))
  ok = (cw > 0) & (cw <= width) & (ch > 0) & (ch <= height)
  first = ok.int().argmax(dim=1, keepdim=True)
  found = ok.any(dim=1)
  in_ratio = width / height
  if in_ratio < min(ratio):
    fw, fh = width, round(width / min(ratio))
  elif in_ratio > max(ratio):
    fw, fh = round(height * max(ratio)), height
  else:
    fw, fh = width, height
  cw = torch.where(found, cw.gather(1, first)[:, 0], torch.tensor(float(fw)))
  ch = torch.where(found, ch.gather(1, first)[:, 0], torch.tensor(float(fh)))
  u = torch.rand(b, 2, generator=generator)
  top = torch.where(found, torch.floor(u[:, 0] * (height - ch + 1)), torch.tensor(float((height - fh) // 2)))
  left = torch.where(found, torch.floor(u[:, 1] * (width - cw + 1)), torch.tensor(float((width - fw) // 2)))
  return torch.stack([top, left, ch, cw], dim=1)


def random_resized_crop(x: torch.Tensor, *, scale: tuple[float, float], ratio: tuple[float, float],
                        generator=None) -> torch.Tensor:
  """Crop a random box of each image and resample it bilinearly to the input size."""
  b, c, h, w = x.shape
  box = sample_crops(b, h, w, scale=scale, ratio=ratio, generator=generator)
  top, left, bh, bw = box.unbind(1)
  # Output pixel centre (i + 0.5) / out maps to top + (i + 0.5) * bh / out in input pixels; in the
  # [-1, 1] coordinates of grid_sample (align_corners=False), x_in = (bw / W) x_out + (2 left + bw) / W - 1.
  theta = torch.zeros(b, 2, 3)
  theta[:, 0, 0] = bw / w
  theta[:, 0, 2] = (2 * left + bw) / w - 1
  theta[:, 1, 1] = bh / h
  theta[:, 1, 2] = (2 * top + bh) / h - 1
  grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
  return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_flip(x: torch.Tensor, *, p: float, generator=None) -> torch.Tensor:
  flip = torch.rand(x.shape[0], generator=generator) < p
  return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _gray(x: torch.Tensor) -> torch.Tensor:
  if x.shape[1] == 1:
    return x
  r, g, b = x.unbind(1)
  return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
  ratio = ratio[:, None, None, None]
  return (ratio * a + (1.0 - ratio) * b).clamp_(0.0, 1.0)


def adjust_brightness(x, f):
  return _blend(x, torch.zeros_like(x), f)


def adjust_contrast(x, f):
  return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), f)


def adjust_saturation(x, f):
  return _blend(x, _gray(x), f)


def _rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
  """torchvision.transforms.functional_tensor._rgb2hsv."""
  r, g, b = img.unbind(dim=-3)
  maxc = torch.max(img, dim=-3).values
  minc = torch.min(img, dim=-3).values
  eqc = maxc == minc
  cr = maxc - minc
  ones = torch.ones_like(maxc)
  s = cr / torch.where(eqc, ones, maxc)
  cr_divisor = torch.where(eqc, ones, cr)
  rc = (maxc - r) / cr_divisor
  gc = (maxc - g) / cr_divisor
  bc = (maxc - b) / cr_divisor
  hr = (maxc == r) * (bc - gc)
  hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
  hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
  h = hr + hg + hb
  h = torch.fmod((h / 6.0 + 1.0), 1.0)
  return torch.stack((h, s, maxc), dim=-3)


def _hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
  """torchvision.transforms.functional_tensor._hsv2rgb."""
  h, s, v = img.unbind(dim=-3)
  i = torch.floor(h * 6.0)
  f = (h * 6.0) - i
  i = i.to(dtype=torch.int32)
  p = torch.clamp((v * (1.0 - s)), 0.0, 1.0)
  q = torch.clamp((v * (1.0 - s * f)), 0.0, 1.0)
  t = torch.clamp((v * (1.0 - s * (1.0 - f))), 0.0, 1.0)
  i = i % 6
  mask = i.unsqueeze(dim=-3) == torch.arange(6, device=i.device).view(-1, 1, 1)
  a1 = torch.stack((v, q, p, p, t, v), dim=-3)
  a2 = torch.stack((t, v, v, q, p, p), dim=-3)
  a3 = torch.stack((p, p, t, v, v, q), dim=-3)
  a4 = torch.stack((a1, a2, a3), dim=-4)
  return torch.einsum("...ijk, ...xijk -> ...xjk", mask.to(dtype=img.dtype), a4)


def adjust_hue(x, delta):
  hsv = _rgb_to_hsv(x)
  h = torch.remainder(hsv[:, 0] + delta[:, None, None], 1.0)
  return _hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], dim=1))


def color_jitter(x: torch.Tensor, *, brightness: float, contrast: float, saturation: float, hue: float,
                 p: float, generator=None) -> torch.Tensor:
  """torchvision's ColorJitter per example (own factors and own random order), applied with probability p.

  Each round of the random order applies each op to the examples whose order puts it there, so every
  jittered example gets each op exactly once (no wasted work on the others).
  """
  b = x.shape[0]
  rgb = x.shape[1] == 3
  ops, params = [], []

  def factor(s):
    return torch.empty(b).uniform_(max(0.0, 1.0 - s), 1.0 + s, generator=generator)

  if brightness > 0:
    ops.append(adjust_brightness)
    params.append(factor(brightness))
  if contrast > 0:
    ops.append(adjust_contrast)
    params.append(factor(contrast))
  if saturation > 0 and rgb:
    ops.append(adjust_saturation)
    params.append(factor(saturation))
  if hue > 0 and rgb:
    ops.append(adjust_hue)
    params.append(torch.empty(b).uniform_(-hue, hue, generator=generator))
  if not ops or p <= 0:
    return x
  apply = torch.rand(b, generator=generator) < p
  order = torch.argsort(torch.rand(b, len(ops), generator=generator), dim=1)
  x = x.clone()
  for r in range(len(ops)):
    for k, op in enumerate(ops):
      idx = torch.nonzero(apply & (order[:, r] == k)).squeeze(1)
      if idx.numel():
        x[idx] = op(x[idx], params[k][idx])
  return x


def random_grayscale(x: torch.Tensor, *, p: float, generator=None) -> torch.Tensor:
  if x.shape[1] == 1 or p <= 0:
    return x
  gray = torch.rand(x.shape[0], generator=generator) < p
  return torch.where(gray[:, None, None, None], _gray(x).expand_as(x), x)


def solarize(x: torch.Tensor, *, p: float, threshold: float = 0.5, generator=None) -> torch.Tensor:
  if p <= 0:
    return x
  sol = torch.rand(x.shape[0], generator=generator) < p
  return torch.where(sol[:, None, None, None], torch.where(x < threshold, x, 1.0 - x), x)


class SimCLRViews:
  """Two augmented views of a uint8 batch [b, H, W, C] as normalised float32 [b, C, H, W] tensors."""

  def __init__(self, *, crop_scale: tuple[float, float], crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
               flip_p: float = 0.5, brightness: float, contrast: float, saturation: float, hue: float,
               jitter_p: float, grayscale_p: float, solarize_p: tuple[float, float] = (0.0, 0.0),
               mean: Sequence[float], std: Sequence[float]):
    self.crop_scale, self.crop_ratio, self.flip_p = crop_scale, crop_ratio, flip_p
    self.jitter = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue, p=jitter_p)
    self.grayscale_p, self.solarize_p = grayscale_p, solarize_p
    self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

  def view(self, x: torch.Tensor, solarize_p: float) -> torch.Tensor:
    x = random_resized_crop(x, scale=self.crop_scale, ratio=self.crop_ratio)
    x = random_flip(x, p=self.flip_p)
    x = color_jitter(x, **self.jitter)
    x = random_grayscale(x, p=self.grayscale_p)
    x = solarize(x, p=solarize_p)
    return (x - self.mean) / self.std

  def __call__(self, images_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = images_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    return self.view(x, self.solarize_p[0]), self.view(x, self.solarize_p[1])


# ----------------------------------------------------------------------------------------------------------
# Models.
# ----------------------------------------------------------------------------------------------------------


def _bn(c: int, dims: int = 2) -> nn.Module:
  cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
  return cls(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def _init_convs(module: nn.Module) -> None:
  """He-normal over fan-out for convolutions, as torchvision and `ssl_jax.models` initialise them."""
  for m in module.modules():
    if isinstance(m, nn.Conv2d):
      nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class ConvNet(nn.Module):
  """`ssl_jax.models.ConvNet`: per stage [conv3x3 (no bias)-BN-ReLU] x convs_per_stage, 2x2 max-pool after
  every stage but the last, global mean pooling."""

  def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 128), convs_per_stage: int = 1):
    super().__init__()
    layers = []
    c = in_channels
    for i, w in enumerate(widths):
      for _ in range(convs_per_stage):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), _bn(w), nn.ReLU(inplace=True)]
        c = w
      if i < len(widths) - 1:
        layers.append(nn.MaxPool2d(2))
    self.features = nn.Sequential(*layers)
    self.feature_dim = c
    _init_convs(self)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.features(x).mean(dim=(2, 3))


class BasicBlock(nn.Module):
  """ResNet basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN (scale zero-initialised), plus the identity or
  1x1 conv-BN shortcut, then ReLU."""

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    self.bn1 = _bn(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
    self.bn2 = _bn(cout)
    nn.init.zeros_(self.bn2.weight)
    self.shortcut = nn.Sequential()
    if stride != 1 or cin != cout:
      self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _bn(cout))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu(y + self.shortcut(x))


class ResNet18Cifar(nn.Module):
  """ResNet-18 with the CIFAR stem: 3x3 stride-1 conv, no max-pool; [2, 2, 2, 2] basic blocks; global mean."""

  def __init__(self, in_channels: int = 3, widths: Sequence[int] = (64, 128, 256, 512)):
    super().__init__()
    self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False),
                              _bn(widths[0]), nn.ReLU(inplace=True))
    blocks, c = [], widths[0]
    for i, w in enumerate(widths):
      for j in range(2):
        blocks.append(BasicBlock(c, w, stride=2 if (i > 0 and j == 0) else 1))
        c = w
    self.blocks = nn.Sequential(*blocks)
    self.feature_dim = c
    _init_convs(self)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.blocks(self.stem(x)).mean(dim=(2, 3))


class MLPHead(nn.Module):
  """`ssl_jax.models.heads.MLPHead(hidden_dims, out_dim)`: [Linear(no bias)-BN-ReLU] per hidden, then Linear."""

  def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int):
    super().__init__()
    layers, d = [], in_dim
    for h in hidden_dims:
      layers += [nn.Linear(d, h, bias=False), _bn(h, dims=1), nn.ReLU(inplace=True)]
      d = h
    layers.append(nn.Linear(d, out_dim))
    self.net = nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.net(x)


def warmup_cosine(step: int, *, peak: float, warmup_steps: int, total_steps: int, end_factor: float) -> float:
  """optax.warmup_cosine_decay_schedule(0, peak, warmup_steps, total_steps, end_factor * peak)."""
  if step < warmup_steps:
    return peak * step / max(warmup_steps, 1)
  t = min(step - warmup_steps, total_steps - warmup_steps) / max(total_steps - warmup_steps, 1)
  end = peak * end_factor
  return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t))


class SimCLRStep:
  """One SimCLR update per call on a uint8 batch [b, H, W, C]: two views, one forward of both, NT-Xent, AdamW."""

  def __init__(self, encoder: nn.Module, projector: nn.Module, views: SimCLRViews, *, temperature: float,
               lr: float, weight_decay: float, betas: tuple[float, float], warmup_steps: int, total_steps: int,
               end_lr_factor: float):
    self.encoder, self.projector, self.views = encoder, projector, views
    self.temperature = temperature
    params = [p for m in (encoder, projector) for p in m.parameters()]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas, eps=1e-8)
    self.schedule = dict(peak=lr, warmup_steps=warmup_steps, total_steps=total_steps, end_factor=end_lr_factor)
    self.step_count = 0
    encoder.train()
    projector.train()

  def num_params(self) -> int:
    return sum(p.numel() for m in (self.encoder, self.projector) for p in m.parameters())

  def __call__(self, images: torch.Tensor) -> torch.Tensor:
    lr = warmup_cosine(self.step_count, **self.schedule)
    for g in self.opt.param_groups:
      g["lr"] = lr
    v1, v2 = self.views(images)
    b = v1.shape[0]
    z = self.projector(self.encoder(torch.cat([v1, v2])))
    loss = ntxent(z[:b], z[b:], temperature=self.temperature)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    self.step_count += 1
    return loss.detach()
