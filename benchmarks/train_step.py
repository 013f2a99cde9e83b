r"""SimCLR training-step throughput: ssl_jax's own step against a PyTorch eager step doing the same work.

  python benchmarks/train_step.py                    # full: ConvNet batch 256 x 10 steps, ResNet-18 128 x 5
  python benchmarks/train_step.py --quick            # a smoke run (< 60 s on an idle 2-core machine)
  python benchmarks/train_step.py --markdown --models convnet --batch-size 512 --steps 20
  python benchmarks/train_step.py --accelerator --markdown   # GPU/TPU: images/s and MFU, JAX only (see below)

Each row times one full SimCLR update on a batch of uint8 images [B, H, W, C]: two augmented views of every
image, one forward pass of both views through encoder and projector (BatchNorm statistics over both), NT-Xent,
the backward pass and an AdamW update. Throughput counts every source image once (B per step, although 2B views
are computed).

  * JAX is the library's step itself, not a re-implementation: `ssl_jax.methods.simclr.make(config, ...)` from a
    `base_config()` with the experiment's model and views, then `jax.jit(partial(simclr.step, method=method),
    donate_argnums=0)`, compiled ahead of time (the compile time is its own column). The views are made on device
    inside the step. The step also computes the metrics it returns (the loss, the learning rate, the gradient and
    parameter norms).
  * PyTorch (`benchmarks/_torch_models.py`) is what a PyTorch user writes: the same augmentations batched on
    tensors, the same encoder and projector (the parameter counts are checked to be equal), lightly's NT-Xent and
    `torch.optim.AdamW`, run eagerly with one intra-op thread per core (`--torch-threads` to change), with
    `OMP_WAIT_POLICY=PASSIVE` unless set otherwise (why: see the comment where it is set).
  * Both sides use AdamW (weight decay on weights of >= 2 dims, warm-up + cosine learning rate) so that the
    optimiser is the same code path on both; the experiment configs' LARS costs about as much per step.
  * Timing: two warm-up steps on each side, then `--steps` steps of each side interleaved ABBA
    (`_timing.interleaved`), medians reported; both sides see the same images and use float32.

With `--accelerator` it times the library's own steps on every device JAX sees (a data-parallel mesh, the batch
sharded, bfloat16 compute with float32 parameters, as the cluster configs run) for ResNet-50 SimCLR and BYOL at
224x224 with ImageNet's augmentations and ViT-S/16 DINO (2 global crops of 224 and 10 local crops of 96, 65,536
prototypes, as the paper's ViT-S run), and reports images/s and the model FLOPs utilisation: the step's FLOPs as
XLA counts them in the step's HLO before compilation (`step_flops`, on the CPU, the same whatever runs the step:
on a GPU the compiled module's count misses the cuDNN/cuBLAS calls), per device, divided by the step time and the
device's peak dense bfloat16 FLOP/s (`PEAK_FLOPS`, by `device_kind`; no MFU where the peak is unknown, e.g. CPUs).

The results of our last run are in `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

# PyTorch's OpenMP threads sleep rather than spin while they wait (set before torch is imported; an explicit
# OMP_WAIT_POLICY wins). Spinning threads make eager PyTorch several times slower as soon as another process
# wants the same cores, which would flatter JAX on a shared machine; XLA's own thread pool does not spin long.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Make `ssl_jax` (repository root) and `_timing` / `_torch_models` (this folder) importable when run as a script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))

import _timing  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of the table: an encoder at an input shape, with the settings of the experiment it comes from.

  Attributes:
    key: what `--models` matches ("convnet" or "resnet18").
    label: the model's name in the table.
    encoder: `config.model.encoder`.
    image_shape: (H, W, C) of the input.
    dataset: `config.data.name`, which sets the normalisation mean and std.
    proj_hidden_dim, proj_dim: the projector, as in the experiment's config.
    crop_scale_min: the views' smallest crop area, as in the experiment's config.
    batch_size: default global batch of the full run.
    steps: default number of timed steps per side of the full run.
  """
  key: str
  label: str
  encoder: str
  image_shape: tuple[int, int, int]
  dataset: str
  proj_hidden_dim: int
  proj_dim: int
  crop_scale_min: float
  batch_size: int
  steps: int


# ConvNet rows follow configs/ssl/simclr_fashion_mnist.py (the default experiment), the ResNet row
# configs/simclr/cifar10_resnet18.py (in float32, without its solarisation, which costs nothing measurable).
ROWS = (
    Row("convnet", "ConvNet (32, 64, 128)", "convnet", (28, 28, 1), "fashion_mnist", 256, 64, 0.3, 256, 10),
    Row("convnet", "ConvNet (32, 64, 128)", "convnet", (32, 32, 3), "cifar10", 256, 64, 0.3, 256, 10),
    Row("resnet18", "ResNet-18 (CIFAR stem)", "resnet18_cifar", (32, 32, 3), "cifar10", 2048, 256, 0.08, 128, 5),
)
QUICK_BATCH = {"convnet": 32, "resnet18": 8}
LR, WEIGHT_DECAY, WARMUP_STEPS, TOTAL_STEPS, TEMPERATURE = 2e-3, 1e-4, 200, 3000, 0.2


def make_config(row: Row, batch_size: int):
  """The ssl_jax config of a row: `base_config("simclr")` with the row's model and views, AdamW, no probe."""
  from ssl_jax.data import views  # pylint: disable=g-import-not-at-top
  from ssl_jax.train.config import base_config  # pylint: disable=g-import-not-at-top

  c = base_config("simclr")
  c.batch_size = batch_size
  c.total_steps = TOTAL_STEPS
  c.data.name = row.dataset
  c.model.encoder = row.encoder
  c.model.widths = (32, 64, 128)
  c.model.dtype = "float32"
  c.simclr.proj_hidden_dim = row.proj_hidden_dim
  c.simclr.proj_dim = row.proj_dim
  c.simclr.proj_layers = 2
  # SimCLR's CIFAR views (colour strength 0.5, no blur), with the row's crop scale.
  c.simclr.views = views.to_config(views.SimCLRViews(
      crop_scale=(row.crop_scale_min, 1.0), brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
      blur_p=(0.0, 0.0)))
  c.simclr.temperature = TEMPERATURE
  c.simclr.block_size = 0
  c.optim.name = "adamw"
  c.optim.lr = LR
  c.optim.scale_lr_with_batch = False
  c.optim.warmup_steps = WARMUP_STEPS
  c.optim.end_lr_factor = 0.0
  c.optim.weight_decay = WEIGHT_DECAY
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.grad_clip_norm = 0.0
  c.eval.online_probe = False
  return c


# ----------------------------------------------------------------------------------------------------------
# The two sides.
# ----------------------------------------------------------------------------------------------------------


class JaxStep:
  """ssl_jax's SimCLR step, jitted with the state donated and compiled ahead of time; each call is one update."""

  def __init__(self, row: Row, batch_size: int, images: np.ndarray, labels: np.ndarray, *,
               xla_kernel_grad: bool = False, package: str = "ssl_jax"):
    """`xla_kernel_grad`: compile the step with XLA's own convolution kernel gradient (the step before
    `ssl_jax.models.conv`), to time before and after side by side. `package`: the importable copy of the
    library whose step is timed (`train_step_ab.py` times an older revision as `ssl_jax_before`)."""
    from ssl_jax.models.conv import KERNEL_GRAD_ENV  # pylint: disable=g-import-not-at-top
    saved = os.environ.pop(KERNEL_GRAD_ENV, None)
    if xla_kernel_grad:
      os.environ[KERNEL_GRAD_ENV] = "xla"  # read when the step is traced, below
    try:
      self._build(row, batch_size, images, labels, package)
    finally:
      os.environ.pop(KERNEL_GRAD_ENV, None)
      if saved is not None:
        os.environ[KERNEL_GRAD_ENV] = saved

  def _build(self, row: Row, batch_size: int, images: np.ndarray, labels: np.ndarray, package: str):
    import jax  # pylint: disable=g-import-not-at-top

    data = importlib.import_module(package + ".data")
    simclr = importlib.import_module(package + ".methods.ssl.simclr")

    self._jax = jax
    config = make_config(row, batch_size)
    info = data.DatasetInfo(row.image_shape, 10, "train", "test", rgb=row.image_shape[-1] == 3)
    self.method = simclr.make(config, info)
    mesh_lib = importlib.import_module(package + ".train.mesh")
    # As the trainer runs it: one data-parallel mesh over every device JAX sees (on CPU, one per core by
    # default: `ssl_jax.train.mesh.setup_cpu_devices`), the state replicated and the batch sharded.
    mesh = mesh_lib.make_mesh()
    self.devices = mesh.devices.size
    repl, sharded = mesh_lib.replicated(mesh), mesh_lib.batch_sharded(mesh)
    self.state = jax.jit(functools.partial(simclr.init, self.method), out_shardings=repl)(jax.random.PRNGKey(0))
    self.batch = jax.device_put({"image": np.asarray(images), "label": np.asarray(labels)}, sharded)
    jax.block_until_ready((self.state, self.batch))
    self.num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(
        {k: self.state.params[k] for k in ("encoder", "projector")}))
    t0 = time.perf_counter()
    step = jax.jit(functools.partial(simclr.step, self.method), in_shardings=(repl, sharded),
                   out_shardings=(repl, repl), donate_argnums=0)
    self.compiled = step.lower(self.state, self.batch).compile()
    self.compile_s = time.perf_counter() - t0
    self.warm = False
    self.first_loss = None

  def call(self) -> Any:
    self.state, metrics = self.compiled(self.state, self.batch)
    return self._jax.block_until_ready((self.state, metrics))[1]

  def warmup(self) -> None:
    self.first_loss = float(self.call()["train/loss"])
    self.call()
    self.warm = True

  def time_once(self) -> float:
    t0 = time.perf_counter()
    self.call()
    return time.perf_counter() - t0


class TorchStep:
  """The PyTorch eager SimCLR step of `_torch_models`, built to mirror `method` (views, widths, projector)."""

  def __init__(self, row: Row, method: Any, images: np.ndarray, seed: int = 0):
    import torch  # pylint: disable=g-import-not-at-top

    import _torch_models as T  # pylint: disable=g-import-not-at-top

    torch.manual_seed(seed)
    v = method.views
    h, w, c = row.image_shape
    size = getattr(v, "size", None)
    if size is not None and _pair_of(size) != (h, w):
      raise ValueError(f"The PyTorch views keep the input size {h}x{w}, but ssl_jax's views resize to {size}.")
    if any(p > 0 for p in _pair_of(getattr(v, "blur_p", 0.0))):
      raise ValueError("The PyTorch views have no Gaussian blur; run with blur_p = (0, 0) in config.simclr.views.")
    mean, std = v.mean, v.std
    if mean is None or std is None:
      mean, std = (0.0,) * c, (1.0,) * c
    self.views = T.SimCLRViews(
        crop_scale=tuple(v.crop_scale), crop_ratio=tuple(getattr(v, "crop_ratio", (3 / 4, 4 / 3))),
        flip_p=v.flip_p, brightness=v.brightness, contrast=v.contrast, saturation=v.saturation, hue=v.hue,
        jitter_p=v.jitter_p, grayscale_p=v.grayscale_p, solarize_p=_pair_of(getattr(v, "solarize_p", 0.0)),
        mean=mean, std=std)
    if row.encoder == "convnet":
      encoder = T.ConvNet(c, widths=tuple(method.encoder.widths),
                          convs_per_stage=method.encoder.convs_per_stage)
    else:
      enc = method.encoder
      if tuple(enc.stage_sizes) != (2, 2, 2, 2) or enc.stem != "cifar":
        raise ValueError(f"The PyTorch side mirrors ResNet-18 with the CIFAR stem only; got {enc}.")
      encoder = T.ResNet18Cifar(c, widths=tuple(enc.num_filters * 2 ** i for i in range(4)))
    projector = T.MLPHead(encoder.feature_dim, tuple(method.projector.hidden_dims), method.projector.out_dim)
    self.step = T.SimCLRStep(encoder, projector, self.views, temperature=method.temperature, lr=LR,
                             weight_decay=WEIGHT_DECAY, betas=(0.9, 0.999), warmup_steps=WARMUP_STEPS,
                             total_steps=TOTAL_STEPS, end_lr_factor=0.0)
    self.num_params = self.step.num_params()
    self.images = torch.from_numpy(images)
    self.warm = False
    self.first_loss = None

  def warmup(self) -> None:
    # Two steps: PyTorch's first steps also create the optimiser state and grow its allocator's pools.
    self.first_loss = float(self.step(self.images))
    self.step(self.images)
    self.warm = True

  def time_once(self) -> float:
    t0 = time.perf_counter()
    self.step(self.images)
    return time.perf_counter() - t0


def _pair_of(p) -> tuple[float, float]:
  return (float(p), float(p)) if isinstance(p, (int, float)) else (float(p[0]), float(p[1]))


# ----------------------------------------------------------------------------------------------------------
# Running and reporting.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
  row: Row
  batch_size: int
  steps: int
  jax_params: int
  torch_params: int
  devices: int
  compile_s: float
  jax: _timing.Timing
  torch: _timing.Timing
  before: _timing.Timing | None  # the step with XLA's own convolution kernel gradient
  jax_first_loss: float
  torch_first_loss: float

  @property
  def jax_ips(self) -> float:
    return self.batch_size / self.jax.median

  @property
  def torch_ips(self) -> float:
    return self.batch_size / self.torch.median

  @property
  def ratio(self) -> float:
    return self.jax_ips / self.torch_ips

  @property
  def before_ips(self) -> float | None:
    return None if self.before is None else self.batch_size / self.before.median


def run_row(row: Row, batch_size: int, steps: int, seed: int, log, *, before: bool = True) -> Result:
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (batch_size, *row.image_shape), dtype=np.uint8)
  labels = rng.integers(0, 10, (batch_size,), dtype=np.int32)
  jax_step = JaxStep(row, batch_size, images, labels)
  log(f"  JAX: compiled in {jax_step.compile_s:.1f} s; {jax_step.num_params:,} parameters (encoder + projector)")
  before_step = JaxStep(row, batch_size, images, labels, xla_kernel_grad=True) if before else None
  torch_step = TorchStep(row, jax_step.method, images, seed=seed)
  log(f"  PyTorch: {torch_step.num_params:,} parameters")
  if torch_step.num_params != jax_step.num_params:
    log(f"  WARNING: parameter counts differ (JAX {jax_step.num_params:,}, PyTorch {torch_step.num_params:,}); "
        "the PyTorch model does not mirror the Flax one.")
  jax_step.warmup()
  torch_step.warmup()
  log(f"  first-step loss: JAX {jax_step.first_loss:.3f}, PyTorch {torch_step.first_loss:.3f} "
      f"(log(2B - 1) = {np.log(2 * batch_size - 1):.3f})")
  timers = [jax_step, torch_step] + ([before_step] if before_step else [])
  if before_step:
    before_step.warmup()
    if not np.isclose(before_step.first_loss, jax_step.first_loss, rtol=1e-5):
      raise RuntimeError(f"The two JAX steps compute different losses ({jax_step.first_loss} and "
                         f"{before_step.first_loss}); the convolution's kernel gradient changed what is computed.")
  times = _timing.interleaved(timers, steps)
  return Result(row, batch_size, steps, jax_step.num_params, torch_step.num_params, jax_step.devices,
                jax_step.compile_s, times[0],
                times[1], times[2] if before_step else None, jax_step.first_loss, torch_step.first_loss)


def _devices_config(cpu_devices: int, batch_size: int):
  """The two config fields `setup_cpu_devices` reads, for rows whose batches are all multiples of batch_size."""
  from ssl_jax.train.config import base_config  # pylint: disable=g-import-not-at-top
  c = base_config("simclr")
  c.batch_size = batch_size
  c.distributed.cpu_devices = cpu_devices
  return c


def _fmt_ips(x: float) -> str:
  return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def render(results: Sequence[Result], info: dict, *, markdown: bool, argv: Sequence[str]) -> str:
  headers = ["model", "input", "batch", "params", "JAX devices", "JAX img/s", "PyTorch img/s", "JAX / PyTorch",
             "before: XLA kernel grad img/s", "before / PyTorch", "JAX compile s"]
  rows = []
  for r in results:
    params = f"{r.jax_params / 1e6:.2f}M" if r.jax_params == r.torch_params else (
        f"{r.jax_params / 1e6:.2f}M vs {r.torch_params / 1e6:.2f}M (!)")
    before = ([_fmt_ips(r.before_ips), f"{r.before_ips / r.torch_ips:.2f}x"] if r.before is not None
              else ["-", "-"])
    rows.append([r.row.label, "x".join(map(str, r.row.image_shape)), str(r.batch_size), params, str(r.devices),
                 _fmt_ips(r.jax_ips), _fmt_ips(r.torch_ips), f"{r.ratio:.2f}x", *before, f"{r.compile_s:.1f}"])
  table = _timing.format_table(headers, rows, markdown=markdown, align_right=[False, False] + [True] * 9)
  steps = "/".join(sorted({str(r.steps) for r in results}, key=int))
  notes = [
      f"Machine: {_timing.format_machine(info)}.",
      f"Command: python benchmarks/train_step.py {' '.join(argv)}".rstrip() + ".",
      "One SimCLR update per step: two augmented views of each image (random resized crop, flip, colour jitter, "
      "grayscale), encoder + projector forward on both views, NT-Xent, backward, AdamW. img/s counts each source "
      f"image once; medians of {steps} steps per side, timed interleaved after warm-up. "
      "JAX: ssl_jax.methods.simclr.step under jax.jit (views made inside the step), the batch sharded over "
      "JAX's CPU devices (`distributed.cpu_devices`: by default one per core); "
      "Before: the same JAX step with XLA's own convolution kernel gradient (SSL_JAX_CONV_KERNEL_GRAD=xla), "
      "timed in the same interleaved rounds. "
      "PyTorch: eager, benchmarks/_torch_models.py, "
      f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}. float32 both sides.",
  ]
  return table + "\n\n" + ("\n\n" if markdown else "\n").join(notes)


# ----------------------------------------------------------------------------------------------------------
# Accelerator rows: JAX only, sharded over every device, bfloat16 compute.
# ----------------------------------------------------------------------------------------------------------

# Peak dense bfloat16 FLOP/s per device, from the vendors' data sheets (without sparsity).
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100": 989e12, "NVIDIA H200": 989e12, "NVIDIA GH200": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12, "NVIDIA A100-SXM4-40GB": 312e12, "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA L4": 121e12, "NVIDIA A10G": 125e12, "NVIDIA B200": 2250e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12, "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def step_flops(row_label: str, global_batch: int, image_size: int, dtype: str) -> float:
  """FLOPs of one whole (global-batch) step of an `ACCEL_ROWS` row, as XLA's cost analysis counts its HLO.

  Counted in a CPU-only subprocess (`JAX_PLATFORMS=cpu`) on abstract shapes (nothing is allocated or compiled),
  from the step's HLO before compilation, with XLA's own convolution gradients
  (`ssl_jax.models.conv.KERNEL_GRAD_ENV`: the CPU's chunked kernel gradient is a loop whose body the analysis
  counts once), so the count is the same whatever device runs the step. Not `compiled.cost_analysis()` on the
  device: on a GPU the compiled module hands convolutions and matrix products to cuDNN / cuBLAS as custom calls,
  which the analysis counts as 0 (an H200 gave 0.13 TFLOP for a ResNet-50 SimCLR step of 128 images at 224x224,
  where this count gives 6.12; by hand, 256 views x 23.8 GFLOP forward and backward = 6.1), and the analysis of
  the uncompiled module returned nothing there (jax 0.11.2).
  """
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "", "SSL_JAX_CONV_KERNEL_GRAD": "xla"}
  cmd = [sys.executable, os.path.abspath(__file__), "--count-flops", row_label, "--batch-size", str(global_batch),
         "--image-size", str(image_size), "--dtype", dtype]
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
  lines = [line for line in out.stdout.splitlines() if line.startswith("flops=")]
  if out.returncode or not lines:
    raise RuntimeError(f"counting the FLOPs of {row_label} failed:\n{out.stderr[-2000:]}")
  return float(lines[-1].split("=", 1)[1])


def _count_flops_main(row_label: str, global_batch: int, image_size: int, dtype: str) -> int:
  """`--count-flops`: print flops=<FLOPs of one step> for a row (see `step_flops`; run under JAX_PLATFORMS=cpu)."""
  import jax  # pylint: disable=g-import-not-at-top

  row = next(r for r in ACCEL_ROWS if r.label == row_label)
  module, method = accel_method(row, global_batch, image_size, dtype)
  state = jax.eval_shape(lambda k: module.init(method, k), jax.random.key(0))
  batch = {"image": jax.ShapeDtypeStruct((global_batch, image_size, image_size, 3), np.uint8),
           "label": jax.ShapeDtypeStruct((global_batch,), np.int32)}
  cost = jax.jit(functools.partial(module.step, method)).lower(state, batch).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  print(f"flops={float((cost or {}).get('flops', 0.0))!r}")
  return 0


@dataclasses.dataclass(frozen=True)
class AccelRow:
  label: str
  method: str
  encoder: str
  image_size: int
  batch_per_device: int


ACCEL_ROWS = (
    AccelRow("ResNet-50 SimCLR", "simclr", "resnet50_imagenet", 224, 128),
    AccelRow("ResNet-50 BYOL", "byol", "resnet50_imagenet", 224, 128),
    AccelRow("ViT-S/16 DINO", "dino", "vit_small", 224, 64),
)


def peak_flops(device) -> float | None:
  kind = getattr(device, "device_kind", "")
  return PEAK_FLOPS.get(kind) or next((v for k, v in PEAK_FLOPS.items() if kind.startswith(k)), None)


def accel_config(row: AccelRow, global_batch: int, image_size: int, dtype: str):
  """The method's base config with ImageNet's 224 views (or `image_size`), the row's encoder and dtype."""
  from ssl_jax.data import views  # pylint: disable=g-import-not-at-top
  from ssl_jax.train.config import base_config  # pylint: disable=g-import-not-at-top
  c = base_config(row.method)
  c.batch_size = global_batch
  c.total_steps = 1000
  c.data.name = "imagenet2012"
  c.model.encoder = row.encoder
  c.model.dtype = dtype
  if row.method == "dino":  # 2 global crops of image_size and 10 local ones of 96/224 of it, patch 16
    c.model.patch_size = 16
    local = max(16, round(image_size * 96 / 224 / 16) * 16)
    c.dino.num_prototypes = 65536  # the paper's ViT-S head
    c.dino.views = views.to_config(dataclasses.replace(views.DINO, global_size=image_size, num_local=10,
                                                       local_size=local))
  else:
    preset = views.SIMCLR if row.method == "simclr" else views.BYOL
    c[row.method].views = views.to_config(dataclasses.replace(preset, size=image_size))
  c.eval.online_probe = True
  return c


def accel_method(row: AccelRow, global_batch: int, image_size: int, dtype: str):
  """(method module, method) of a row: `accel_config` on ImageNet-shaped data."""
  from ssl_jax.data import DatasetInfo  # pylint: disable=g-import-not-at-top
  from ssl_jax.methods import METHODS  # pylint: disable=g-import-not-at-top
  module = METHODS[row.method]
  info = DatasetInfo((image_size, image_size, 3), 1000, "train", "validation", rgb=True)
  return module, module.make(accel_config(row, global_batch, image_size, dtype), info)


def run_accel_row(row: AccelRow, *, batch_per_device: int, image_size: int, steps: int, dtype: str, log) -> dict:
  import jax  # pylint: disable=g-import-not-at-top

  from ssl_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

  mesh = mesh_lib.make_mesh()
  n = mesh.devices.size
  global_batch = batch_per_device * n
  module, method = accel_method(row, global_batch, image_size, dtype)
  repl, sharded = mesh_lib.replicated(mesh), mesh_lib.batch_sharded(mesh)
  state = jax.jit(lambda k: module.init(method, k), out_shardings=repl)(jax.random.key(0))
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (global_batch, image_size, image_size, 3), dtype=np.uint8),
           "label": rng.integers(0, 1000, (global_batch,), dtype=np.int32)}
  batch = jax.device_put(batch, sharded)
  step = jax.jit(functools.partial(module.step, method), in_shardings=(repl, sharded),
                 out_shardings=(repl, repl), donate_argnums=0)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  flops = step_flops(row.label, global_batch, image_size, dtype) / n
  for _ in range(2):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  median = float(np.median(times))
  peak = peak_flops(jax.devices()[0])
  out = {"model": row.label, "input": f"{image_size}x{image_size}x3", "devices": n,
         "device": jax.devices()[0].device_kind, "global_batch": global_batch, "dtype": dtype,
         "step_ms": 1e3 * median, "images_per_s": global_batch / median, "tflops_per_device_step": flops / 1e12,
         "mfu": (flops / median / peak) if (peak and flops) else None, "compile_s": compile_s,
         "loss": float(metrics["train/loss"]), "step_times_s": times}
  log(f"  {row.label}: {out['step_ms']:.0f} ms/step, {out['images_per_s']:.0f} img/s, "
      f"{flops / 1e12:.2f} TFLOP per device-step, MFU {out['mfu'] if out['mfu'] is not None else 'n/a'}")
  return out


def render_accel(results: Sequence[dict], info: dict, *, markdown: bool, argv: Sequence[str]) -> str:
  headers = ["model", "input", "devices", "device", "global batch", "dtype", "ms/step", "img/s",
             "TFLOP/device/step", "MFU", "compile s"]
  rows = [[r["model"], r["input"], str(r["devices"]), r["device"], str(r["global_batch"]), r["dtype"],
           f"{r['step_ms']:.0f}", _fmt_ips(r["images_per_s"]), f"{r['tflops_per_device_step']:.2f}",
           "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%", f"{r['compile_s']:.1f}"] for r in results]
  table = _timing.format_table(headers, rows, markdown=markdown, align_right=[False] * 4 + [True] * 7)
  notes = [f"Machine: {_timing.format_machine(info)}.",
           f"Command: python benchmarks/train_step.py {' '.join(argv)}".rstrip() + ".",
           "The library's step (views made on device inside it, online linear probe included), jitted over a "
           "data-parallel mesh of every device with the batch sharded; medians of the timed steps after two "
           "warm-up steps. MFU: XLA's FLOP count of the step per device / step time / the device's peak dense "
           "bfloat16 FLOP/s."]
  return table + "\n\n" + ("\n\n" if markdown else "\n").join(notes)


def main_accelerator(args, argv, log) -> int:
  info = _timing.machine_info(with_torch=False)
  log("Machine: " + _timing.format_machine(info))
  results = []
  for row in ACCEL_ROWS:
    batch = args.batch_size or (4 if args.quick else row.batch_per_device)
    size = args.image_size or (64 if args.quick else row.image_size)
    steps = args.steps or (2 if args.quick else 20)
    log(f"{row.label} {size}x{size}, {batch} per device ...")
    results.append(run_accel_row(row, batch_per_device=batch, image_size=size, steps=steps, dtype=args.dtype,
                                 log=log))
  print(render_accel(results, info, markdown=args.markdown, argv=argv))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": info, "argv": argv, "results": results}, f, indent=2)
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true",
                      help=f"small batches ({QUICK_BATCH}) and 2 timed steps: a smoke run (< 60 s)")
  parser.add_argument("--models", nargs="+", choices=sorted({r.key for r in ROWS}), default=None,
                      help="only these encoders (default: all rows)")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="global batch of every row (default: 256 for the ConvNet, 128 for ResNet-18; per device with --accelerator)")
  parser.add_argument("--steps", type=int, default=None,
                      help="timed steps per side (default: 10 for the ConvNet, 5 for ResNet-18; 2 with --quick)")
  parser.add_argument("--markdown", action="store_true", help="print the table as GitHub markdown")
  parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
  parser.add_argument("--torch-threads", type=int, default=None,
                      help="PyTorch intra-op threads (default: one per core, as JAX uses)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--accelerator", action="store_true",
                      help="GPU/TPU rows: ResNet-50 SimCLR and BYOL at 224x224, images/s and MFU, JAX only")
  parser.add_argument("--image-size", type=int, default=None, help="--accelerator: image side (default 224)")
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                      help="--accelerator: compute dtype (parameters stay float32)")
  parser.add_argument("--cpu-devices", type=int, default=0,
                      help="JAX CPU devices (the config's distributed.cpu_devices; default 0: one per core, as "
                           "the trainer runs)")
  parser.add_argument("--count-flops", metavar="ROW", default=None, help=argparse.SUPPRESS)  # see step_flops
  parser.add_argument("--no-before", action="store_true",
                      help="do not also time the step with XLA's own convolution kernel gradient")
  args = parser.parse_args(argv)
  if args.batch_size is not None and args.batch_size < 2:
    parser.error(f"--batch-size must be at least 2 (NT-Xent needs negatives), got {args.batch_size}")
  if args.steps is not None and args.steps < 1:
    parser.error(f"--steps must be positive, got {args.steps}")

  def log(msg):
    print(msg, file=sys.stderr, flush=True)

  if args.count_flops:
    return _count_flops_main(args.count_flops, args.batch_size, args.image_size, args.dtype)
  if args.accelerator:
    return main_accelerator(args, argv, log)
  # As the trainer does before JAX makes its devices: on CPU, one device per core unless told otherwise.
  from ssl_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  batches = [args.batch_size or (QUICK_BATCH[r.key] if args.quick else r.batch_size) for r in ROWS
             if args.models is None or r.key in args.models]
  mesh_lib.setup_cpu_devices(_devices_config(args.cpu_devices, int(np.gcd.reduce(batches))))
  if args.torch_threads is None:
    _timing.setup_torch_threads()
  else:
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(args.torch_threads)
  info = _timing.machine_info()
  log("Machine: " + _timing.format_machine(info))

  rows = [r for r in ROWS if args.models is None or r.key in args.models]
  results = []
  for row in rows:
    batch = args.batch_size or (QUICK_BATCH[row.key] if args.quick else row.batch_size)
    steps = args.steps or (2 if args.quick else row.steps)
    log(f"{row.label} {'x'.join(map(str, row.image_shape))}, batch {batch} ...")
    r = run_row(row, batch, steps, args.seed, log, before=not args.no_before)
    log(f"  JAX {r.jax.median_ms:.0f} ms/step ({_fmt_ips(r.jax_ips)} img/s, spread {r.jax.spread_ms:.0f} ms), "
        f"PyTorch {r.torch.median_ms:.0f} ms/step ({_fmt_ips(r.torch_ips)} img/s, spread {r.torch.spread_ms:.0f} ms): "
        f"{r.ratio:.2f}x")
    results.append(r)

  print(render(results, info, markdown=args.markdown, argv=argv))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": info, "argv": argv, "results": [{
          "model": r.row.label, "encoder": r.row.encoder, "input": list(r.row.image_shape),
          "batch_size": r.batch_size, "steps": r.steps, "jax_devices": r.devices, "jax_params": r.jax_params, "torch_params": r.torch_params,
          "jax_compile_s": r.compile_s, "jax_step_times_s": r.jax.times, "torch_step_times_s": r.torch.times,
          "jax_images_per_s": r.jax_ips, "torch_images_per_s": r.torch_ips, "ratio": r.ratio,
          "jax_first_loss": r.jax_first_loss, "torch_first_loss": r.torch_first_loss,
          "before_step_times_s": r.before.times if r.before else None,
          "before_images_per_s": r.before_ips} for r in results]}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
