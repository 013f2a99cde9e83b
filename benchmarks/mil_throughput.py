r"""MIL training throughput: padded batches of many bags against one bag per step (the reference code's way).

    python benchmarks/mil_throughput.py [--encoder lenet_mil] [--batches 32,64] [--repeats 7] [--bags-per-repeat 128]

On a machine without TensorFlow (an accelerator image that has JAX but not TFDS), write the digits here and
read them there; the bags are drawn from them exactly as the `mnist5k` stream draws them:

    python benchmarks/mil_throughput.py --export-npz digits.npz          # here: mnist5k's train split
    python benchmarks/mil_throughput.py --images-npz digits.npz          # there

The same model and the same jitted training step of `ssl_jax.methods.mil` (`configs/mil/mil_mnist_bags.py`:
the paper's LeNet and gated attention, Adam) is run on MNIST-bags (mean bag size 10 +- 2):

* batch size 1, as the reference code of Ilse et al. (PyTorch, `batch_size=1`): one bag per step at its own
  length, unpadded (each length compiled once during warm-up, so no step compiles while timed);
* batches of 32 and 64 bags padded to 16 instances (ceil(mean + 3 std)) with a mask, as `streams.Bags` gives.

Steady state only: every step shape is compiled and run once before timing; each repeat trains on
`--bags-per-repeat` bags, the settings interleaved repeat by repeat (so load from other processes hits them
alike), and we report the median over repeats of the time per bag (the step's wall time / bags in it),
with every step waited for (`jax.block_until_ready`).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--encoder", default="lenet_mil", help="lenet_mil (the paper's), lenet_mil_small or mlp")
  p.add_argument("--pooling", default="gated_attention")
  p.add_argument("--batches", default="32,64", help="padded batch sizes to compare with batch size 1")
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--bags-per-repeat", type=int, default=128)
  p.add_argument("--images-npz", default="",
                 help="read the training digits from this .npz (images uint8 [N, 28, 28, 1], labels [N]) instead "
                      "of the TFDS builder, e.g. on a machine without TensorFlow; see --export-npz")
  p.add_argument("--export-npz", default="", help="write the training digits of the config's data to this .npz "
                                                  "and exit")
  args = p.parse_args(argv)
  batches = [int(b) for b in args.batches.split(",")]

  import importlib.util  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ssl_jax.train import trainer  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, "configs/mil/mil_mnist_bags.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(f"pooling={args.pooling},encoder={args.encoder},train_bags=500")
  config.mil.test_bags = 1
  plan = trainer.preflight(config)
  from ssl_jax.data.streams import draw_split_bags, gather_bags  # pylint: disable=g-import-not-at-top
  if args.images_npz:
    with np.load(args.images_npz) as f:
      images, labels = f["images"], f["labels"]
    bags = draw_split_bags(plan.spec, labels, split=0)  # the stream's own draw of the train bags
  else:
    stream = trainer.load_stream(plan)
    bags = stream.train_bags
    images, labels = stream._data.train.images, stream._data.train.labels  # pylint: disable=protected-access
    if args.export_npz:
      np.savez_compressed(args.export_npz, images=np.asarray(images), labels=np.asarray(labels))
      print(f"wrote {len(labels)} training images of {config.data.name} to {args.export_npz}")
      return 0
  step = jax.jit(functools.partial(plan.module.step, plan.method), donate_argnums=0)
  state = jax.jit(functools.partial(plan.module.init, plan.method))(jax.random.PRNGKey(0))

  def batch_of(rows, *, unpadded):
    b = gather_bags(images, bags, np.asarray(rows))
    b = {k: b[k] for k in ("instances", "mask", "label")}
    if unpadded:  # one bag at its own length, as the reference code feeds it
      n = int(b["mask"].sum())
      b = {"instances": b["instances"][:, :n], "mask": b["mask"][:, :n], "label": b["label"]}
    return jax.device_put(b)

  num = len(bags["label"])
  settings = {1: [batch_of([i % num], unpadded=True) for i in range(args.bags_per_repeat)]}
  for b in batches:
    settings[b] = [batch_of([(j * b + i) % num for i in range(b)], unpadded=False)
                   for j in range(max(1, args.bags_per_repeat // b))]

  t0 = time.perf_counter()
  for data in settings.values():  # compile every shape (batch 1: every bag length) and warm up
    for batch in data:
      state, metrics = step(state, batch)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - t0

  per_bag = {b: [] for b in settings}
  for r in range(args.repeats):
    order = list(settings) if r % 2 == 0 else list(settings)[::-1]
    for b in order:
      data = settings[b]
      start = time.perf_counter()
      for batch in data:
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
      per_bag[b].append((time.perf_counter() - start) / (len(data) * b))
  base = statistics.median(per_bag[1])
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  dev = jax.devices()[0]
  where = (f"{platform.machine()} CPU, {len(os.sched_getaffinity(0))} cores" if dev.platform == "cpu"
           else f"{dev.device_kind} ({dev.platform})")
  print(f"MIL training throughput: {args.encoder} + {args.pooling}, MNIST-bags (mean 10 +- 2), "
        f"{where}, load average {load:.1f}, "
        f"jax {jax.__version__}; {args.repeats} repeats of {args.bags_per_repeat} bags, median; warm-up "
        f"and compilation {compile_s:.0f} s")
  print()
  print("| bags per step | padded to | ms per bag (median) | bags per second | speed-up per bag vs batch 1 |")
  print("| ---: | ---: | ---: | ---: | ---: |")
  for b in settings:
    med = statistics.median(per_bag[b])
    pad = "own length" if b == 1 else str(plan.spec.padded_size)
    print(f"| {b} | {pad} | {med * 1e3:.3g} | {1 / med:,.0f} | {base / med:.2f}x |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
