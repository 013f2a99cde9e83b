"""Hyperparameter sweeps of Fashion-MNIST configs on an accelerator machine that has JAX but no TensorFlow.

Not part of the library and not how results are reported: it finds which config changes are worth a run on the
2 CPU cores, where each Fashion-MNIST config takes 8-10 minutes. It calls `ssl_jax.train.trainer.train_and_evaluate`
(the same code as `python -m ssl_jax.main`) with two substitutions, because the GPU image we are lent has no
TensorFlow: the dataset's arrays come from an .npz file written here (`--export`), and clu's metric writer
(clu imports TensorFlow) is replaced by one that drops the scalars (metrics.jsonl is still written).

  python experiments/gpu_sweep/sweep.py --export .gpu/fmnist.npz          # here, with TFDS and the IDX files
  python experiments/gpu_sweep/sweep.py OUT.jsonl .gpu/fmnist.npz \
      'configs/ssl/barlow_twins_fashion_mnist.py|optim.lr=0.003|seed=1' ...   # there; one JSON line per run

Overrides are `dotted.name=value`, parsed as the field's type like `--config.dotted.name=value`.
`experiments/gpu_sweep/sweep1.sh` and `sweep2.sh` are the two device calls of 2026-12-04
(`experiments/results/ssl_gpu_sweep/`).
"""
import json
import os
import sys
import time
import types

import numpy as np

if sys.argv[1] == "--export":
  sys.path.insert(0, os.getcwd())
  from ssl_jax.data import datasets as _ds  # pylint: disable=g-import-not-at-top
  _split = {s: _ds.load_arrays("fashion_mnist", s, data_dir="/usr/share/datasets/fashion-mnist")
            for s in ("train", "test")}
  np.savez_compressed(sys.argv[2], **{f"{s}_{k}": getattr(d, k) for s, d in _split.items()
                                      for k in ("images", "labels")})
  sys.exit(0)

if os.environ.get("SWEEP_BLOCK_TF", "1") == "1":
  for m in ("tensorflow", "tensorflow_datasets", "mlxtend"):
    sys.modules[m] = None


class _Writer:
  def write_scalars(self, step, scalars):
    pass

  def write(self, *a, **k):
    pass

  def flush(self):
    pass

  def close(self):
    pass


clu = types.ModuleType("clu")
mw = types.ModuleType("clu.metric_writers")
mw.create_default_writer = lambda workdir, just_logging=False: _Writer()
clu.metric_writers = mw
sys.modules["clu"] = clu
sys.modules["clu.metric_writers"] = mw

sys.path.insert(0, os.getcwd())
import ssl_jax.data as data_lib  # noqa: E402
from ssl_jax.data import datasets  # noqa: E402
from ssl_jax.train import config as config_lib  # noqa: E402
from ssl_jax.train import trainer  # noqa: E402

OUT, NPZ = sys.argv[1], sys.argv[2]
_npz = np.load(NPZ)


def load_arrays(name, split, **kw):
  assert name == "fashion_mnist", name
  key = "train" if split.startswith("train") else "test"
  return datasets.ArrayDataset(images=_npz[f"{key}_images"], labels=_npz[f"{key}_labels"].astype(np.int32),
                               num_classes=10, name=name)


data_lib.load_arrays = load_arrays
datasets.load_arrays = load_arrays


def load_config(spec):
  """`FILE.py[:arg]|a.b=v|...`: the config file, then each override parsed as its field's type (as the CLI does)."""
  path, *overrides = spec.split("|")
  c = config_lib.load_config(path)
  for o in overrides:
    config_lib.override(c, *o.split("=", 1))
  return c


for i, spec in enumerate(sys.argv[3:]):
  c = load_config(spec)
  if os.environ.get("SWEEP_DRY"):
    config_lib.validate(c)
    print("ok", spec)
    continue
  workdir = os.path.join(os.environ.get("SWEEP_WORK", "/tmp/sweep"), f"run{os.getpid()}_{i}")
  t0 = time.time()
  try:
    res = trainer.train_and_evaluate(c, workdir)
    err = None
  except Exception as e:  # noqa: BLE001
    res, err = {}, repr(e)[:500]
  rec = {"spec": spec, "seconds": round(time.time() - t0, 1), "error": err,
         "result": {k: v for k, v in (res or {}).items() if isinstance(v, (int, float, str))}}
  print(json.dumps(rec), flush=True)
  with open(OUT, "a") as f:
    f.write(json.dumps(rec) + "\n")
