r"""The seed tutorial's experiment: the same small CNN on 5,000 labelled images alone, then with SSL on 20,000 more.

  python experiments/baseline_vs_ssl.py [--dataset=fashion_mnist|cifar10] [--labels=5000] [--unlabelled=20000]
      [--seeds=0,1,2] [--out=experiments/results/baseline_vs_ssl] [--workdirs=workdirs/baseline_vs_ssl]
      [--set=total_steps=600 ...] [--ssl_from_baseline] [--method=fixmatch|mixmatch|uda|...|simclr|byol|...]

One class-balanced split per seed: `--labels` labelled training images and `--unlabelled` other training images
without their labels. Phase 1 trains the small ConvNet on the labelled images only
(`configs/semi/supervised_fashion_mnist.py`); phase 2 trains the same ConvNet with an SSL method on both:
FixMatch by default (`configs/semi/fixmatch_fashion_mnist.py`, `fixmatch.unlabelled`), or any method of
`SSL_METHODS` with `--method=M` (`configs/semi/M_fashion_mnist.py`, `M.unlabelled`; its runs go to
`ssl_M_seed<S>` and its results files get the suffix `_M`). Each phase shows a progress bar; finished runs are
reused and interrupted ones resume; a workdir that holds a run of another recipe (other labels, another `--set`)
is refused with the differing fields, never reused. With `--ssl_from_baseline` phase 2 starts from phase 1's
trained network (`init_from` its workdir, `init_params=all`: encoder and classifier) instead of from scratch, the
tutorial's order read literally: train on the labelled images, then continue with SSL on both (its runs go to
`ssl_from_baseline_seed<S>`, and the results files get the suffix `_from_baseline`).

Two-phase SSL, the seed tutorial's "two-phase training", with `--method=simclr` (or byol, barlow_twins, vicreg):
the method's config (`configs/ssl/M_fashion_mnist.py`) pretrains on the labelled and unlabelled images of the
split without their labels (`data.subset=S@labels+unlabelled`: the very images of the semi-supervised runs, in
`pretrain_M_seed<S>`), then `configs/transfer/finetune_fashion_mnist.py` fine-tunes its encoder on the labelled
images (`ssl_M_seed<S>`). The baseline is then that fine-tuning config from scratch on the same labelled images
(`baseline_finetune_seed<S>`, shared by the four methods), so both bars are the same network and recipe; `--set`
reaches all three runs, `--finetune_steps=N` the two fine-tuning runs only (their workdirs get the suffix
`_<N>steps` and the results files `_finetune<N>steps`; the pretraining is reused). Prints both test accuracies
(mean +- std over the seeds; the verdict is on them) and those of the EMA models (less noisy at the schedule's
last step) and writes `results.md` and `baseline_vs_ssl.png` (two bars, the seed-to-seed spread as error bars). The
tutorial reports CIFAR-10 43.7% -> 55.9%; `--dataset=cifar10` runs the same two phases on a machine that has the
TFDS `cifar10` dataset (prepared in `--set=data.tfds_data_dir=...`, or downloaded by TFDS).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# The semi-supervised methods that train on the labelled + unlabelled stream (`<method>.unlabelled`), by name.
SSL_METHODS = {"fixmatch": "FixMatch", "flexmatch": "FlexMatch", "uda": "UDA", "mixmatch": "MixMatch",
               "mean_teacher": "Mean Teacher", "pi_model": "Pi-model", "pseudo_label": "Pseudo-Label",
               "vat": "VAT", "co_training": "co-training", "self_training": "self-training"}


# Two-phase SSL (the seed tutorial's "two-phase training"): self-supervised pretraining on the labelled and the
# unlabelled images (labels unused, `data.subset`), then fine-tuning on the labelled images from its encoder. The
# baseline is then the same fine-tuning network trained from scratch on the labelled images.
PRETRAIN_METHODS = {"simclr": "SimCLR", "byol": "BYOL", "barlow_twins": "Barlow Twins", "vicreg": "VICReg"}
FINETUNE = "configs/transfer/finetune_fashion_mnist.py"


def method_name(method: str) -> str:
  return SSL_METHODS.get(method) or f"{PRETRAIN_METHODS[method]} pretraining, then fine-tuning"


def phases(method: str = "fixmatch") -> tuple[tuple[str, str, str, str], ...]:
  """(name, what, config, section of the method) of each phase, the SSL phase last.

  A semi-supervised `method` has two phases: the labelled-only baseline and the method on both. A
  self-supervised one (`PRETRAIN_METHODS`) has three: the fine-tuning network from scratch on the labelled
  images (the baseline), the method's pretraining on the labelled + unlabelled images without labels, and
  fine-tuning on the labelled images from that encoder.
  """
  if method in PRETRAIN_METHODS:
    name = PRETRAIN_METHODS[method]
    return (("baseline", "labelled images only, the fine-tuning network from scratch", FINETUNE, "finetune"),
            ("pretrain", f"{name} on labelled + unlabelled images, labels unused",
             f"configs/ssl/{method}_fashion_mnist.py", method),
            ("ssl", f"fine-tuned on the labelled images from {name}", FINETUNE, "finetune"))
  return (("baseline", "labelled images only", "configs/semi/supervised_fashion_mnist.py", "supervised"),
          ("ssl", f"{SSL_METHODS[method]} on labelled + unlabelled", f"configs/semi/{method}_fashion_mnist.py",
           method))


_STEP = re.compile(r"step (\d+)/(\d+)")


def phase_command(phase: str, path: str, section: str, *, labels: int, unlabelled: int, seed: int,
                  workdir: str, dataset: str, data_dir: str | None, sets: list[str],
                  init_from: str = "") -> list[str]:
  if phase == "pretrain":  # label-free: the images of the labelled split and of the unlabelled pool only
    config = [f"--config={path}", f"--config.data.subset={seed}@{labels}+{unlabelled}"]
  elif section == "finetune":
    config = [f"--config={path}", "--config.finetune.label_fraction=0", f"--config.finetune.labels={labels}",
              f"--config.finetune.label_seed={seed}"]
  else:
    config = [f"--config={path}:labels={labels},label_seed={seed}"]
  command = [sys.executable, "-m", "ssl_jax.main", config[0], f"--workdir={workdir}", f"--config.seed={seed}",
             f"--config.data.name={dataset}", *config[1:]]
  if phase == "ssl" and section != "finetune":
    command.append(f"--config.{section}.unlabelled={unlabelled}")
  if init_from:  # fine-tuning loads the pretrained encoder; SSL from the baseline, its whole network
    command += [f"--config.init_from={init_from}"] + (["--config.init_params=all"] if section != "finetune" else [])
  if data_dir and dataset == "fashion_mnist":
    command.append(f"--config.data.data_dir={data_dir}")
  return command + [f"--config.{s}" for s in sets]


def run_with_progress(command: list[str], desc: str, log_path: str) -> int:
  """Run `command`, its output to `log_path`, with a progress bar of its training steps."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  with open(log_path, "a") as log, tqdm(desc=desc, unit="step", dynamic_ncols=True) as bar:
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
      log.write(line)
      if match := _STEP.search(line):
        done, total = int(match.group(1)), int(match.group(2))
        bar.total = total
        bar.update(done - bar.n)
    return proc.wait()


def finished(workdir: str, key: str = "test_top1") -> dict | None:
  """The results of the finished run in `workdir` (test top-1 of the online and, when kept, the EMA model; a
  pretraining run's `key` is its linear probe)."""
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
    with open(os.path.join(workdir, "config.json")) as f:
      total = json.load(f)["total_steps"]
  except (OSError, ValueError, KeyError):
    return None
  return results if results.get("steps") == total and key in results else None


def main(argv=None) -> int:
  from ssl_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import trainer  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="fashion_mnist", choices=("fashion_mnist", "cifar10"))
  parser.add_argument("--labels", type=int, default=5000)
  parser.add_argument("--unlabelled", type=int, default=20000)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--out", default="experiments/results/baseline_vs_ssl")
  parser.add_argument("--workdirs", default="workdirs/baseline_vs_ssl")
  parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
  parser.add_argument("--method", default="fixmatch", choices=sorted(SSL_METHODS) + sorted(PRETRAIN_METHODS),
                      help="the SSL method: semi-supervised (its configs/semi/<method>_fashion_mnist.py) or "
                           "self-supervised pretraining then fine-tuning (configs/ssl/<method>_fashion_mnist.py)")
  parser.add_argument("--finetune_steps", type=int, default=0,
                      help="two-phase methods: both fine-tuning runs (baseline and SSL) train this many steps, "
                           "the pretraining is unchanged; 0: the fine-tuning config's own")
  parser.add_argument("--ssl_from_baseline", action="store_true",
                      help="start the SSL phase from the baseline's trained network instead of from scratch")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="an override of a field both phases have, e.g. --set=total_steps=600 (repeatable)")
  args = parser.parse_args(argv)
  try:
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
  except ValueError:
    print(f"error: --seeds takes comma-separated integers, e.g. 0,1,2; got {args.seeds!r}.", file=sys.stderr)
    return 2
  if not seeds or args.labels <= 0 or args.unlabelled <= 0 or any("=" not in s for s in args.set):
    print("error: give at least one seed, --labels > 0, --unlabelled > 0 and --set as KEY=VALUE.", file=sys.stderr)
    return 2
  data_dir = args.data_dir if os.path.isdir(args.data_dir) else None
  two_phase = args.method in PRETRAIN_METHODS
  if args.finetune_steps < 0 or (args.finetune_steps and not two_phase):
    print(f"error: --finetune_steps sets the fine-tuning runs of a two-phase method ({', '.join(PRETRAIN_METHODS)}) "
          f"and must be >= 0; got {args.finetune_steps} with --method={args.method} (use --set=total_steps=N).",
          file=sys.stderr)
    return 2
  if two_phase and args.ssl_from_baseline:
    print(f"error: --ssl_from_baseline continues a semi-supervised method from the baseline's network; {args.method} "
          "is pretrained from scratch, then fine-tuned. Leave out one of the two.", file=sys.stderr)
    return 2

  every = phases(args.method)
  tag = "" if args.method == "fixmatch" else f"_{args.method}"  # FixMatch's runs and files keep their first names
  accuracy = {phase: [] for phase, *_ in every}
  ema = {phase: [] for phase, *_ in every}  # the EMA model's, where the method keeps one
  for seed in seeds:
    for phase, what, path, section in every:
      warm = phase == "ssl" and args.ssl_from_baseline
      if phase == "baseline":  # the fine-tuning network's baseline is its own: shared by every pretraining method
        name = "baseline_finetune" if two_phase else "baseline"
      else:
        name = phase + tag + ("_from_baseline" if warm else "")
      sets = args.set
      if section == "finetune" and args.finetune_steps:  # its own runs; the pretraining is reused
        n = args.finetune_steps
        name += f"_{n}steps"
        sets = [f"total_steps={n}", f"checkpoint_every_steps={max(1, n // 4)}", f"eval_every_steps={max(1, n // 4)}",
                *args.set]
      workdir = os.path.join(args.workdirs, args.dataset, f"{name}_seed{seed}")
      if warm:
        what += ", from the baseline's network"
      init_from = ""
      if warm:
        init_from = os.path.join(args.workdirs, args.dataset, f"baseline_seed{seed}")
      elif two_phase and phase == "ssl":
        init_from = os.path.join(args.workdirs, args.dataset, f"pretrain{tag}_seed{seed}")
      key = "linear_probe_top1" if phase == "pretrain" else "test_top1"
      command = phase_command(phase, path, section, labels=args.labels, unlabelled=args.unlabelled, seed=seed,
                              workdir=workdir, dataset=args.dataset, data_dir=data_dir, sets=sets,
                              init_from=init_from)
      try:  # a run of another recipe in the workdir is refused, never reused or resumed
        changes = trainer.resume_changes(config_lib.from_command(command, cwd=ROOT), workdir)
      except UserError as e:
        print(f"error: the {phase} phase (seed {seed}): {e}", file=sys.stderr)
        return 2
      if changes:
        print(f"error: the {phase} phase (seed {seed}): {workdir} holds a run of another recipe ({changes}); pass "
              "the --labels, --unlabelled and --set values that run was trained with, or another --workdirs.",
              file=sys.stderr)
        return 2
      if (results := finished(workdir, key)) is None:
        os.makedirs(workdir, exist_ok=True)
        status = run_with_progress(command, f"seed {seed} {phase} ({what})", os.path.join(workdir, "log.txt"))
        results = finished(workdir, key)
        if status != 0 or results is None:
          print(f"error: the {phase} phase (seed {seed}) stopped with exit status {status}; read "
                f"{workdir}/log.txt, fix the cause and run this command again (finished phases are reused).",
                file=sys.stderr)
          return 2
      else:
        print(f"seed {seed} {phase}: reusing the finished run in {workdir}")
      accuracy[phase].append(results[key])
      ema[phase].append(results.get("ema_test_top1"))
      print(f"seed {seed} {phase} ({what}): {'linear probe' if phase == 'pretrain' else 'test'} top-1 "
            f"{results[key]:.4f}", flush=True)

  base, ssl = np.array(accuracy["baseline"]), np.array(accuracy["ssl"])
  std = lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0  # the sample std over seeds
  gain, spread = ssl.mean() - base.mean(), max(std(base), std(ssl))
  if len(seeds) < 2:
    verdict = "one seed has no seed-to-seed spread to judge the gain against; run two seeds or more"
  elif gain > spread:
    verdict = "SSL is ahead by more than the seed-to-seed spread"
  else:
    verdict = "SSL is NOT ahead by more than the seed-to-seed spread"
  method = method_name(args.method)
  ssl_name = f"{method} from the baseline's network" if args.ssl_from_baseline else method
  lines = [f"Baseline ({args.labels} labelled only): {base.mean():.4f} ± {std(base):.4f}",
           f"SSL ({ssl_name}, + {args.unlabelled} unlabelled): {ssl.mean():.4f} ± {std(ssl):.4f}",
           f"Gain {gain:+.4f} against a spread of {spread:.4f} over seeds {args.seeds}: {verdict}."]
  with_ema = all(v is not None for phase in ("baseline", "ssl") for v in ema[phase])
  if with_ema:  # less noisy than the online model's last step; the verdict stays on the online model, as the tables
    base_ema, ssl_ema = np.array(ema["baseline"]), np.array(ema["ssl"])
    lines.append(f"EMA models: baseline {base_ema.mean():.4f} ± {std(base_ema):.4f}, SSL {ssl_ema.mean():.4f} ± "
                 f"{std(ssl_ema):.4f} (gain {ssl_ema.mean() - base_ema.mean():+.4f}).")
  if two_phase:
    lines.append(f"{PRETRAIN_METHODS[args.method]} pretraining, linear probe of its encoder (all training labels, an "
                 f"evaluation only): {np.mean(accuracy['pretrain']):.4f} ± {std(accuracy['pretrain']):.4f}.")
  print("\n".join(lines))
  os.makedirs(args.out, exist_ok=True)
  header = "| seed | baseline test top-1 | SSL test top-1 |" + (" baseline EMA | SSL EMA |" if with_ema else "")
  header += "\n| ---: | ---: | ---: |" + (" ---: | ---: |" if with_ema else "")
  per_seed = "\n".join(f"| {s} | {accuracy['baseline'][i]:.4f} | {accuracy['ssl'][i]:.4f} |"
                       + (f" {ema['baseline'][i]:.4f} | {ema['ssl'][i]:.4f} |" if with_ema else "")
                       for i, s in enumerate(seeds))
  command = (f"python experiments/baseline_vs_ssl.py --dataset={args.dataset} --labels={args.labels} "
             f"--unlabelled={args.unlabelled} --seeds={args.seeds}" + "".join(f" --set={s}" for s in args.set)
             + (f" --method={args.method}" if tag else "")
             + (f" --finetune_steps={args.finetune_steps}" if args.finetune_steps else "")
             + (" --ssl_from_baseline" if args.ssl_from_baseline else ""))
  name = (args.dataset + tag + ("_from_baseline" if args.ssl_from_baseline else "")
          + (f"_finetune{args.finetune_steps}steps" if args.finetune_steps else ""))
  how = (f"then with {method} on both, starting from the baseline's trained network" if args.ssl_from_baseline
         else f"and with {method} on both")
  if two_phase:
    how = (f"(from scratch) and pretrained by {PRETRAIN_METHODS[args.method]} on the labelled and unlabelled images "
           "(labels unused), then fine-tuned on the labelled images (the same fine-tuning config"
           + (f", {args.finetune_steps} steps for both" if args.finetune_steps else "") + ")")
  with open(os.path.join(args.out, f"results_{name}.md"), "w") as f:
    f.write(f"# Baseline versus SSL on {args.dataset}: {args.labels} labelled + {args.unlabelled} unlabelled\n\n"
            f"The same small ConvNet, trained on the labelled images only {how}; mean ± the sample "
            "std (n - 1) over the seeds.\n\n"
            + header + "\n" + per_seed + "\n\n"
            + "\n".join(f"- {line}" for line in lines) + "\n\n"
            f"Command: `{command}` ({datetime.date.today().isoformat()}).\n")
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(4.2, 4.0))
  ax.bar([0, 1], [base.mean(), ssl.mean()], yerr=[std(base), std(ssl)], capsize=6,
         color=["tab:gray", "tab:blue"])
  for x, v in zip((0, 1), (base.mean(), ssl.mean())):
    ax.text(x, v + 0.01, f"{v:.3f}", ha="center", fontsize=9)
  short = f"{PRETRAIN_METHODS[args.method]},\nthen fine-tuning" if two_phase else method
  ax.set_xticks([0, 1], [f"{args.labels} labelled\nonly", f"+ {args.unlabelled}\nunlabelled ({short}"
                         + (",\nfrom the baseline)" if args.ssl_from_baseline else ")")])
  ax.set_ylim(max(0.0, min(base.mean(), ssl.mean()) - 0.15), 1.0)
  ax.set_ylabel(f"{args.dataset} test top-1")
  ax.set_title(f"Baseline vs SSL ({len(seeds)} seeds)", fontsize=10)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, f"baseline_vs_ssl_{name}.png"), dpi=110)
  plt.close(fig)
  print(f"Wrote {args.out}/results_{name}.md and baseline_vs_ssl_{name}.png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
