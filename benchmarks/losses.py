r"""Forward + backward time of every ssl_jax loss against a PyTorch implementation of the same formula.

  python benchmarks/losses.py                 # full sizes (several minutes on 2 cores)
  python benchmarks/losses.py --quick         # small sizes, a smoke run (< 60 s)
  python benchmarks/losses.py --only ntxent info_nce --markdown

For each loss: the gradient of the mean (or of the scalar, for batch-coupled losses) with respect to its float
inputs, at sizes taken from the papers' setups. JAX runs `jax.jit(jax.value_and_grad(loss))`, compiled ahead of
time (compile time reported on its own); PyTorch runs the reference of `benchmarks/_torch_losses.py` eagerly with
`loss.backward()`. Before timing, the two are checked to give the same loss value and the same gradients
(rtol 1e-3); a mismatch is printed as a warning and flagged in the table. Timings are medians of calls
interleaved JAX / PyTorch (see `benchmarks/_timing.py`), both using every core.

A memory check follows: `ntxent` forward + backward at 32,768 pairs x 128 dims with `block_size=1024`, in a
fresh process, reporting its peak RSS, against the 16 GiB that the dense [65,536 x 65,536] logits alone would
need. The results of our last run are in `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import json
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Make `ssl_jax` (repository root) and `_timing` (this folder) importable when run as a script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))

import _timing  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

RTOL = 1e-3


# ----------------------------------------------------------------------------------------------------------
# Cases.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
  """One row of the table.

  Attributes:
    name: the loss (what `--only` matches).
    size: human-readable size of the inputs.
    module: the ssl_jax.losses submodule that provides the loss.
    make_inputs: rng -> dict of NumPy inputs, in the order the JAX function takes them.
    jax_fn: (module, *inputs) -> scalar loss (or, when `grad` is False, the output array).
    torch_fn: (**tensors) -> scalar loss (or the output tensor when `grad` is False).
    diff: names of the inputs differentiated (on both sides).
    to_torch: optional rewrite of the NumPy inputs for the PyTorch side (e.g. [V, b, K] -> [V * b, K]);
      shapes of differentiated inputs may change, not their element order.
    grad: False for functions timed forward only (Sinkhorn-Knopp has no gradient).
  """

  name: str
  size: str
  module: str
  make_inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
  jax_fn: Callable[..., Any]
  torch_fn: Callable[..., Any]
  diff: tuple[str, ...]
  to_torch: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
  grad: bool = True
  label: str = ""

  @property
  def row_name(self) -> str:
    return self.label or self.name


def _f32(x) -> np.ndarray:
  return np.asarray(x, dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
  return _f32(x / np.linalg.norm(x, axis=-1, keepdims=True))


def _views(rng, n, d, noise=0.5):
  """Two correlated views: z2 = z1 + noise."""
  z1 = rng.standard_normal((n, d), dtype=np.float32)
  return z1, _f32(z1 + noise * rng.standard_normal((n, d), dtype=np.float32))


def _confident_logits(rng, n, c):
  """Weak/strong logits where roughly a third of the rows clear a 0.95 threshold (so the masks matter)."""
  weak = rng.standard_normal((n, c), dtype=np.float32)
  spike = rng.uniform(0.0, 1.5 * math.log(30.0 * c), size=n).astype(np.float32)
  weak[np.arange(n), rng.integers(0, c, n)] += spike
  strong = _f32(weak + rng.standard_normal((n, c), dtype=np.float32))
  return weak, strong


def _clustered(rng, n, d, classes):
  """Unit embeddings around `classes` centres, every class with n // classes members (balanced)."""
  labels = np.repeat(np.arange(classes), n // classes).astype(np.int32)
  rng.shuffle(labels)
  centres = _unit(rng.standard_normal((classes, d)))
  return _unit(centres[labels] + 0.15 * rng.standard_normal((n, d))), labels


def _bags(rng, bags, n, d, values=True):
  sizes = rng.integers(n // 4, n + 1, bags)
  mask = np.arange(n)[None, :] < sizes[:, None]
  out = {"features": rng.standard_normal((bags, n, d), dtype=np.float32)}
  if not values:
    out["scores"] = rng.standard_normal((bags, n), dtype=np.float32)
  out["mask"] = mask
  return out


def _mae(rng, b, patches, dim, ratio=0.75):
  masked = int(round(patches * ratio))
  mask = np.zeros((b, patches), np.float32)
  for i in range(b):
    mask[i, rng.permutation(patches)[:masked]] = 1.0
  return {"pred": rng.standard_normal((b, patches, dim), dtype=np.float32),
          "target": rng.standard_normal((b, patches, dim), dtype=np.float32),
          "mask": mask}


def build_cases(quick: bool) -> list[Case]:
  """All rows, at full (paper-like) or quick (smoke) sizes."""
  # pylint: disable=g-long-lambda
  import _torch_losses as T  # pylint: disable=g-import-not-at-top

  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  s = (lambda full, small: small if quick else full)
  cases: list[Case] = []

  # Contrastive.
  n, d = s(4096, 256), 128
  cases.append(Case(
      "ntxent", f"{n} pairs x {d}", "contrastive",
      lambda r, n=n, d=d: dict(zip(("z1", "z2"), _views(r, n, d))),
      lambda m, z1, z2: jnp.mean(m.ntxent(z1, z2, temperature=0.1)),
      lambda z1, z2: T.ntxent(z1, z2, temperature=0.1), ("z1", "z2")))
  n, k = s(4096, 256), s(65536, 4096)
  cases.append(Case(
      "info_nce", f"{n} x {d}, queue {k}", "contrastive",
      lambda r, n=n, k=k: {**dict(zip(("query", "key"), _views(r, n, d))),
                           "queue": _unit(r.standard_normal((k, d), dtype=np.float32))},
      lambda m, query, key, queue: jnp.mean(m.info_nce(query, key, queue=queue, temperature=0.2)),
      lambda query, key, queue: T.info_nce(query, key, queue, temperature=0.2), ("query", "key")))
  n = s(4096, 256)
  cases.append(Case(
      "supcon", f"{n} x {d}, 100 classes", "contrastive",
      lambda r, n=n: {"z": r.standard_normal((n, d), dtype=np.float32),
                      "labels": r.integers(0, 100, n).astype(np.int32)},
      lambda m, z, labels: jnp.mean(m.supcon(z, labels, temperature=0.1)),
      lambda z, labels: T.supcon(z, labels, temperature=0.1), ("z",)))
  n = s(4096, 256)
  cases.append(Case(
      "negative_cosine", f"{n} x {d}", "contrastive",
      lambda r, n=n: dict(zip(("p", "z"), _views(r, n, d))),
      lambda m, p, z: jnp.mean(m.negative_cosine(p, z)),
      lambda p, z: T.negative_cosine(p, z), ("p",)))

  # Redundancy reduction.
  n, d2 = s(2048, 256), s(2048, 256)
  cases.append(Case(
      "barlow_twins", f"{n} x {d2}", "redundancy",
      lambda r, n=n, d2=d2: dict(zip(("z1", "z2"), _views(r, n, d2))),
      lambda m, z1, z2: m.barlow_twins(z1, z2, lambda_=5e-3),
      lambda z1, z2: T.barlow_twins(z1, z2, lambd=5e-3), ("z1", "z2")))
  cases.append(Case(
      "vicreg", f"{n} x {d2}", "redundancy",
      lambda r, n=n, d2=d2: dict(zip(("z1", "z2"), _views(r, n, d2))),
      lambda m, z1, z2: m.vicreg(z1, z2),
      lambda z1, z2: T.vicreg(z1, z2), ("z1", "z2")))

  # Clustering / self-distillation.
  v, b, kp = 8, s(256, 32), s(3000, 300)

  def swav_inputs(r, v=v, b=b, kp=kp):
    protos = _unit(r.standard_normal((kp, 128)))
    emb = _unit(r.standard_normal((v * b, 128)))
    return {"scores": _f32(emb @ protos.T).reshape(v, b, kp)}

  cases.append(Case(
      "swav", f"[{v}, {b}, {kp}] (2+6 crops)", "clustering", swav_inputs,
      lambda m, scores: m.swav(scores, temperature=0.1, epsilon=0.05, num_iters=3, crops_for_assign=(0, 1)),
      lambda scores, b=b, v=v: T.swav(scores, bs=b, nmb_crops=v, crops_for_assign=(0, 1)), ("scores",),
      to_torch=lambda x: {"scores": x["scores"].reshape(-1, x["scores"].shape[-1])}))
  bq = s(4096, 512)
  cases.append(Case(
      "sinkhorn_knopp", f"[{bq}, {kp}], forward only", "clustering",
      lambda r, bq=bq, kp=kp: {"scores": _f32(_unit(r.standard_normal((bq, 128)))
                                                @ _unit(r.standard_normal((kp, 128))).T)},
      lambda m, scores: m.sinkhorn_knopp(scores, epsilon=0.05, num_iters=3),
      lambda scores: T.distributed_sinkhorn(scores, epsilon=0.05, sinkhorn_iterations=3), (), grad=False))
  sv, tv, b, kd = 8, 2, s(64, 16), s(65536, 4096)
  cases.append(Case(
      "dino", f"student [{sv}, {b}, {kd}], teacher [{tv}, {b}, {kd}]", "clustering",
      lambda r, b=b, kd=kd: {"student": r.standard_normal((sv, b, kd), dtype=np.float32),
                             "teacher": r.standard_normal((tv, b, kd), dtype=np.float32),
                             "center": _f32(0.1 * r.standard_normal(kd, dtype=np.float32))},
      lambda m, student, teacher, center: m.dino(student, teacher, center, student_temperature=0.1,
                                                 teacher_temperature=0.04),
      lambda student, teacher, center: T.dino(student, teacher, center, ncrops=sv), ("student",),
      to_torch=lambda x: {"student": x["student"].reshape(-1, x["student"].shape[-1]),
                          "teacher": x["teacher"].reshape(-1, x["teacher"].shape[-1]),
                          "center": x["center"][None]}))

  # Metric learning.
  n = s(4096, 256)
  cases.append(Case(
      "contrastive_margin", f"{n} pairs x {d}", "metric",
      lambda r, n=n: {"x1": _unit(r.standard_normal((n, d))), "x2": _unit(r.standard_normal((n, d))),
                      "y": r.integers(0, 2, n).astype(np.float32)},
      lambda m, x1, x2, y: jnp.mean(m.contrastive_margin(x1, x2, y, margin=1.5)),
      lambda x1, x2, y: T.contrastive_margin(x1, x2, y, margin=1.5), ("x1", "x2")))
  cases.append(Case(
      "triplet_margin", f"{n} triplets x {d}", "metric",
      lambda r, n=n: {k: _unit(r.standard_normal((n, d))) for k in ("a", "p", "n")},
      lambda m, a, p, n: jnp.mean(m.triplet_margin(a, p, n, margin=0.5)),
      lambda a, p, n: T.triplet_margin(a, p, n, margin=0.5), ("a", "p", "n")))
  n, classes = s(1024, 128), s(128, 16)

  def mined(fn):
    def loss(m, emb, labels, fn=fn):
      losses, valid = getattr(m, fn)(emb, labels, margin=0.3)
      return jnp.sum(losses) / jnp.maximum(jnp.sum(valid), 1)
    return loss

  for fn in ("batch_hard_triplet", "batch_semi_hard_triplet"):
    cases.append(Case(
        fn, f"{n} x {d}, {classes} classes", "metric",
        lambda r, n=n, classes=classes: dict(zip(("emb", "labels"), _clustered(r, n, d, classes))),
        mined(fn), lambda emb, labels, fn=fn: getattr(T, fn)(emb, labels, margin=0.3), ("emb",)))

  # Semi-supervised.
  n = 448 if not quick else 64
  for c in (10, 1000):
    size = f"{n} x {c} classes"
    cases.append(Case(
        "fixmatch", size, "semi_supervised",
        lambda r, c=c, n=n: dict(zip(("weak", "strong"), _confident_logits(r, n, c))),
        lambda m, weak, strong: jnp.mean(m.fixmatch(weak, strong, threshold=0.95)[0]),
        lambda weak, strong: T.fixmatch(weak, strong, threshold=0.95), ("strong",)))
  c = 1000
  cases.append(Case(
      "pseudo_label", f"{n} x {c} classes", "semi_supervised",
      lambda r, c=c, n=n: {"logits": _confident_logits(r, n, c)[0]},
      lambda m, logits: jnp.mean(m.pseudo_label(logits, threshold=0.95)[0]),
      lambda logits: T.pseudo_label(logits, threshold=0.95), ("logits",)))
  cases.append(Case(
      "uda", f"{n} x {c} classes", "semi_supervised",
      lambda r, c=c, n=n: dict(zip(("weak", "strong"), _confident_logits(r, n, c))),
      lambda m, weak, strong: jnp.mean(m.uda(weak, strong, temperature=0.4, threshold=0.8)[0]),
      lambda weak, strong: T.uda(weak, strong, temperature=0.4, threshold=0.8), ("strong",)))
  cases.append(Case(
      "consistency_mse", f"{n} x {c} classes", "semi_supervised",
      lambda r, c=c, n=n: dict(zip(("a", "b"), _confident_logits(r, n, c))),
      lambda m, a, b: jnp.mean(m.consistency_mse(a, b)),
      lambda a, b: T.consistency_mse(a, b), ("a", "b")))

  # Multiple-instance learning.
  bags, inst, dim = s(64, 8), s(512, 64), s(512, 64)
  size = f"[{bags} bags, {inst} inst., {dim}]"
  cases.append(Case(
      "attention_pool", size, "mil", lambda r: _bags(r, bags, inst, dim, values=False),
      lambda m, features, scores, mask: jnp.mean(m.attention_pool(features, scores, mask)[0]),
      lambda features, scores, mask: T.attention_pool(features, scores, mask), ("features", "scores")))
  for fn in ("mil_max", "mil_mean"):
    cases.append(Case(
        fn, size, "mil", lambda r: _bags(r, bags, inst, dim),
        lambda m, features, mask, fn=fn: jnp.mean(getattr(m, fn)(features, mask)),
        lambda features, mask, fn=fn: getattr(T, fn)(features, mask), ("features",)))

  # Reconstruction.
  b, p, pd = s(256, 16), 196, s(768, 192)
  cases.append(Case(
      "masked_reconstruction", f"[{b}, {p}, {pd}], 75% masked", "reconstruction",
      lambda r, b=b, pd=pd: _mae(r, b, p, pd),
      lambda m, pred, target, mask: jnp.mean(m.masked_reconstruction(pred, target, mask, normalize_target=True)),
      lambda pred, target, mask: T.masked_reconstruction(pred, target, mask, norm_pix_loss=True), ("pred",)))
  n = s(4096, 256)
  cases.append(Case(
      "gaussian_kl", f"{n} x 128", "reconstruction",
      lambda r, n=n: {"mean": r.standard_normal((n, 128), dtype=np.float32),
                      "logvar": _f32(0.5 * r.standard_normal((n, 128), dtype=np.float32))},
      lambda m, mean, logvar: jnp.mean(m.gaussian_kl(mean, logvar)),
      lambda mean, logvar: T.gaussian_kl(mean, logvar), ("mean", "logvar")))
  return cases


# ----------------------------------------------------------------------------------------------------------
# Running one case.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
  case: Case
  status: str = "ok"           # ok | n/a | error
  detail: str = ""
  jax_ms: float | None = None
  torch_ms: float | None = None
  jax_spread_ms: float | None = None
  torch_spread_ms: float | None = None
  jax_min_ms: float | None = None
  torch_min_ms: float | None = None
  compile_s: float | None = None
  runs: int = 0
  check: str = ""               # "ok" or a description of the mismatch

  @property
  def speedup(self) -> float | None:
    if self.jax_ms and self.torch_ms:
      return self.torch_ms / self.jax_ms
    return None

  @property
  def speedup_min(self) -> float | None:
    if self.jax_min_ms and self.torch_min_ms:
      return self.torch_min_ms / self.jax_min_ms
    return None


_MODULES: dict[str, Any] = {}


def load_module(name: str):
  """The ssl_jax.losses submodule, or the reason it cannot be imported."""
  if name not in _MODULES:
    try:
      _MODULES[name] = importlib.import_module(f"ssl_jax.losses.{name}")
    except Exception as e:  # pylint: disable=broad-except
      _MODULES[name] = f"{type(e).__name__}: {e}"
  return _MODULES[name]


def _torch_tensors(case: Case, inputs: dict[str, np.ndarray]):
  import torch  # pylint: disable=g-import-not-at-top

  arrays = case.to_torch(inputs) if case.to_torch else inputs
  tensors = {}
  for k, v in arrays.items():
    t = torch.from_numpy(np.ascontiguousarray(v))
    if t.dtype in (torch.int32, torch.int16, torch.uint8) and v.dtype != np.bool_:
      t = t.long()
    if k in case.diff:
      t.requires_grad_(True)
    tensors[k] = t
  return tensors


def _make_torch_step(case: Case, tensors):
  import torch  # pylint: disable=g-import-not-at-top

  if not case.grad:
    def fwd():
      with torch.no_grad():
        return case.torch_fn(**tensors)
    return fwd

  leaves = [tensors[k] for k in case.diff]

  def step():
    for t in leaves:
      t.grad = None
    loss = case.torch_fn(**tensors)
    loss.backward()
    return loss

  return step


def _check(case: Case, jax_out, torch_out, tensors, inputs) -> str:
  """'ok', or what differs between the JAX and PyTorch results."""
  problems = []
  if case.grad:
    j_val, j_grads = jax_out
    t_val = float(torch_out.detach())
    j_val = float(j_val)
    if not math.isclose(j_val, t_val, rel_tol=RTOL, abs_tol=1e-6):
      problems.append(f"value {j_val:.6g} (JAX) vs {t_val:.6g} (PyTorch)")
    for name, g in zip(case.diff, j_grads):
      tg = tensors[name].grad
      if tg is None:
        problems.append(f"no PyTorch gradient for {name}")
        continue
      err = _timing.rel_err(np.asarray(g), tg.numpy().reshape(np.shape(g)))
      if not err <= RTOL:
        problems.append(f"grad {name}: relative error {err:.2e}")
  else:
    out = np.asarray(jax_out)
    err = _timing.rel_err(out, torch_out.numpy().reshape(out.shape))
    if not err <= RTOL:
      problems.append(f"output: relative error {err:.2e}")
  return "ok" if not problems else "; ".join(problems)


def run_case(case: Case, *, seed: int, budget_s: float, min_runs: int, max_runs: int,
             runs: int | None, log) -> Result:
  import jax  # pylint: disable=g-import-not-at-top

  res = Result(case)
  mod = load_module(case.module)
  if isinstance(mod, str) or not hasattr(mod, case.name):
    res.status = "n/a"
    res.detail = mod if isinstance(mod, str) else f"ssl_jax.losses.{case.module} has no `{case.name}`"
    return res
  try:
    inputs = case.make_inputs(np.random.default_rng(seed))
    names = list(inputs)
    jax_args = [jax.numpy.asarray(v) for v in inputs.values()]
    fn = functools.partial(case.jax_fn, mod)
    if case.grad:
      fn = jax.value_and_grad(fn, argnums=tuple(names.index(k) for k in case.diff))
    jt = _timing.JaxTimer(fn, jax_args)
    res.compile_s = jt.compile_s
    tensors = _torch_tensors(case, inputs)
    tt = _timing.TorchTimer(_make_torch_step(case, tensors))
    t0 = time.perf_counter()
    jax_out = jt.warmup()
    t1 = time.perf_counter()
    torch_out = tt.warmup()
    t2 = time.perf_counter()
    res.check = _check(case, jax_out, torch_out, tensors, inputs)
    if res.check != "ok":
      log(f"WARNING: {case.row_name} [{case.size}]: JAX and PyTorch disagree: {res.check}")
    del jax_out, torch_out
    if runs is None:
      per_round = max((t1 - t0) + (t2 - t1), 1e-6)
      runs = int(min(max_runs, max(min_runs, budget_s // per_round)))
    jax_t, torch_t = _timing.interleaved([jt, tt], runs)
    res.jax_ms, res.torch_ms = jax_t.median_ms, torch_t.median_ms
    res.jax_spread_ms, res.torch_spread_ms = jax_t.spread_ms, torch_t.spread_ms
    res.jax_min_ms, res.torch_min_ms = jax_t.min_ms, torch_t.min_ms
    res.runs = runs
  except Exception as e:  # pylint: disable=broad-except
    res.status = "error"
    res.detail = f"{type(e).__name__}: {e}"
    log(f"ERROR in {case.row_name} [{case.size}]:\n{traceback.format_exc()}")
  return res


# ----------------------------------------------------------------------------------------------------------
# Memory check (runs in a fresh process).
# ----------------------------------------------------------------------------------------------------------


def memory_child(pairs: int, dim: int, block_size: int) -> dict:
  """ntxent forward + backward at `pairs` x `dim` with `block_size`; peak RSS of this process."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from ssl_jax.losses import contrastive  # pylint: disable=g-import-not-at-top

  jnp.zeros(8).block_until_ready()  # initialise the backend before the baseline
  reset_ok = _timing.reset_peak_rss()
  baseline = _timing.rss_bytes() if reset_ok else _timing.peak_rss_bytes()
  k1, k2 = jax.random.split(jax.random.key(0))
  z1 = jax.random.normal(k1, (pairs, dim), jnp.float32)
  z2 = z1 + 0.5 * jax.random.normal(k2, (pairs, dim), jnp.float32)

  def loss(z1, z2):
    return jnp.mean(contrastive.ntxent(z1, z2, temperature=0.1, block_size=block_size))

  t0 = time.perf_counter()
  step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(z1, z2).compile()
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  value, grads = jax.block_until_ready(step(z1, z2))
  run_s = time.perf_counter() - t0
  peak = _timing.peak_rss_bytes()
  finite = bool(jnp.isfinite(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
  return {"pairs": pairs, "dim": dim, "block_size": block_size, "baseline_bytes": baseline, "peak_bytes": peak,
          "delta_bytes": peak - baseline,
          "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "compile_s": compile_s,
          "run_s": run_s, "loss": float(value),
          "finite": finite, "dense_logits_bytes": (2 * pairs) ** 2 * 4}


def run_memory(pairs: int, dim: int, block_size: int, log) -> dict | None:
  log(f"memory: ntxent {pairs} pairs x {dim}, block_size={block_size}, in a fresh process ...")
  try:
    return _timing.run_json_subprocess(
        [os.path.abspath(__file__), "--_memory-child", str(pairs), str(dim), str(block_size)], timeout=1200)
  except Exception as e:  # pylint: disable=broad-except
    log(f"ERROR in the memory check: {type(e).__name__}: {e}")
    return None


# ----------------------------------------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------------------------------------


def render(results: Sequence[Result], memory: dict | None, info: dict, *, markdown: bool, quick: bool,
           argv: Sequence[str]) -> str:
  out = []
  cmd = "python benchmarks/losses.py" + ("".join(f" {a}" for a in argv))
  out.append(("**Machine:** " if markdown else "Machine: ") + _timing.format_machine(info))
  out.append(("**Command:** `" + cmd + "`") if markdown else f"Command: {cmd}")
  out.append("")
  headers = ["loss", "size", "JAX ms", "PyTorch ms", "speed-up", "speed-up of min", "JAX compile s",
             "same result"]
  rows = []
  for r in results:
    if r.status == "n/a":
      rows.append([r.case.row_name, r.case.size, "n/a (not available)", "", "", "", "", ""])
    elif r.status == "error":
      rows.append([r.case.row_name, r.case.size, "error", "", "", "", "", r.detail[:80]])
    else:
      sp, spm = r.speedup, r.speedup_min
      rows.append([r.case.row_name, r.case.size, _timing.fmt_ms(r.jax_ms), _timing.fmt_ms(r.torch_ms),
                   f"{sp:.2f}x" if sp else "-", f"{spm:.2f}x" if spm else "-", f"{r.compile_s:.2f}",
                   "yes" if r.check == "ok" else "NO (see above)"])
  out.append(_timing.format_table(headers, rows, markdown=markdown,
                                  align_right=[False, False, True, True, True, True, True, False]))
  out.append("")
  out.append("JAX ms and PyTorch ms are medians of interleaved calls (JAX, PyTorch, order alternating); "
             "speed-up = PyTorch / JAX of the medians, 'speed-up of min' the same of the fastest calls "
             "(less sensitive to load from other processes).")
  out.append(f"Runs per loss: "
             + ", ".join(f"{r.case.row_name}={r.runs}" for r in results if r.runs) + ".")
  if memory is not None:
    out.append("")
    m = memory
    line = (f"ntxent forward+backward, {m['pairs']} pairs x {m['dim']} dims, block_size={m['block_size']}, "
            f"in a fresh process: peak RSS {_timing.gib(m['peak_bytes'])}, of which "
            f"{_timing.gib(m['delta_bytes'])} above the {_timing.gib(m['baseline_bytes'])} after imports "
            f"(compile {m['compile_s']:.1f} s, run {m['run_s']:.1f} s, finite result: {m['finite']}). "
            f"The dense path would need the [{2 * m['pairs']} x {2 * m['pairs']}] float32 logits alone: "
            f"{_timing.gib(m['dense_logits_bytes'])}, and as much again for their gradient; not run.")
    out.append(("**Memory:** " if markdown else "Memory: ") + line)
  if quick:
    out.append("")
    out.append("(--quick: small sizes, a smoke run; the numbers say nothing about speed.)")
  return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv[:1] == ["--_memory-child"]:
    print(json.dumps(memory_child(int(argv[1]), int(argv[2]), int(argv[3]))))
    return 0
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="small sizes and few runs: a smoke run (< 60 s)")
  parser.add_argument("--only", nargs="+", metavar="NAME",
                      help="only these losses (names as in the table; 'memory' for the memory check)")
  parser.add_argument("--markdown", action="store_true", help="print the table as GitHub markdown")
  parser.add_argument("--runs", type=int, default=None, help="timed calls per side (default: from --budget)")
  parser.add_argument("--budget", type=float, default=None,
                      help="seconds of timed calls per loss when --runs is not given (default 20; 0.5 with --quick)")
  parser.add_argument("--no-memory", action="store_true", help="skip the memory check")
  parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  def log(msg):
    print(msg, file=sys.stderr, flush=True)

  _timing.setup_torch_threads()
  info = _timing.machine_info()
  log("Machine: " + _timing.format_machine(info))

  cases = build_cases(args.quick)
  known = {c.name for c in cases} | {"memory"}
  if args.only:
    unknown = sorted(set(args.only) - known)
    if unknown:
      parser.error(f"unknown loss name(s) {unknown}; choose from {sorted(known)}")
    cases = [c for c in cases if c.name in args.only]
  budget = args.budget if args.budget is not None else (0.5 if args.quick else 20.0)
  min_runs, max_runs = (3, 10) if args.quick else (5, 30)

  results = []
  for case in cases:
    log(f"{case.row_name} [{case.size}] ...")
    r = run_case(case, seed=args.seed, budget_s=budget, min_runs=min_runs, max_runs=max_runs, runs=args.runs,
                 log=log)
    if r.status == "ok":
      log(f"  JAX {_timing.fmt_ms(r.jax_ms)} ms, PyTorch {_timing.fmt_ms(r.torch_ms)} ms "
          f"({r.speedup:.2f}x), compile {r.compile_s:.2f} s, {r.runs} runs, same result: {r.check}")
    else:
      log(f"  {r.status}: {r.detail}")
    results.append(r)

  memory = None
  if not args.no_memory and (not args.only or "memory" in args.only):
    if isinstance(load_module("contrastive"), str):
      log("memory: n/a (ssl_jax.losses.contrastive not available)")
    else:
      memory = run_memory(2048 if args.quick else 32768, 128, 256 if args.quick else 1024, log)

  print(render(results, memory, info, markdown=args.markdown, quick=args.quick, argv=argv))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": info, "argv": argv, "memory": memory,
                 "results": [{"loss": r.case.row_name, "size": r.case.size, "status": r.status, "detail": r.detail,
                              "jax_ms": r.jax_ms, "torch_ms": r.torch_ms, "jax_spread_ms": r.jax_spread_ms,
                              "torch_spread_ms": r.torch_spread_ms, "jax_min_ms": r.jax_min_ms,
                              "torch_min_ms": r.torch_min_ms, "speedup": r.speedup, "speedup_min": r.speedup_min,
                              "compile_s": r.compile_s, "runs": r.runs, "check": r.check} for r in results]},
                f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
