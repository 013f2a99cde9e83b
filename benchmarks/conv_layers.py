r"""Where the CPU training step loses to PyTorch: every convolution of the benchmark ConvNet, pass by pass.

  python benchmarks/conv_layers.py [--batch 512] [--runs 9] [--cpu-devices N] [--markdown] [--json PATH]

`benchmarks/train_step.py` times whole SimCLR steps; this script splits out their convolutions. For each 3x3
convolution of the ConvNet (32, 64, 128) of the train-step table, on the 28x28x1 and the 32x32x3 rows (batch 512:
the two views of 256 images), it times the three passes a training step runs:

  * forward: `ssl_jax.models.conv.conv2d` (XLA's convolution; jax 0.10's XLA:CPU hands it to YNNPACK) against
    `torch.nn.functional.conv2d` (oneDNN on x86);
  * input gradient: `jax.vjp` with respect to the input (XLA's transposed convolution) against
    `torch.ops.aten.convolution_backward` with only the input gradient asked for; not for a first layer, whose
    input (the images) gets no gradient in either step;
  * kernel gradient: the library's patches-times-gradient matmuls (`ssl_jax.models.conv`, the CPU default)
    against `convolution_backward` with only the weight gradient asked for.

Both sides get the same arrays (NHWC for JAX, NCHW for PyTorch, as each step holds them), the results are checked
equal (relative error <= 1e-4) before timing, and the calls are timed interleaved after a warm-up, medians of
`--runs` (`_timing.interleaved`). "JAX / PyTorch" is a speed ratio, as in train_step.py: below 1x JAX is
slower. The JAX arrays are sharded over the batch as the trainer shards them: over JAX's CPU devices, by default
one per core (`--cpu-devices 1`: one device, how the step ran before 2026-12-03). Results are in
`benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train_step.py: PyTorch's threads sleep while waiting

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))

import _timing  # pylint: disable=g-import-not-at-top,wrong-import-position

WIDTHS = (32, 64, 128)
ROWS = {"28x28x1": (28, 1), "32x32x3": (32, 3)}


def layers(side: int, channels: int) -> list[tuple[int, int, int, bool]]:
  """(side, in, out, first) of each convolution of the ConvNet: a 2x2 max-pool follows every stage but the last."""
  out, cin = [], channels
  for i, width in enumerate(WIDTHS):
    out.append((side, cin, width, i == 0))
    cin, side = width, side // 2
  return out


def time_layer(batch: int, side: int, cin: int, cout: int, first: bool, runs: int) -> list[dict]:
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from ssl_jax.models.conv import conv2d  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, side, side, cin), dtype=np.float32)
  k = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
  g = rng.standard_normal((batch, side, side, cout), dtype=np.float32)
  from ssl_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  mesh = mesh_lib.make_mesh()
  xj, gj = jax.device_put((x, g), mesh_lib.batch_sharded(mesh))
  kj = jax.device_put(k, mesh_lib.replicated(mesh))
  xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
  kt = torch.from_numpy(k).permute(3, 2, 0, 1).contiguous()
  gt = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous()

  def conv(x_, k_):
    return conv2d(x_, k_, padding=1)

  def torch_backward(mask):
    return lambda: torch.ops.aten.convolution_backward(gt, xt, kt, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                       mask)

  def torch_forward():
    with torch.no_grad():
      return torch.nn.functional.conv2d(xt, kt, padding=1)

  passes = [
      ("forward", _timing.JaxTimer(conv, (xj, kj)), torch_forward,
       lambda j, t: _timing.rel_err(j, t.permute(0, 2, 3, 1).numpy())),
      ("kernel gradient", _timing.JaxTimer(lambda x_, k_, g_: jax.vjp(lambda kk: conv(x_, kk), k_)[1](g_)[0],
                                           (xj, kj, gj)),
       torch_backward([False, True, False]),
       lambda j, t: _timing.rel_err(j, t[1].permute(2, 3, 1, 0).numpy())),
  ]
  if not first:
    passes.insert(1, (
        "input gradient", _timing.JaxTimer(lambda x_, k_, g_: jax.vjp(lambda xx: conv(xx, k_), x_)[1](g_)[0],
                                           (xj, kj, gj)),
        torch_backward([True, False, False]),
        lambda j, t: _timing.rel_err(j, t[0].permute(0, 2, 3, 1).numpy())))
  rows = []
  for name, jax_timer, torch_fn, compare in passes:
    torch_timer = _timing.TorchTimer(torch_fn)
    err = compare(jax_timer.warmup(), torch_timer.warmup())
    if err > 1e-4:
      raise SystemExit(f"error: {name} of the {side}x{side} {cin}->{cout} convolution differs between JAX and "
                       f"PyTorch (relative error {err:.2e}); the timing would compare different work.")
    tj, tt = _timing.interleaved([jax_timer, torch_timer], runs)
    rows.append({"layer": f"{side}x{side}, {cin}->{cout}", "pass": name, "jax_ms": tj.median_ms,
                 "torch_ms": tt.median_ms, "relerr": err,
                 "gflop": 2 * batch * side * side * 9 * cin * cout / 1e9})
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=512, help="images per call (train_step.py: 2 views x 256)")
  parser.add_argument("--runs", type=int, default=9, help="timed calls per side and pass")
  parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
  parser.add_argument("--markdown", action="store_true")
  parser.add_argument("--json", metavar="PATH")
  parser.add_argument("--cpu-devices", type=int, default=0,
                      help="JAX CPU devices, the batch sharded over them (default 0: one per core, as the trainer)")
  args = parser.parse_args(argv)
  from ssl_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.train.config import base_config  # pylint: disable=g-import-not-at-top
  devices_config = base_config("simclr")
  devices_config.batch_size, devices_config.distributed.cpu_devices = args.batch, args.cpu_devices
  mesh_lib.setup_cpu_devices(devices_config)  # before JAX makes its devices
  threads = _timing.setup_torch_threads()
  import torch  # pylint: disable=g-import-not-at-top

  results = {}
  for row in args.rows:
    side, channels = ROWS[row]
    results[row] = [r for layer in layers(side, channels) for r in time_layer(args.batch, *layer, args.runs)]
  headers = ["row", "layer", "pass", "GFLOP", "JAX ms", "PyTorch ms", "JAX / PyTorch", "JAX GFLOP/s",
             "PyTorch GFLOP/s"]
  table = []
  for row, rs in results.items():
    for r in rs + [{"layer": "all", "pass": "sum", "gflop": sum(x["gflop"] for x in rs),
                    "jax_ms": sum(x["jax_ms"] for x in rs), "torch_ms": sum(x["torch_ms"] for x in rs)}]:
      table.append([row, r["layer"], r["pass"], f"{r['gflop']:.2f}", _timing.fmt_ms(r["jax_ms"]),
                    _timing.fmt_ms(r["torch_ms"]), f"{r['torch_ms'] / r['jax_ms']:.2f}x",
                    f"{r['gflop'] / r['jax_ms'] * 1e3:.0f}", f"{r['gflop'] / r['torch_ms'] * 1e3:.0f}"])
  print(_timing.format_table(headers, table, markdown=args.markdown, align_right=[False] * 3 + [True] * 6))
  info = _timing.machine_info()
  import jax  # pylint: disable=g-import-not-at-top
  print(f"\nMachine: {_timing.format_machine(info)}; PyTorch oneDNN: {torch.backends.mkldnn.is_available()}; "
        f"{threads} PyTorch threads; JAX on {jax.device_count()} CPU device(s), the batch sharded. Batch "
        f"{args.batch}, medians of {args.runs} interleaved calls.")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": info, "batch": args.batch, "runs": args.runs, "jax_devices": jax.device_count(),
                 "results": results}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
