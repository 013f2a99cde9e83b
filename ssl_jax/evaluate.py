"""Evaluate a checkpoint of a run, with its method's suites or with a transfer protocol:

  python -m ssl_jax.evaluate --workdir=DIR [--step=N] [--config.eval.knn_k=200 ...]          # the method's suites
  python -m ssl_jax.evaluate --workdir=DIR --protocol=svm --label_fraction=0.01 [--dataset=mnist5k]
  python -m ssl_jax.evaluate --workdir=DIR --protocol=finetune --labels=600 [--finetune_steps=1000]

Protocols (`--protocol`):

| protocol | what |
| --- | --- |
| `suites` (default) | the run's own suites on its own data (`representation`, `accuracy`, `retrieval`, ...) |
| `linear_probe` | multinomial logistic regression on the frozen encoder's features (`evaluation.linear_probe`) |
| `knn` | weighted kNN on the frozen features (`eval.knn_k`, `eval.knn_temperature`) |
| `svm` | scikit-learn's `LinearSVC` on the frozen features, C chosen on a validation split |
| `mlp_probe` | a one-hidden-layer MLP on the frozen features, its L2 penalty chosen on a validation split |
| `finetune` | the `finetune` method started from this run's encoder (`init_from`), trained on the labels |

The feature protocols and `finetune` train on a class-balanced, seeded subset of the training labels
(`--labels=N` or `--label_fraction=F`, `--label_seed=S`; all labels by default) and score the whole test
split, of the run's dataset or of `--dataset=NAME` (another dataset is an explicit transfer, recorded as
`"transfer": "<run's data> -> <dataset>"`; its images are resized to the encoder's input).

The config is read back from DIR/config.json. Overrides may change only how evaluation runs (`eval.*`,
`distributed.*` and the data paths); anything that changes what is evaluated is refused. Each result is
added to `--output` (default DIR/eval_results.json) under a name that records the protocol, the step, the
data and the overrides (e.g. "step_1200", "step_1200 eval.knn_k=200", "svm step_1200 fashion_mnist.0@600"),
so a result of another protocol is never overwritten.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ssl_jax import cli

USAGE = ("python -m ssl_jax.evaluate --workdir=DIR [--step=N] [--protocol=suites|linear_probe|knn|svm|mlp_probe|"
         "finetune] [--labels=N | --label_fraction=F] [--dataset=NAME] [--config.eval.field=value ...]\n\n" + __doc__)

EVAL_FIELDS = ("eval.", "distributed.", "data.data_dir", "data.tfds_data_dir")
PROTOCOLS = ("suites", "linear_probe", "knn", "svm", "mlp_probe", "finetune")
FEATURE_PROTOCOLS = ("linear_probe", "knn", "svm", "mlp_probe")
SUBSET_FLAGS = ("--labels", "--label_fraction", "--label_seed", "--dataset")


def _workdir(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--workdir="):
      return arg[len("--workdir="):]
    if arg == "--workdir" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def result_name(step: int, argv: list[str], *, protocol: str = "suites", data: str = "") -> str:
  """The name an evaluation is stored under: protocol (unless `suites`), step, data, overrides, in order."""
  overrides = [a[len("--config."):] for a in argv if a.startswith("--config.")]
  head = [] if protocol == "suites" else [protocol]
  return " ".join([*head, f"step_{step}", *([data] if data else []), *overrides])


def read_run(workdir: str):
  """The config of the run in `workdir` (its config.json), or one sentence saying there is none."""
  from ssl_jax.errors import UserError
  from ssl_jax.train import config as config_lib
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"No run found in {workdir!r} (no config.json); pass the --workdir of a training run.")
  with open(path) as f:
    return config_lib.from_json(f.read(), where=path)


def restore_run(workdir: str, config, step: int | None = None) -> tuple[Any, Any, int]:
  """(plan, state, step) of a checkpoint of the run in `workdir` (the latest when `step` is None)."""
  from ssl_jax.errors import UserError
  from ssl_jax.train import trainer
  from ssl_jax.train.checkpoint import Checkpointer
  plan = trainer.preflight(config)
  checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise UserError(f"No checkpoint in {checkpointer.directory}; train first with python -m ssl_jax.main.")
    if step is not None:
      if step not in steps:
        raise UserError(f"There is no checkpoint of step {step} in {checkpointer.directory}; the steps "
                        f"there are {', '.join(map(str, steps))}.")
      return plan, checkpointer.restore(plan.abstract_state, step), step
    restored = checkpointer.restore_latest(plan.abstract_state, move_damaged=False)
    if restored is None:
      raise UserError(f"No checkpoint in {checkpointer.directory} restores; train again.")
    return plan, restored[0], restored[1]
  finally:
    checkpointer.close()


def encoder_features(plan, state, images: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
  """Float32 features [N, d] of the run's frozen encoder (inference mode, the run's normalisation)."""
  import functools

  import jax

  from ssl_jax.evaluation.features import apply_batched
  from ssl_jax.methods import common
  config = plan.config
  encoder = common.make_encoder(config, plan.info)
  mean, std = common.normalizer(config)
  if "encoder" not in state.params:
    raise ValueError(f"The {config.method} run has no `encoder` part to take features from.")
  encode = jax.jit(functools.partial(common.encode, encoder, mean=mean, std=std),
                   in_shardings=(plan.repl, plan.repl, plan.sharded), out_shardings=plan.sharded)
  params, stats = state.params["encoder"], state.batch_stats.get("encoder", {})
  return apply_batched(lambda x: encode(params, stats, x), images, batch_size=batch_size, mesh=plan.mesh)


def labelled_subset(train, *, labels: int, fraction: float, seed: int) -> tuple[Any, str]:
  """The class-balanced subset of `train` the protocols learn from, and its name (`<data>.<seed>@<n>`)."""
  from ssl_jax.data.datasets import class_balanced_indices
  if labels < 0 or not 0.0 <= fraction <= 1.0 or (labels and fraction):
    raise ValueError(f"Give --labels=N (N > 0) or --label_fraction=F (0 < F <= 1), not both; got {labels} "
                     f"and {fraction}.")
  if fraction:
    labels = max(1, round(fraction * len(train) / train.num_classes)) * train.num_classes
  if not labels or labels >= len(train):
    return train, train.name
  return train.take(class_balanced_indices(train.labels, train.num_classes, num_labels=labels, seed=seed)), \
      f"{train.name}.{seed}@{labels}"


def load_split_pair(plan, dataset: str) -> tuple[Any, Any]:
  """The train and test splits of `dataset`, resized to the run's image shape (the run's own dataset is read by
  index when the run streams it)."""
  from ssl_jax import data as data_lib
  from ssl_jax.data.streams import match_images
  c = plan.config
  own = dataset == c.data.name
  kwargs = dict(data_dir=(c.data.data_dir or None) if own else None, tfds_data_dir=c.data.tfds_data_dir or None)
  info = data_lib.dataset_info(dataset, tfds_data_dir=kwargs["tfds_data_dir"])
  shape = tuple(plan.info.image_shape)
  if own and plan.streamed:  # the run's own streamed dataset: read by index, at the run's image size
    kwargs.update(image_size=c.data.image_size, channels=c.data.channels)
    return (data_lib.load_streamed(dataset, info.train_split, **kwargs),
            data_lib.load_streamed(dataset, info.test_split, **kwargs))
  return (match_images(data_lib.load_arrays(dataset, info.train_split, **kwargs), shape),
          match_images(data_lib.load_arrays(dataset, info.test_split, **kwargs), shape))


def feature_protocol(plan, state, protocol: str, train, test, *, seed: int, log=print) -> dict[str, Any]:
  """The score of one frozen-feature protocol: {"<protocol>_top1", ...} (and the chosen hyperparameter)."""
  from ssl_jax.evaluation.knn import knn_accuracy
  from ssl_jax.evaluation.linear_probe import linear_probe
  from ssl_jax.evaluation.mlp_probe import mlp_probe
  from ssl_jax.evaluation.svm import svm_probe
  c = plan.config.eval
  tr = encoder_features(plan, state, train.images, batch_size=c.batch_size)
  te = encoder_features(plan, state, test.images, batch_size=c.batch_size)
  log(f"Extracted features {tr.shape} + {te.shape}; fitting the {protocol}.")
  num_classes = max(train.num_classes, test.num_classes)
  if protocol == "linear_probe":
    r = linear_probe(tr, train.labels, te, test.labels, num_classes=num_classes, mesh=plan.mesh,
                     epochs=c.probe_epochs, min_steps=c.probe_min_steps, seed=seed)
    return {"linear_probe_top1": r.top1, "weight_decay": r.best_weight_decay}
  if protocol == "knn":
    return {"knn_top1": knn_accuracy(tr, train.labels, te, test.labels, num_classes=num_classes, k=c.knn_k,
                                     temperature=c.knn_temperature, mesh=plan.mesh), "k": c.knn_k}
  if protocol == "svm":
    r = svm_probe(tr, train.labels, te, test.labels, seed=seed)
    return {"svm_top1": r.top1, "C": r.best, "val_top1": {str(k): v for k, v in r.val_top1.items()}}
  r = mlp_probe(tr, train.labels, te, test.labels, seed=seed)
  return {"mlp_probe_top1": r.top1, "alpha": r.best, "val_top1": {str(k): v for k, v in r.val_top1.items()}}


def finetune_config(run_config, *, workdir: str, dataset: str, labels: int, fraction: float, seed: int,
                    steps: int):
  """The `finetune` config that starts from the run in `workdir` (the recipe of configs/transfer/finetune_*)."""
  from ssl_jax.train import config as config_lib
  c = config_lib.base_config("finetune")
  c.seed = run_config.seed
  c.total_steps = steps
  c.batch_size = 64
  c.checkpoint_every_steps = c.eval_every_steps = max(1, steps // 2)
  c.log_every_steps = max(1, min(50, steps))
  c.init_from, c.init_params = workdir, "encoder"
  c.data.name = dataset
  if dataset == run_config.data.name:
    c.data.data_dir = run_config.data.data_dir
  c.data.tfds_data_dir = run_config.data.tfds_data_dir
  c.model = run_config.model
  c.eval = run_config.eval
  c.eval.final = True  # the protocol's score is the fine-tuned run's test accuracy
  c.distributed = run_config.distributed
  c.finetune.labels, c.finetune.label_fraction, c.finetune.label_seed = labels, fraction, seed
  c.optim.name, c.optim.lr, c.optim.scale_lr_with_batch = "adamw", 2e-3, False
  c.optim.warmup_steps, c.optim.weight_decay = min(50, steps // 4), 1e-4
  config_lib.validate(c)
  return c


def main(argv: list[str]) -> int:
  from absl import flags
  from ml_collections import config_flags

  from ssl_jax.errors import UserError

  workdir = _workdir(argv)
  if not workdir:
    raise UserError(f"--workdir is needed; usage: {USAGE.splitlines()[0]}")
  saved = read_run(workdir)

  def define(fv):
    flags.DEFINE_string("workdir", None, "Folder of the training run.", flag_values=fv)
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).", flag_values=fv)
    flags.DEFINE_enum("protocol", "suites", PROTOCOLS, "How to evaluate (see the table above).", flag_values=fv)
    flags.DEFINE_integer("labels", 0, "Training labels of the protocol, class-balanced (0: all).", flag_values=fv)
    flags.DEFINE_float("label_fraction", 0.0, "Fraction of the training labels instead of --labels.",
                       flag_values=fv)
    flags.DEFINE_integer("label_seed", 0, "Seed of the class-balanced draw of the labels.", flag_values=fv)
    flags.DEFINE_string("dataset", "", "Dataset to evaluate on (default: the run's; another is a transfer).",
                        flag_values=fv)
    flags.DEFINE_string("output", "", "JSON file the result is added to (default: DIR/eval_results.json).",
                        flag_values=fv)
    flags.DEFINE_integer("finetune_steps", 1000, "Steps of the finetune protocol.", flag_values=fv)
    flags.DEFINE_string("finetune_workdir", "", "Workdir of the finetune protocol's run (default: under DIR).",
                        flag_values=fv)
    config_flags.DEFINE_config_dict("config", saved, "The run's config; only eval.* may change.",
                                    lock_config=True, flag_values=fv, sys_argv=["ssl_jax"] + list(argv))

  def check(args):
    cli.check_overrides(saved, args, allowed=lambda d: d.startswith(EVAL_FIELDS) or d in EVAL_FIELDS,
                        why=(": evaluation reads the run's own config and data, and only eval.*, "
                             "distributed.* and the data paths may change"))

  fv = cli.parse(argv, usage=USAGE, flags_spec=define, config_check=check)
  config = fv.config
  protocol = fv.protocol
  if protocol == "suites" and any(a.startswith(SUBSET_FLAGS) for a in argv):
    raise UserError("--labels, --label_fraction, --label_seed and --dataset choose the data of a transfer protocol; "
                    "the suites evaluate the run on its own data: add --protocol=linear_probe, knn, svm, mlp_probe "
                    "or finetune.")
  if fv.labels < 0 or not 0.0 <= fv.label_fraction <= 1.0 or (fv.labels and fv.label_fraction):
    raise UserError(f"Give --labels=N (N > 0) or --label_fraction=F (0 < F <= 1), not both; got {fv.labels} and "
                    f"{fv.label_fraction}.")
  if protocol == "finetune" and fv.step is not None:
    raise UserError("The finetune protocol starts from the latest checkpoint of the run (init_from); drop --step.")
  cli.quiet_libraries()
  import jax

  from ssl_jax.data import datasets
  from ssl_jax.train import mesh as mesh_lib
  from ssl_jax.train import reporting, trainer
  mesh_lib.setup_cpu_devices(config)
  mesh_lib.initialize_distributed(config.distributed)
  dataset = fv.dataset or config.data.name
  if fv.dataset:
    datasets.dataset_info(dataset, tfds_data_dir=config.data.tfds_data_dir or None)  # unknown name: one sentence
  out_path = fv.output or os.path.join(workdir, "eval_results.json")
  plan, state, step = restore_run(workdir, config, fv.step)
  say = lambda t: print(t, flush=True)
  transfer = {"transfer": f"{config.data.name} -> {dataset}"} if dataset != config.data.name else {}
  if protocol == "suites":
    stream = trainer.load_stream(plan)
    say(f"Evaluating the checkpoint of step {step} in {workdir} on {stream.name}.")
    ctx = trainer.suite_context(plan, stream, log=say, figures_dir=os.path.dirname(os.path.abspath(out_path)))
    results = {"steps": step, "data": stream.name, **trainer.run_suites(plan, ctx, state, final=True)}
    name = result_name(step, argv)
  elif protocol in FEATURE_PROTOCOLS:
    train, test = load_split_pair(plan, dataset)
    train, data_name = labelled_subset(train, labels=fv.labels, fraction=fv.label_fraction, seed=fv.label_seed)
    say(f"{protocol} on the frozen encoder of step {step} in {workdir}: {len(train)} training labels of "
        f"{data_name}, {len(test)} test images" + (f" (transfer {transfer['transfer']})" if transfer else "") + ".")
    results = {"protocol": protocol, "steps": step, "data": data_name, "labels": len(train), **transfer,
               **feature_protocol(plan, state, protocol, train, test, seed=config.seed, log=say)}
    name = result_name(step, argv, protocol=protocol, data=data_name)
  else:  # finetune
    ft = finetune_config(config, workdir=workdir, dataset=dataset, labels=fv.labels, fraction=fv.label_fraction,
                         seed=fv.label_seed, steps=fv.finetune_steps)
    data_name = f"{dataset}.{fv.label_seed}@{fv.labels or fv.label_fraction}" if (fv.labels or fv.label_fraction) \
        else dataset
    ft_dir = fv.finetune_workdir or os.path.join(workdir, "finetune", f"step_{step}_{data_name}".replace(" ", "_"))
    say(f"Fine-tuning the encoder of step {step} in {workdir} on {data_name} in {ft_dir}.")
    ft_results = trainer.train_and_evaluate(ft, ft_dir)
    results = {"protocol": protocol, "steps": step, "data": ft_results["data"], "finetune_workdir": ft_dir,
               "finetune_steps": fv.finetune_steps, **transfer, "finetune_top1": ft_results["test_top1"],
               **({"finetune_ema_top1": ft_results["ema_test_top1"]} if "ema_test_top1" in ft_results else {})}
    name = result_name(step, argv, protocol=protocol, data=ft_results["data"])
  if jax.process_index() == 0:
    everything = {}
    if os.path.exists(out_path):
      try:
        with open(out_path) as f:
          everything = json.load(f)
      except json.JSONDecodeError:
        everything = {}
    everything[name] = results
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
      json.dump(everything, f, indent=2)
    if protocol == "suites":
      print(reporting.results_table(results), flush=True)
    else:
      print("\n".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in results.items()
                      if not isinstance(v, dict)), flush=True)
    print(f"Wrote {out_path} [{name!r}].", flush=True)
  return 0


if __name__ == "__main__":
  cli.run(main)
