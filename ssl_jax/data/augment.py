"""Image augmentations that run on device, in JAX, under `jit`.

Every batched op has the form `op(key, images, *, hyperparameters) -> images`: it takes uint8
images (0..255) or float images (0..1) of shape [b, H, W, C] and returns float32 images in [0, 1].
Each example gets its own randomness: one `jax.random.uniform(key, (b, n))` draw gives every
example the n uniforms its op needs, and the per-example op (`*_one(u, x)`) is `jax.vmap`-ed over
the rows. One draw per batch rather than b split keys matters: XLA compiles a vmapped threefry per
`random` call, which made a SimCLR view take ~10x longer to compile. Probabilities and strengths
are Python numbers (static under `jit`); random choices are made per example with `jnp.where`, so
shapes never depend on data.

Colour: brightness and contrast apply to every image; saturation, hue, random grayscale and the
RandAugment "color" op act only on RGB images (C = 3) and leave grayscale images (C = 1) untouched,
as their channel count is known statically.

The per-example functions `*_one(u, x, ...)` take the uniforms `u` [N_*] (N_* is their count) and
an image x [H, W, C] in [0, 1]; `ssl_jax.data.views` composes them into one vmapped view.
Under `jax.shard_map`, fold the device's `axis_index` into the key first; under `jit` with sharded
global arrays, nothing is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Size = int | tuple[int, int]

# Per-channel mean and std of the training images in [0, 1]. Fashion-MNIST and digits were computed
# from the data here; the others are the values used by torchvision, solo-learn and USB.
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "digits": ((0.3057,), (0.3759,)),
    "digits28": ((0.3055,), (0.3247,)),
    "digits28_mnist_layout": ((0.1561,), (0.2775,)),
    "mnist5k": ((0.1313,), (0.3086,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # "image_folder": set by `datasets.dataset_info` to the prepared folder's own statistics.
}

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision and PIL.


def mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) per channel of dataset `name`, for `normalize`."""
  if name not in MEAN_STD:
    raise ValueError(f"No mean/std for dataset {name!r}; known: {sorted(MEAN_STD)}. Pass your own "
                     "mean and std to normalize().")
  return MEAN_STD[name]


def to_float(images: jax.Array) -> jax.Array:
  """uint8 0..255 -> float32 0..1; float images are assumed to be in [0, 1] already."""
  images = jnp.asarray(images)
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) * (1.0 / 255.0)
  return images.astype(jnp.float32)


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """(x - mean) / std per channel, after `to_float`.

  Args:
    images: [..., C] uint8 or float in [0, 1].
    mean, std: C values (or one, broadcast to every channel).
  Returns:
    float32 images of the same shape.
  """
  images = to_float(images)
  c = images.shape[-1]
  if len(mean) not in (1, c) or len(std) not in (1, c):
    raise ValueError(f"normalize: mean ({len(mean)} values) and std ({len(std)} values) must have "
                     f"1 or C={c} entries for images of shape {images.shape}.")
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _pair(size: Size) -> tuple[int, int]:
  return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _check4(images: jax.Array, what: str) -> jax.Array:
  images = to_float(images)
  if images.ndim != 4:
    raise ValueError(f"{what}: images must have shape [b, H, W, C]; got {images.shape}, so add the "
                     "batch (and channel) axis.")
  return images


def _batched(one, num_uniforms: int, key: jax.Array, images: jax.Array, **kwargs) -> jax.Array:
  images = _check4(images, one.__name__.removesuffix("_one"))
  u = jax.random.uniform(key, (images.shape[0], num_uniforms))
  return jax.vmap(lambda uu, x: one(uu, x, **kwargs))(u, images)


def _gray(x: jax.Array) -> jax.Array:
  """[H, W, 3] -> luma [H, W, 1]; a 1-channel image is its own luma."""
  if x.shape[-1] == 1:
    return x
  return jnp.tensordot(x, jnp.asarray(_GRAY, x.dtype), axes=([-1], [0]))[..., None]


def _blend(a: jax.Array, b: jax.Array, ratio) -> jax.Array:
  """ratio * a + (1 - ratio) * b, clipped to [0, 1] (PIL's ImageEnhance / torchvision's _blend)."""
  return jnp.clip(ratio * a + (1.0 - ratio) * b, 0.0, 1.0)


def _happens(u: jax.Array, p) -> jax.Array:
  """u < p: true with probability p for u ~ U(0, 1); static shortcuts for Python p <= 0 or >= 1."""
  if isinstance(p, (int, float)):
    if p >= 1.0:
      return jnp.array(True)
    if p <= 0.0:
      return jnp.array(False)
  return u < p


def _is_zero(p) -> bool:
  """Whether p is statically zero (a Python number <= 0), so the op can be skipped."""
  return isinstance(p, (int, float)) and p <= 0


def _uniform(u: jax.Array, lo, hi) -> jax.Array:
  return lo + (hi - lo) * u


# ----------------------------------------------------------------------------- geometry

CROP_ATTEMPTS = 10
N_CROP = 2 * CROP_ATTEMPTS + 2


def sample_crop(u: jax.Array, height: int, width: int, *, scale: tuple[float, float],
                ratio: tuple[float, float]) -> jax.Array:
  """A random crop box (top, left, h, w) as torchvision's RandomResizedCrop draws it.

  Ten candidates with area fraction ~ U(scale) and log aspect ratio (w / h) ~ U(log ratio) are
  drawn at once; the first that fits is used, else the central crop with the aspect ratio clamped
  to `ratio`. Sizes are whole pixels, the position uniform.

  Args:
    u: N_CROP uniforms in [0, 1).
  """
  n = CROP_ATTEMPTS
  area = height * width * _uniform(u[:n], scale[0], scale[1])
  aspect = jnp.exp(_uniform(u[n:2 * n], math.log(ratio[0]), math.log(ratio[1])))
  cw = jnp.round(jnp.sqrt(area * aspect))
  ch = jnp.round(jnp.sqrt(area / aspect))
  ok = (cw > 0) & (cw <= width) & (ch > 0) & (ch <= height)
  first = jnp.argmax(ok)
  in_ratio = width / height
  if in_ratio < min(ratio):
    fw, fh = width, round(width / min(ratio))
  elif in_ratio > max(ratio):
    fw, fh = round(height * max(ratio)), height
  else:
    fw, fh = width, height
  found = ok.any()
  cw = jnp.where(found, cw[first], fw)
  ch = jnp.where(found, ch[first], fh)
  top = jnp.where(found, jnp.floor(u[2 * n] * (height - ch + 1)), (height - fh) // 2)
  left = jnp.where(found, jnp.floor(u[2 * n + 1] * (width - cw + 1)), (width - fw) // 2)
  return jnp.stack([top, left, ch, cw]).astype(jnp.float32)


def crop_and_resize(x: jax.Array, box: jax.Array, size: Size) -> jax.Array:
  """Resample the box (top, left, h, w) of x [H, W, C] to `size` with antialiased bilinear weights.

  Pixel (i, j) of the output is centred at (top + (i + 0.5) h / out_h, left + (j + 0.5) w / out_w)
  of the input; `jax.image.scale_and_translate` does the resampling (a box equal to the image and
  size equal to its size is the identity).
  """
  out_h, out_w = _pair(size)
  top, left, h, w = box[0], box[1], box[2], box[3]
  scale = jnp.stack([out_h / h, out_w / w])
  translation = -jnp.stack([top, left]) * scale
  return jax.image.scale_and_translate(x, (out_h, out_w, x.shape[-1]), (0, 1), scale, translation,
                                       method="linear", antialias=True)


def random_resized_crop_one(u: jax.Array, x: jax.Array, *, size: Size,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
  box = sample_crop(u, x.shape[0], x.shape[1], scale=scale, ratio=ratio)
  return crop_and_resize(x, box, size)


def random_resized_crop(key: jax.Array, images: jax.Array, *, size: Size | None = None,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
  """Inception-style crop of a random area fraction and aspect ratio, resized to `size`.

  Args:
    key: PRNG key.
    images: [b, H, W, C] uint8 or float in [0, 1].
    size: output size (int or (h, w)); None keeps H x W.
    scale: range of the crop's area as a fraction of the image.
    ratio: range of the crop's aspect ratio w / h (sampled log-uniformly).
  Returns:
    float32 [b, size_h, size_w, C].
  References: Szegedy et al. 2015 (arXiv:1409.4842); torchvision RandomResizedCrop.
  """
  size = tuple(images.shape[1:3]) if size is None else size
  return _batched(random_resized_crop_one, N_CROP, key, images, size=size, scale=scale,
                  ratio=ratio)


N_FLIP = 1


def flip_one(u: jax.Array, x: jax.Array, *, p: float = 0.5) -> jax.Array:
  return jnp.where(_happens(u[0], p), x[:, ::-1, :], x)


def random_flip(key: jax.Array, images: jax.Array, *, p: float = 0.5) -> jax.Array:
  """Mirror each image left-right with probability p. Returns float32 [b, H, W, C]."""
  return _batched(flip_one, N_FLIP, key, images, p=p)


N_CROP_PAD = 2


def crop_pad_one(u: jax.Array, x: jax.Array, *, pad_fraction: float = 0.125,
                 mode: str = "reflect") -> jax.Array:
  h, w, _ = x.shape
  ph, pw = int(round(pad_fraction * h)), int(round(pad_fraction * w))
  if ph == 0 and pw == 0:
    return x
  padded = jnp.pad(x, ((ph, ph), (pw, pw), (0, 0)), mode=mode)
  dy = jnp.minimum(jnp.floor(u[0] * (2 * ph + 1)), 2 * ph).astype(jnp.int32)
  dx = jnp.minimum(jnp.floor(u[1] * (2 * pw + 1)), 2 * pw).astype(jnp.int32)
  return jax.lax.dynamic_slice(padded, (dy, dx, 0), x.shape)


def random_crop_pad(key: jax.Array, images: jax.Array, *, pad_fraction: float = 0.125,
                    mode: str = "reflect") -> jax.Array:
  """Pad by `pad_fraction` of the size (reflect) and crop back: a translation of up to that much.

  The weak augmentation of FixMatch (with a flip): CIFAR's 4-pixel padding is 0.125 x 32.
  Returns float32 [b, H, W, C].
  """
  return _batched(crop_pad_one, N_CROP_PAD, key, images, pad_fraction=pad_fraction, mode=mode)


N_CUTOUT = 3


def cutout_one(u: jax.Array, x: jax.Array, *, max_fraction: float = 0.5,
               fill: float = 0.5) -> jax.Array:
  h, w, _ = x.shape
  side = u[0] * max_fraction * h
  cy, cx = u[1] * h, u[2] * w
  ys = jnp.arange(h, dtype=jnp.float32)[:, None] + 0.5
  xs = jnp.arange(w, dtype=jnp.float32)[None, :] + 0.5
  inside = ((jnp.abs(ys - cy) <= side / 2) & (jnp.abs(xs - cx) <= side / 2))[..., None]
  return jnp.where(inside, jnp.asarray(fill, x.dtype), x)


def cutout(key: jax.Array, images: jax.Array, *, max_fraction: float = 0.5,
           fill: float = 0.5) -> jax.Array:
  """Fill a square of side U(0, max_fraction) * H at a uniform centre (clipped) with `fill`.

  References: DeVries & Taylor 2017 (arXiv:1708.04552); as in FixMatch / USB's strong view.
  Returns float32 [b, H, W, C].
  """
  return _batched(cutout_one, N_CUTOUT, key, images, max_fraction=max_fraction, fill=fill)


# ----------------------------------------------------------------------------- colour

def rgb_to_hsv(x: jax.Array) -> jax.Array:
  """[..., 3] RGB in [0, 1] -> HSV in [0, 1] (torchvision's formulas)."""
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  maxc = jnp.max(x, axis=-1)
  minc = jnp.min(x, axis=-1)
  eqc = maxc == minc
  cr = maxc - minc
  s = cr / jnp.where(eqc, 1.0, maxc)
  crd = jnp.where(eqc, 1.0, cr)
  rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
  hr = jnp.where(maxc == r, bc - gc, 0.0)
  hg = jnp.where((maxc == g) & (maxc != r), 2.0 + rc - bc, 0.0)
  hb = jnp.where((maxc != g) & (maxc != r), 4.0 + gc - rc, 0.0)
  h = jnp.mod((hr + hg + hb) / 6.0 + 1.0, 1.0)
  return jnp.stack([h, s, maxc], axis=-1)


def hsv_to_rgb(x: jax.Array) -> jax.Array:
  """[..., 3] HSV in [0, 1] -> RGB in [0, 1]."""
  h, s, v = x[..., 0], x[..., 1], x[..., 2]
  i = jnp.floor(h * 6.0)
  f = h * 6.0 - i
  i = jnp.mod(i, 6).astype(jnp.int32)
  p = jnp.clip(v * (1.0 - s), 0.0, 1.0)
  q = jnp.clip(v * (1.0 - s * f), 0.0, 1.0)
  t = jnp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
  r = jnp.select([i == 0, i == 1, i == 2, i == 3, i == 4], [v, q, p, p, t], v)
  g = jnp.select([i == 0, i == 1, i == 2, i == 3, i == 4], [t, v, v, q, p], p)
  b = jnp.select([i == 0, i == 1, i == 2, i == 3, i == 4], [p, p, t, v, v], q)
  return jnp.stack([r, g, b], axis=-1)


def adjust_brightness(x: jax.Array, factor) -> jax.Array:
  return _blend(x, jnp.zeros_like(x), factor)


def adjust_contrast(x: jax.Array, factor) -> jax.Array:
  return _blend(x, jnp.mean(_gray(x)), factor)


def adjust_saturation(x: jax.Array, factor) -> jax.Array:
  return x if x.shape[-1] == 1 else _blend(x, _gray(x), factor)


def adjust_hue(x: jax.Array, delta) -> jax.Array:
  if x.shape[-1] == 1:
    return x
  hsv = rgb_to_hsv(x)
  hsv = hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + delta, 1.0))
  return hsv_to_rgb(hsv)


N_JITTER = 9


def color_jitter_one(u: jax.Array, x: jax.Array, *, brightness: float = 0.4,
                     contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1,
                     p: float = 0.8, random_order: bool = True) -> jax.Array:
  rgb = x.shape[-1] == 3

  def factor(v, strength):
    return _uniform(v, max(0.0, 1.0 - strength), 1.0 + strength)

  # (op, its random parameter); saturation and hue exist only for RGB images.
  ops, params = [], []
  if brightness > 0:
    ops.append(adjust_brightness)
    params.append(factor(u[1], brightness))
  if contrast > 0:
    ops.append(adjust_contrast)
    params.append(factor(u[2], contrast))
  if saturation > 0 and rgb:
    ops.append(adjust_saturation)
    params.append(factor(u[3], saturation))
  if hue > 0 and rgb:
    ops.append(adjust_hue)
    params.append(_uniform(u[4], -hue, hue))
  if not ops or p <= 0:
    return x
  params = jnp.stack(params)
  if random_order and len(ops) > 1:
    order = jnp.argsort(u[5:5 + len(ops)])  # A uniformly random permutation.
    branches = [lambda y, prm, i=i: ops[i](y, prm[i]) for i in range(len(ops))]
    # A loop (not unrolled) keeps the compiled program to one copy of each op.
    y = jax.lax.fori_loop(0, len(ops), lambda i, y: jax.lax.switch(order[i], branches, y, params),
                          x)
  else:
    y = x
    for i, op in enumerate(ops):
      y = op(y, params[i])
  return jnp.where(_happens(u[0], p), y, x)


def color_jitter(key: jax.Array, images: jax.Array, *, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1, p: float = 0.8,
                 random_order: bool = True) -> jax.Array:
  """Random brightness, contrast, saturation and hue, in random order, with probability p.

  Factors are drawn as torchvision's ColorJitter does: brightness, contrast and saturation
  multiply by U(max(0, 1 - s), 1 + s) (blending with black, the mean luma, the per-pixel luma),
  hue shifts by U(-hue, hue) of the colour circle in HSV. Saturation and hue only act on RGB
  images; grayscale images get brightness and contrast only.

  Returns:
    float32 [b, H, W, C] in [0, 1].
  References: Chen et al. 2020 (SimCLR, arXiv:2002.05709), appendix A.
  """
  return _batched(color_jitter_one, N_JITTER, key, images, brightness=brightness,
                  contrast=contrast, saturation=saturation, hue=hue, p=p,
                  random_order=random_order)


N_GRAYSCALE = 1


def grayscale_one(u: jax.Array, x: jax.Array, *, p: float = 0.2) -> jax.Array:
  if x.shape[-1] == 1 or _is_zero(p):
    return x
  return jnp.where(_happens(u[0], p), jnp.broadcast_to(_gray(x), x.shape), x)


def random_grayscale(key: jax.Array, images: jax.Array, *, p: float = 0.2) -> jax.Array:
  """Replace an RGB image by its luma on all three channels with probability p; no-op for C = 1."""
  return _batched(grayscale_one, N_GRAYSCALE, key, images, p=p)


def default_blur_kernel(size: int) -> int:
  """SimCLR's kernel: 10% of the image side, odd, at least 3."""
  k = max(3, int(round(0.1 * size)))
  return k if k % 2 else k + 1


def blur(x: jax.Array, sigma, kernel_size: int) -> jax.Array:
  """Gaussian blur of x [H, W, C] with std `sigma` pixels: two 1-D passes, reflect padding."""
  r = min(kernel_size // 2, x.shape[0] - 1, x.shape[1] - 1)
  if r <= 0:
    return x
  t = jnp.arange(-r, r + 1, dtype=x.dtype)
  w = jnp.exp(-0.5 * (t / sigma) ** 2)
  w = w / jnp.sum(w)
  h, wd, _ = x.shape
  xp = jnp.pad(x, ((r, r), (0, 0), (0, 0)), mode="reflect")
  x = sum(w[i] * xp[i:i + h] for i in range(2 * r + 1))
  xp = jnp.pad(x, ((0, 0), (r, r), (0, 0)), mode="reflect")
  return sum(w[i] * xp[:, i:i + wd] for i in range(2 * r + 1))


N_BLUR = 2


def gaussian_blur_one(u: jax.Array, x: jax.Array, *, p: float = 0.5,
                      sigma: tuple[float, float] = (0.1, 2.0),
                      kernel_size: int | None = None) -> jax.Array:
  if _is_zero(p):
    return x
  k = default_blur_kernel(min(x.shape[0], x.shape[1])) if kernel_size is None else kernel_size
  return jnp.where(_happens(u[0], p), blur(x, _uniform(u[1], sigma[0], sigma[1]), k), x)


def gaussian_blur(key: jax.Array, images: jax.Array, *, p: float = 0.5,
                  sigma: tuple[float, float] = (0.1, 2.0),
                  kernel_size: int | None = None) -> jax.Array:
  """Gaussian blur with sigma ~ U(sigma) with probability p (separable, reflect padding).

  Args:
    kernel_size: taps of the kernel; None uses 10% of the image side (odd, >= 3), as SimCLR.
  Returns:
    float32 [b, H, W, C].
  """
  return _batched(gaussian_blur_one, N_BLUR, key, images, p=p, sigma=sigma,
                  kernel_size=kernel_size)


N_SOLARIZE = 1


def solarize_one(u: jax.Array, x: jax.Array, *, p: float = 0.2,
                 threshold: float = 0.5) -> jax.Array:
  if _is_zero(p):
    return x
  return jnp.where(_happens(u[0], p), jnp.where(x < threshold, x, 1.0 - x), x)


def solarize(key: jax.Array, images: jax.Array, *, p: float = 0.2,
             threshold: float = 0.5) -> jax.Array:
  """Invert the pixels at or above `threshold` with probability p (BYOL's second view)."""
  return _batched(solarize_one, N_SOLARIZE, key, images, p=p, threshold=threshold)


# ----------------------------------------------------------------------------- RandAugment-lite

def _affine(x: jax.Array, matrix, shift, fill: float) -> jax.Array:
  """Output pixel q samples the input at matrix @ (q - c) + c - shift (c = centre), bilinearly."""
  h, w, _ = x.shape
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=x.dtype), jnp.arange(w, dtype=x.dtype), indexing="ij")
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  dy, dx = yy - cy, xx - cx
  iy = matrix[0][0] * dy + matrix[0][1] * dx + cy - shift[0]
  ix = matrix[1][0] * dy + matrix[1][1] * dx + cx - shift[1]
  sample = lambda c: jax.scipy.ndimage.map_coordinates(c, [iy, ix], order=1, mode="constant",
                                                        cval=fill)
  return jax.vmap(sample, in_axes=-1, out_axes=-1)(x)


def _signed(m, limit):
  return (2.0 * m - 1.0) * limit


def _equalize(x: jax.Array) -> jax.Array:
  """PIL's ImageOps.equalize on 256 levels, per channel."""
  q = jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.int32)

  def channel(qc):
    hist = jnp.bincount(qc.ravel(), length=256)
    last = hist[jnp.max(jnp.where(hist > 0, jnp.arange(256), -1))]
    step = (qc.size - last) // 255
    lut = jnp.clip((jnp.cumsum(hist) - hist + step // 2) // jnp.maximum(step, 1), 0, 255)
    return jnp.where(step > 0, lut[qc], qc)

  return jax.vmap(channel, in_axes=-1, out_axes=-1)(q).astype(x.dtype) / 255.0


def _sharpen(x: jax.Array, factor) -> jax.Array:
  """PIL's ImageEnhance.Sharpness: blend with the SMOOTH filter, borders unchanged."""
  h, w, _ = x.shape
  if h < 3 or w < 3:
    return x
  k = jnp.asarray([[1, 1, 1], [1, 5, 1], [1, 1, 1]], x.dtype) / 13.0
  inner = sum(k[i, j] * x[i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3))
  smooth = x.at[1:-1, 1:-1].set(inner)
  return _blend(x, smooth, factor)


def _autocontrast(x: jax.Array) -> jax.Array:
  lo = jnp.min(x, axis=(0, 1), keepdims=True)
  hi = jnp.max(x, axis=(0, 1), keepdims=True)
  span = hi - lo
  return jnp.where(span > 0, (x - lo) / jnp.where(span > 0, span, 1.0), x)


def _posterize(x: jax.Array, bits) -> jax.Array:
  q = jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.int32)
  shift = 8 - bits
  return ((q >> shift) << shift).astype(x.dtype) / 255.0


def _rotate(x: jax.Array, degrees, fill: float) -> jax.Array:
  t = jnp.deg2rad(degrees)
  c, s = jnp.cos(t), jnp.sin(t)
  return _affine(x, ((c, -s), (s, c)), (0.0, 0.0), fill)


def _rand_augment_ops(fill: float):
  """(name, f(x, m)) with m ~ U(0, 1) mapped to each op's range (FixMatch's list, as USB)."""
  def enhance(m):
    return 0.05 + 0.9 * m

  return [
      ("identity", lambda x, m: x),
      ("autocontrast", lambda x, m: _autocontrast(x)),
      ("equalize", lambda x, m: _equalize(x)),
      ("brightness", lambda x, m: adjust_brightness(x, enhance(m))),
      ("color", lambda x, m: adjust_saturation(x, enhance(m))),
      ("contrast", lambda x, m: adjust_contrast(x, enhance(m))),
      ("sharpness", lambda x, m: _sharpen(x, enhance(m))),
      ("posterize", lambda x, m: _posterize(x, 4 + jnp.floor(m * 4.999).astype(jnp.int32))),
      ("solarize", lambda x, m: jnp.where(x < m, x, 1.0 - x)),
      ("rotate", lambda x, m: _rotate(x, _signed(m, 30.0), fill)),
      ("shear_x", lambda x, m: _affine(x, ((1.0, 0.0), (_signed(m, 0.3), 1.0)), (0.0, 0.0), fill)),
      ("shear_y", lambda x, m: _affine(x, ((1.0, _signed(m, 0.3)), (0.0, 1.0)), (0.0, 0.0), fill)),
      ("translate_x", lambda x, m: _affine(x, ((1.0, 0.0), (0.0, 1.0)),
                                           (0.0, _signed(m, 0.3) * x.shape[1]), fill)),
      ("translate_y", lambda x, m: _affine(x, ((1.0, 0.0), (0.0, 1.0)),
                                           (_signed(m, 0.3) * x.shape[0], 0.0), fill)),
  ]


RAND_AUGMENT_OPS = tuple(name for name, _ in _rand_augment_ops(0.5))


def n_rand_augment(num_ops: int) -> int:
  """Uniforms that `rand_augment_one` takes: (op, magnitude, apply) per op."""
  return 3 * num_ops


def rand_augment_one(u: jax.Array, x: jax.Array, *, num_ops: int = 2, p: float = 1.0,
                     fill: float = 0.5) -> jax.Array:
  ops = [f for _, f in _rand_augment_ops(fill)]
  u = u.reshape(num_ops, 3)

  def body(i, x):
    idx = jnp.minimum(jnp.floor(u[i, 0] * len(ops)), len(ops) - 1).astype(jnp.int32)
    y = jax.lax.switch(idx, ops, x, u[i, 1])
    return jnp.where(_happens(u[i, 2], p), y, x)

  return jax.lax.fori_loop(0, num_ops, body, x)


def rand_augment(key: jax.Array, images: jax.Array, *, num_ops: int = 2, p: float = 1.0,
                 fill: float = 0.5) -> jax.Array:
  """RandAugment-lite with random magnitudes: `num_ops` ops drawn uniformly from RAND_AUGMENT_OPS.

  Each op is applied with probability p at a magnitude drawn uniformly from its range (FixMatch's
  variant: no global magnitude to tune): brightness / color / contrast / sharpness factor in
  [0.05, 0.95], posterize to 4..8 bits, solarize threshold in [0, 1], rotate +-30 degrees, shear
  +-0.3, translate +-30% of the side; empty pixels are filled with `fill`. "color" is a no-op on
  grayscale images. Shears and rotations are about the centre.

  Returns:
    float32 [b, H, W, C] in [0, 1].
  References: Cubuk et al. 2020 (arXiv:1909.13719); Sohn et al. 2020 (FixMatch, arXiv:2001.07685).
  """
  return _batched(rand_augment_one, n_rand_augment(num_ops), key, images, num_ops=num_ops, p=p,
                  fill=fill)


def resize(images: jax.Array, size: Size) -> jax.Array:
  """Resize [b, H, W, C] to `size` (antialiased bilinear); float32 output. For evaluation views."""
  images = _check4(images, "resize")
  h, w = _pair(size)
  if (h, w) == tuple(images.shape[1:3]):
    return images
  return jax.image.resize(images, (images.shape[0], h, w, images.shape[3]), "linear",
                          antialias=True)
