"""Augmentation presets: the views of SimCLR/BYOL, FixMatch and multi-crop (SwAV/DINO), on device.

A preset is a frozen dataclass of Python numbers: hashable, so it is a static argument of `jit`
(`jax.jit(simclr_views, static_argnames="preset")`, or close over it with functools.partial).
Change a field with `dataclasses.replace(preset, ...)`; `for_dataset(preset, name)` fills in the
dataset's mean and std. Every function takes a PRNG key and uint8 (or [0, 1] float) images
[b, H, W, C] and returns float32 images, normalised with the preset's mean/std when it has them
(else left in [0, 1]).

    preset = for_dataset(BYOL, "cifar10")
    v1, v2 = jax.jit(simclr_views, static_argnames="preset")(key, images, preset=preset)

Colour operations (saturation, hue, grayscale) only touch RGB images; see `augment`.
"""

from __future__ import annotations

import dataclasses
from typing import Union

import jax
import jax.numpy as jnp

from ssl_jax.data import augment as A

Pair = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class SimCLRViews:
  """Two views, each: random resized crop, flip, colour jitter, grayscale, blur, solarize.

  Defaults are SimCLR's ImageNet recipe (colour strength 1.0, blur on half the views); per-view
  pairs (blur_p, solarize_p) give BYOL's asymmetric views, see the preset `BYOL`.

  Attributes:
    size: output side (int or (h, w)); None keeps the input size.
    crop_scale, crop_ratio: RandomResizedCrop area fraction and aspect ratio ranges.
    flip_p: probability of a horizontal flip.
    brightness, contrast, saturation, hue, jitter_p: ColorJitter strengths and probability.
    jitter_random_order: apply the four jitter ops in a random order per example (torchvision,
      SimCLR, BYOL); under vmap every op is then computed in every slot, so False (fixed order
      brightness, contrast, saturation, hue) is ~2x cheaper on RGB images.
    grayscale_p: probability of grayscale (RGB only).
    blur_p: blur probability of (view 1, view 2); blur_sigma its sigma range; blur_kernel its taps
      (None: 10% of the side).
    solarize_p: solarize probability of (view 1, view 2).
    mean, std: per-channel normalisation; None leaves [0, 1].
  """
  size: int | tuple[int, int] | None = None
  crop_scale: Pair = (0.08, 1.0)
  crop_ratio: Pair = (3 / 4, 4 / 3)
  flip_p: float = 0.5
  brightness: float = 0.8
  contrast: float = 0.8
  saturation: float = 0.8
  hue: float = 0.2
  jitter_p: float = 0.8
  jitter_random_order: bool = True
  grayscale_p: float = 0.2
  blur_p: Pair = (0.5, 0.5)
  blur_sigma: Pair = (0.1, 2.0)
  blur_kernel: int | None = None
  solarize_p: Pair = (0.0, 0.0)
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None


@dataclasses.dataclass(frozen=True)
class WeakStrongViews:
  """FixMatch's views: weak = flip + translate (pad and crop); strong = weak + RandAugment + cutout.

  The strong view draws its own flip and translation (as FixMatch and USB do), then `num_ops`
  RandAugment-lite ops (each with probability `op_p`, random magnitude) and a cutout of side up to
  `cutout` x H.

  Attributes:
    flip_p: probability of a horizontal flip.
    pad_fraction: translation range as a fraction of the side (0.125 = CIFAR's 4 pixels).
    num_ops, op_p: RandAugment-lite ops per image and probability of each.
    cutout: maximum cutout side as a fraction of the image side (0 disables it).
    fill: value of empty pixels (0.5 = grey).
    mean, std: per-channel normalisation; None leaves [0, 1].
  """
  flip_p: float = 0.5
  pad_fraction: float = 0.125
  num_ops: int = 2
  op_p: float = 1.0
  cutout: float = 0.5
  fill: float = 0.5
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None


@dataclasses.dataclass(frozen=True)
class MultiCropViews:
  """Multi-crop: `num_global` large crops and `num_local` small ones (SwAV, DINO).

  Each crop gets a flip, colour jitter, grayscale, blur and solarize; the blur and solarize
  probabilities of global crop i are `global_blur_p[i % len]` and `global_solarize_p[i % len]`
  (DINO: blur 1.0 / 0.1, solarize 0 / 0.2), every local crop uses `local_blur_p`.

  Attributes:
    num_global, global_size, global_scale: number, side and area range of the global crops.
    num_local, local_size, local_scale: the same for the local crops.
    (the other fields as in SimCLRViews)
  """
  num_global: int = 2
  global_size: int | tuple[int, int] = 224
  global_scale: Pair = (0.4, 1.0)
  num_local: int = 6
  local_size: int | tuple[int, int] = 96
  local_scale: Pair = (0.05, 0.4)
  crop_ratio: Pair = (3 / 4, 4 / 3)
  flip_p: float = 0.5
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.2
  hue: float = 0.1
  jitter_p: float = 0.8
  jitter_random_order: bool = True
  grayscale_p: float = 0.2
  global_blur_p: tuple[float, ...] = (1.0, 0.1)
  local_blur_p: float = 0.5
  blur_sigma: Pair = (0.1, 2.0)
  global_solarize_p: tuple[float, ...] = (0.0, 0.2)
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None


Preset = Union[SimCLRViews, WeakStrongViews, MultiCropViews]

# Published recipes. Sizes default to the input size (SimCLR/BYOL) or ImageNet's 224/96 (DINO);
# set them with dataclasses.replace for small images.
SIMCLR = SimCLRViews()
# SimCLR's CIFAR recipe: colour strength 0.5, no blur.
SIMCLR_CIFAR = SimCLRViews(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                           blur_p=(0.0, 0.0))
BYOL = SimCLRViews(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_p=(1.0, 0.1),
                   solarize_p=(0.0, 0.2))
FIXMATCH = WeakStrongViews()
DINO = MultiCropViews()
SWAV = MultiCropViews(global_scale=(0.14, 1.0), local_scale=(0.05, 0.14), brightness=0.8,
                      contrast=0.8, saturation=0.8, hue=0.2, global_blur_p=(0.5,),
                      local_blur_p=0.5, global_solarize_p=(0.0,))
PRESETS: dict[str, Preset] = {"simclr": SIMCLR, "simclr_cifar": SIMCLR_CIFAR, "byol": BYOL,
                              "fixmatch": FIXMATCH, "dino": DINO, "swav": SWAV}


def for_dataset(preset: Preset, name: str) -> Preset:
  """`preset` normalised with the mean and std of dataset `name` (see `augment.MEAN_STD`)."""
  mean, std = A.mean_std(name)
  return dataclasses.replace(preset, mean=mean, std=std)


def _finish(images: jax.Array, preset: Preset) -> jax.Array:
  if preset.mean is None or preset.std is None:
    return images
  return A.normalize(images, preset.mean, preset.std)


def _check(images: jax.Array, what: str) -> jax.Array:
  images = A.to_float(images)
  if images.ndim != 4:
    raise ValueError(f"{what}: images must have shape [b, H, W, C]; got {images.shape}, so add the "
                     "batch and channel axes.")
  return images


_N_VIEW = A.N_CROP + A.N_FLIP + A.N_JITTER + A.N_GRAYSCALE + A.N_BLUR + A.N_SOLARIZE


def _take(u: jax.Array, *counts: int) -> list[jax.Array]:
  """Consecutive slices of u with the given lengths."""
  out, start = [], 0
  for n in counts:
    out.append(u[start:start + n])
    start += n
  return out


def _ssl_view_one(u, x, *, size, scale, ratio, flip_p, jitter, grayscale_p, blur_p, blur_sigma,
                  blur_kernel, solarize_p):
  u_crop, u_flip, u_jit, u_gray, u_blur, u_sol = _take(
      u, A.N_CROP, A.N_FLIP, A.N_JITTER, A.N_GRAYSCALE, A.N_BLUR, A.N_SOLARIZE)
  x = A.random_resized_crop_one(u_crop, x, size=size, scale=scale, ratio=ratio)
  x = A.flip_one(u_flip, x, p=flip_p)
  x = A.color_jitter_one(u_jit, x, **jitter)
  x = A.grayscale_one(u_gray, x, p=grayscale_p)
  x = A.gaussian_blur_one(u_blur, x, p=blur_p, sigma=blur_sigma, kernel_size=blur_kernel)
  return A.solarize_one(u_sol, x, p=solarize_p)


def _ssl_views(key, num, images, *, blur_ps, solarize_ps, **static) -> jax.Array:
  """`num` views that share every static setting, vmapped over views: compiled once, not per view.

  Returns [num, b, ...]; the blur and solarize probabilities may differ per view.
  """
  use_blur = any(p > 0 for p in blur_ps)
  use_solarize = any(p > 0 for p in solarize_ps)
  u = jax.random.uniform(key, (num, images.shape[0], _N_VIEW))

  def one_view(u_view, blur_p, solarize_p):
    return jax.vmap(lambda ux, x: _ssl_view_one(
        ux, x, blur_p=blur_p if use_blur else 0.0, solarize_p=solarize_p if use_solarize else 0.0,
        **static))(u_view, images)

  return jax.vmap(one_view)(u, jnp.asarray(blur_ps, jnp.float32),
                            jnp.asarray(solarize_ps, jnp.float32))


def _jitter(preset) -> dict:
  return dict(brightness=preset.brightness, contrast=preset.contrast,
              saturation=preset.saturation, hue=preset.hue, p=preset.jitter_p,
              random_order=preset.jitter_random_order)


def simclr_views(key: jax.Array, images: jax.Array,
                 preset: SimCLRViews = SIMCLR) -> tuple[jax.Array, jax.Array]:
  """Two independently augmented views of each image (SimCLR, BYOL, MoCo v2/v3, Barlow, VICReg).

  Args:
    key: PRNG key.
    images: [b, H, W, C] uint8 or float in [0, 1].
    preset: a `SimCLRViews` (static under jit).
  Returns:
    (view1, view2), each float32 [b, size_h, size_w, C].
  References: Chen et al. 2020 (arXiv:2002.05709); Grill et al. 2020 (arXiv:2006.07733).
  """
  images = _check(images, "simclr_views")
  size = images.shape[1:3] if preset.size is None else preset.size
  views = _ssl_views(key, 2, images, blur_ps=preset.blur_p,
                     solarize_ps=preset.solarize_p, size=size, scale=preset.crop_scale,
                     ratio=preset.crop_ratio, flip_p=preset.flip_p, jitter=_jitter(preset),
                     grayscale_p=preset.grayscale_p, blur_sigma=preset.blur_sigma,
                     blur_kernel=preset.blur_kernel)
  views = _finish(views, preset)
  return views[0], views[1]


_N_WEAK = A.N_FLIP + A.N_CROP_PAD


def _weak_one(u, x, preset: WeakStrongViews):
  u_flip, u_crop = _take(u, A.N_FLIP, A.N_CROP_PAD)
  x = A.flip_one(u_flip, x, p=preset.flip_p)
  return A.crop_pad_one(u_crop, x, pad_fraction=preset.pad_fraction)


def _n_strong(preset: WeakStrongViews) -> int:
  return _N_WEAK + A.n_rand_augment(preset.num_ops) + A.N_CUTOUT


def _strong_one(u, x, preset: WeakStrongViews):
  u_weak, u_ra, u_cut = _take(u, _N_WEAK, A.n_rand_augment(preset.num_ops), A.N_CUTOUT)
  x = _weak_one(u_weak, x, preset)
  if preset.num_ops > 0:
    x = A.rand_augment_one(u_ra, x, num_ops=preset.num_ops, p=preset.op_p, fill=preset.fill)
  if preset.cutout > 0:
    x = A.cutout_one(u_cut, x, max_fraction=preset.cutout, fill=preset.fill)
  return x


def weak_strong_views(key: jax.Array, images: jax.Array,
                      preset: WeakStrongViews = FIXMATCH) -> tuple[jax.Array, jax.Array]:
  """FixMatch's weak and strong views of each (unlabelled) image.

  Args:
    key: PRNG key.
    images: [b, H, W, C] uint8 or float in [0, 1].
    preset: a `WeakStrongViews` (static under jit).
  Returns:
    (weak, strong), each float32 [b, H, W, C].
  References: Sohn et al. 2020 (FixMatch, arXiv:2001.07685).
  """
  images = _check(images, "weak_strong_views")
  k_weak, k_strong = jax.random.split(key)
  uw = jax.random.uniform(k_weak, (images.shape[0], _N_WEAK))
  us = jax.random.uniform(k_strong, (images.shape[0], _n_strong(preset)))
  weak = jax.vmap(lambda u, x: _weak_one(u, x, preset))(uw, images)
  strong = jax.vmap(lambda u, x: _strong_one(u, x, preset))(us, images)
  return _finish(weak, preset), _finish(strong, preset)


def weak_view(key: jax.Array, images: jax.Array,
              preset: WeakStrongViews = FIXMATCH) -> jax.Array:
  """The weak view only (flip + translate): FixMatch's augmentation of the labelled batch."""
  images = _check(images, "weak_view")
  u = jax.random.uniform(key, (images.shape[0], _N_WEAK))
  return _finish(jax.vmap(lambda uu, x: _weak_one(uu, x, preset))(u, images), preset)


def multi_crop_views(key: jax.Array, images: jax.Array,
                     preset: MultiCropViews = DINO) -> tuple[list[jax.Array], list[jax.Array]]:
  """`num_global` global and `num_local` local crops of each image.

  Args:
    key: PRNG key.
    images: [b, H, W, C] uint8 or float in [0, 1].
    preset: a `MultiCropViews` (static under jit).
  Returns:
    (global crops, local crops): lists of float32 [b, global_size..., C] and [b, local_size..., C].
  References: Caron et al. 2020 (SwAV, arXiv:2006.09882); Caron et al. 2021 (DINO,
    arXiv:2104.14294).
  """
  images = _check(images, "multi_crop_views")
  k_global, k_local = jax.random.split(key)
  common = dict(ratio=preset.crop_ratio, flip_p=preset.flip_p, jitter=_jitter(preset),
                grayscale_p=preset.grayscale_p, blur_sigma=preset.blur_sigma, blur_kernel=None)
  globals_, locals_ = [], []
  if preset.num_global:
    n = preset.num_global
    blur = tuple(preset.global_blur_p[i % len(preset.global_blur_p)] for i in range(n))
    sol = tuple(preset.global_solarize_p[i % len(preset.global_solarize_p)] for i in range(n))
    views = _ssl_views(k_global, n, images, blur_ps=blur, solarize_ps=sol,
                       size=preset.global_size, scale=preset.global_scale, **common)
    globals_ = list(_finish(views, preset))
  if preset.num_local:
    n = preset.num_local
    views = _ssl_views(k_local, n, images, blur_ps=(preset.local_blur_p,) * n,
                       solarize_ps=(0.0,) * n, size=preset.local_size, scale=preset.local_scale,
                       **common)
    locals_ = list(_finish(views, preset))
  return globals_, locals_


def make_views(key: jax.Array, images: jax.Array, preset: Preset):
  """Dispatch on the preset's type: `simclr_views`, `weak_strong_views` or `multi_crop_views`."""
  if isinstance(preset, SimCLRViews):
    return simclr_views(key, images, preset)
  if isinstance(preset, WeakStrongViews):
    return weak_strong_views(key, images, preset)
  if isinstance(preset, MultiCropViews):
    return multi_crop_views(key, images, preset)
  raise TypeError(f"make_views: preset must be SimCLRViews, WeakStrongViews or MultiCropViews; "
                  f"got {type(preset).__name__}.")


def eval_view(images: jax.Array, *, size: int | tuple[int, int] | None = None,
              mean: tuple[float, ...] | None = None,
              std: tuple[float, ...] | None = None) -> jax.Array:
  """The deterministic view for evaluation and probes: resize to `size` (if set) and normalise."""
  images = _check(images, "eval_view")
  if size is not None:
    images = A.resize(images, size)
  if mean is not None and std is not None:
    images = A.normalize(images, mean, std)
  return images


# Preset fields a config does not carry: the dataset's statistics are filled in by `for_dataset`.
_NOT_IN_CONFIG = ("mean", "std")
# Optional fields, written as 0 in a config (ConfigDict fields have one type): 0 means None.
_ZERO_IS_NONE = ("size", "blur_kernel")


def to_config(preset: Preset):
  """A preset as an `ml_collections.ConfigDict` of its fields, for a method's config section.

  Every field but `mean`/`std` (taken from the dataset) becomes a config field of the same type; `size`
  and `blur_kernel` are 0 when None. `from_config` turns it back into the preset:

      c.simclr.views = views.to_config(views.SIMCLR_CIFAR)        # in the method's config()
      --config.simclr.views.crop_scale="(0.3, 1.0)"                # on the command line
      preset = views.from_config(views.SimCLRViews, config.simclr.views, "fashion_mnist")
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  fields = {}
  for f in dataclasses.fields(preset):
    if f.name in _NOT_IN_CONFIG:
      continue
    value = getattr(preset, f.name)
    if f.name in _ZERO_IS_NONE and value is None:
      value = 0
    if isinstance(value, list):
      value = tuple(value)
    fields[f.name] = value
  return ml_collections.ConfigDict(fields)


def from_config(cls: type, config, dataset: str | None = None) -> Preset:
  """The preset of class `cls` with the fields of `config` (see `to_config`), normalised for `dataset`.

  Raises:
    ValueError: a field of `config` is not a field of `cls`, or a pair has the wrong length.
  """
  names = {f.name for f in dataclasses.fields(cls)} - set(_NOT_IN_CONFIG)
  values = dict(config.items())
  unknown = sorted(set(values) - names)
  if unknown:
    raise ValueError(f"{cls.__name__} has no fields {unknown}; its fields are {sorted(names)}.")
  kwargs = {}
  for name, value in values.items():
    if name in _ZERO_IS_NONE and not value:
      value = None
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[name] = value
  preset = cls(**kwargs)
  for f in dataclasses.fields(cls):
    value = getattr(preset, f.name)
    if f.type == "Pair" and (not isinstance(value, tuple) or len(value) != 2):
      raise ValueError(f"The view field `{f.name}` is a pair (low, high) or (view 1, view 2); got {value}.")
  return for_dataset(preset, dataset) if dataset else preset


def num_views(preset: Preset) -> int:
  """How many views a preset produces per image."""
  if isinstance(preset, MultiCropViews):
    return preset.num_global + preset.num_local
  return 2


__all__ = ["SimCLRViews", "WeakStrongViews", "MultiCropViews", "Preset", "SIMCLR", "SIMCLR_CIFAR",
           "BYOL", "FIXMATCH", "DINO", "SWAV", "PRESETS", "for_dataset", "simclr_views",
           "weak_strong_views", "weak_view", "multi_crop_views", "make_views", "eval_view",
           "num_views", "to_config", "from_config"]
