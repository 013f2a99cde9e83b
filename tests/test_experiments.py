"""The experiment scripts that write the README's tables: they train, reuse finished runs and write tables."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

from ssl_jax.train import config as config_lib  # noqa: E402  pylint: disable=wrong-import-position

import baseline_vs_ssl  # noqa: E402  pylint: disable=wrong-import-position
import domain_adaptation  # noqa: E402  pylint: disable=wrong-import-position
import metric_learning  # noqa: E402  pylint: disable=wrong-import-position
import mil_benchmark  # noqa: E402  pylint: disable=wrong-import-position
import semi_supervised  # noqa: E402  pylint: disable=wrong-import-position
import ssl_benchmark  # noqa: E402  pylint: disable=wrong-import-position
import transfer  # noqa: E402  pylint: disable=wrong-import-position

TINY_SIMCLR = ["data.name=digits", "total_steps=4", "batch_size=32", "checkpoint_every_steps=2",
               "eval_every_steps=2", "model.widths=(8,16)", "simclr.proj_hidden_dim=16", "simclr.proj_dim=8",
               "eval.monitor_examples=200", "eval.probe_epochs=1", "eval.pixel_baseline=true"]


def test_ssl_benchmark_reuses_finished_runs_and_writes_the_table(tmp_path, capsys):
  """A run whose results.json holds the config's steps is read, not trained again."""
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  for method, probe in (("simclr", 0.8841), ("byol", 0.8752)):
    os.makedirs(os.path.join(work, method))
    with open(os.path.join(work, method, "results.json"), "w") as f:
      json.dump({"steps": 600, "train_seconds": 300.0, "linear_probe_top1": probe, "knn_top1": 0.85,
                 "pixel_linear_probe_top1": 0.8454}, f)
    with open(os.path.join(work, method, "metrics.jsonl"), "w") as f:
      f.write(json.dumps({"step": 300, "eval/rankme": 90.0}) + "\n" + json.dumps({"step": 600, "eval/rankme": 101.4}))
  args = ["--methods=simclr,byol", f"--out={out}", f"--workdirs={work}", "--set=total_steps=600"]
  assert ssl_benchmark.main(args) == 0
  assert capsys.readouterr().out.count("reusing the finished run") == 2
  with open(os.path.join(out, "results.md")) as f:
    text = f.read()
  assert "| `simclr` | 0.8841 | 0.8500 | 101 | 300 | 600 |" in text
  assert "| raw pixels (reference) | 0.8454 |" in text
  assert "below the goal of 0.88: byol." in text and "--set=total_steps=600" in text
  assert os.path.getsize(os.path.join(out, "ssl_benchmark.png")) > 1000
  # A finished run of another recipe (its config.json says temperature 0.5) is refused, never reused.
  config = config_lib.load_config(ssl_benchmark.config_path("simclr"))
  config_lib.override(config, "total_steps", "600")
  config_lib.override(config, "simclr.temperature", "0.5")
  with open(os.path.join(work, "simclr", "config.json"), "w") as f:
    f.write(config_lib.to_json(config))
  assert ssl_benchmark.main(args) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: simclr: ") and "simclr.temperature=0.5 in the workdir" in err
  simclr = ["--methods=simclr", *args[1:]]
  assert ssl_benchmark.main([*simclr, "--set=simclr.temperature=0.5"]) == 0  # the same recipe: reused
  assert ssl_benchmark.main([*simclr, "--set=simclr.temprature=0.5"]) == 2
  assert "did you mean `simclr.temperature`?" in capsys.readouterr().err
  # A field of one method's section applies to that method's run only: byol's run is still reused as it was.
  both = ["--methods=simclr,byol", *args[1:], "--set=simclr.temperature=0.5"]
  assert ssl_benchmark.main(both) == 0
  assert capsys.readouterr().out.count("reusing the finished run") == 2
  # ... and is refused when that method is not benchmarked, rather than ignored.
  assert ssl_benchmark.main(["--methods=byol", *args[1:], "--set=simclr.temperature=0.5"]) == 2
  assert "--set=simclr.temperature=0.5 sets a field of the simclr method, which is not benchmarked" in \
      capsys.readouterr().err


def test_experiment_scripts_apply_a_method_section_set_to_that_method_only():
  sets = ["total_steps=600", "byol.tau_base=0.98", "vq_vae.codebook_size=64", "optim.lr=1e-3"]
  assert config_lib.overrides_for("byol", sets) == ["total_steps=600", "byol.tau_base=0.98", "optim.lr=1e-3"]
  assert config_lib.overrides_for("simclr", sets) == ["total_steps=600", "optim.lr=1e-3"]
  assert config_lib.unused_overrides(["byol", "vq_vae"], sets) == []
  assert config_lib.unused_overrides(["simclr"], sets) == ["byol.tau_base=0.98", "vq_vae.codebook_size=64"]
  # beit's first phase (vq_vae) reads vq_vae.*; a section of a method outside the grid is refused.
  assert ssl_benchmark.main(["--methods=beit", "--set=vq_vae.codebook_size=64", "--set=simclr.temperature=1",
                             "--workdirs=/nonexistent"]) == 2
  assert semi_supervised.main(["--methods=supervised", "--set=fixmatch.threshold=0.9"]) == 2


def test_mil_benchmark_reuses_runs_of_its_seeds_and_config_args_and_writes_the_table(tmp_path, capsys):
  """Finished runs under <workdir>/mean10_<encoder>_<steps>steps<tag>/ are read back; the table names the recipe."""
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  aucs = {("attention", 100): [0.95, 0.97], ("instance_max", 100): [0.60, 0.70]}
  for (pooling, bags), values in aucs.items():
    for seed, auc in zip((7, 8), values):
      run = os.path.join(work, "mean10_lenet_mil_300steps_adam", f"{pooling}_bags{bags}_seed{seed}")
      os.makedirs(run)
      with open(os.path.join(run, "results.json"), "w") as f:
        json.dump({"steps": 300, "bag_auc": auc, "instance_auc": 0.9}, f)
  args = ["--encoder=lenet_mil", "--steps=300", "--bags=100", "--poolings=instance_max,attention", "--seeds=2",
          "--first-seed=7", "--config-args=optim=adam,shift=0", "--tag=_adam", f"--workdir={work}", f"--out={out}"]
  assert mil_benchmark.main(args) == 0
  assert capsys.readouterr().out.count("(reused)") == 4
  with open(os.path.join(out, "mil_benchmark_mean10_lenet_mil_adam.md")) as f:
    text = f.read()
  assert "| attention | 0.960 +- 0.014 |" in text and "| instance + max | 0.650 +- 0.071 |" in text
  assert "--first-seed 7 --bags 100 --poolings instance_max,attention --config-args optim=adam,shift=0" in text
  assert "optimizer `adam` (lr 0.0005, weight decay 0.0001), no augmentation, dropout 0.25 on the attention MLP's hidden units, config arguments `optim=adam,shift=0`" in text
  # Every seed's AUC, and the attention pooling against the best baseline seed by seed.
  assert "| pooling | seed 7 | seed 8 |" in text and "| attention | 0.950 | 0.970 |" in text
  assert ("attention against the best baseline on the mean (instance + max), 100 bags: ahead on 2 of 2 seeds, mean "
          "difference +0.310, median +0.310.") in text
  # A run of another recipe (an older run, before augment_shift existed: no shift, AdamW) is refused, not reused.
  with open(os.path.join(work, "mean10_lenet_mil_300steps_adam", "attention_bags100_seed7", "config.json"), "w") as f:
    json.dump({"batch_size": 16, "optim": {"name": "adamw", "lr": 5e-4, "weight_decay": 1e-4}, "mil": {}}, f)
  assert mil_benchmark.main(args) == 2
  assert "holds a run with optim.name='adamw', not 'adam' as asked" in capsys.readouterr().err


@pytest.mark.slow
def test_ssl_benchmark_trains_then_reuses_and_writes_the_table(tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  args = ["--methods=simclr", f"--out={out}", f"--workdirs={work}", *(f"--set={s}" for s in TINY_SIMCLR)]
  assert ssl_benchmark.main(args) == 0
  with open(os.path.join(work, "simclr", "results.json")) as f:
    results = json.load(f)
  assert results["steps"] == 4
  with open(os.path.join(out, "results.md")) as f:
    text = f.read()
  row = next(line for line in text.splitlines() if line.startswith("| `simclr`"))
  assert f"{results['linear_probe_top1']:.4f}" in row and f"{results['knn_top1']:.4f}" in row
  assert "| raw pixels (reference) |" in text and "--methods=simclr" in text
  assert os.path.getsize(os.path.join(out, "ssl_benchmark.png")) > 1000
  capsys.readouterr()
  # A second call finds the finished run and does not train again.
  assert ssl_benchmark.main(args) == 0
  assert "simclr: reusing the finished run" in capsys.readouterr().out


def test_ssl_benchmark_lists_every_ssl_method_and_refuses_unknown_ones(capsys):
  methods = ssl_benchmark.ssl_methods()
  assert {"simclr", "byol", "simsiam"} <= set(methods)
  assert ssl_benchmark.main(["--methods=simclr,nope"]) == 2
  assert "error: no self-supervised method with a Fashion-MNIST config is called nope" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    ssl_benchmark.main(["--help"])


def _fake_run(workdir, steps, results, monitored=(), config=None):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"steps": steps, "train_seconds": 60.0, **results}, f)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config_lib.to_json(config) if config is not None else json.dumps({"total_steps": steps}))
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.write("".join(json.dumps({"step": i + 1, "eval/test_top1": v}) + "\n" for i, v in enumerate(monitored)))


def _semi_config(method, seed, **fields):
  """The config `semi_supervised.py` trains `method` with at 250 labels and `seed`, as a run's config.json holds it."""
  config = config_lib.load_config(f"{semi_supervised.config_path(method)}:labels=250,label_seed={seed}")
  config.seed = seed
  for dotted, value in fields.items():
    config_lib.override(config, dotted.replace("__", "."), str(value))
  return config


def test_semi_supervised_grid_reuses_runs_and_reports_mean_std_and_median(tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  for seed, (base, fix, pl) in enumerate(((0.75, 0.80, 0.74), (0.77, 0.84, 0.79))):
    _fake_run(os.path.join(work, "supervised", f"labels250_seed{seed}"), 1200, {"test_top1": base}, [0.7, base],
              config=_semi_config("supervised", seed))
    _fake_run(os.path.join(work, "fixmatch", f"labels250_seed{seed}"), 1200, {"test_top1": fix},
              [0.5, 0.9, 0.1, fix], config=_semi_config("fixmatch", seed))
    _fake_run(os.path.join(work, "pseudo_label", f"labels250_seed{seed}"), 1200, {"test_top1": pl}, [pl],
              config=_semi_config("pseudo_label", seed))
  args = ["--methods=supervised,fixmatch,pseudo_label", "--labels=250", "--seeds=0,1", "--median_of=3",
          f"--out={out}", f"--workdirs={work}"]
  assert semi_supervised.main(args) == 0
  assert capsys.readouterr().out.count("reusing the finished run") == 6
  with open(os.path.join(out, "results.md")) as f:
    text = f.read()
  assert "| `supervised` | 0.7600 ± 0.0141 |" in text and "| `fixmatch` | 0.8200 ± 0.0283 |" in text  # sample std
  # Medians of the last 3 evaluations: seed 0 median(0.9, 0.1, 0.80) = 0.80, seed 1 median(0.9, 0.1, 0.84) = 0.84.
  assert text.count("| `fixmatch` | 0.8200 ± 0.0283 |") == 2
  # Pseudo-Label is above the baseline on the mean (0.765 > 0.76) but below it on the split of seed 0.
  assert "| `fixmatch` | +5.0, +7.0 |" in text and "| `pseudo_label` | -1.0, +2.0 |" in text
  assert ("250 labels: labelled-only baseline 0.7600; at or below it on the mean: none; on some split: "
          "pseudo_label (seed 0).") in text
  assert os.path.getsize(os.path.join(out, "semi_supervised.png")) > 1000
  assert semi_supervised.main(["--methods=nope"]) == 2
  assert semi_supervised.main(["--labels=25"]) == 2
  assert "positive multiples of the 10 classes" in capsys.readouterr().err


def test_semi_supervised_refuses_to_reuse_a_run_of_another_recipe(tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  _fake_run(os.path.join(work, "fixmatch", "labels250_seed0"), 1200, {"test_top1": 0.8}, [0.8],
            config=_semi_config("fixmatch", 0, fixmatch__lambda_u=2.0))
  args = ["--methods=fixmatch", "--labels=250", "--seeds=0", f"--out={out}", f"--workdirs={work}"]
  assert semi_supervised.main(args) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: fixmatch with 250 labels, seed 0: ") and "fixmatch.lambda_u=2.0 in the workdir" in err
  assert "holds a run of another recipe" in err and "or another --workdirs." in err
  # The same overrides as the run: reused.
  assert semi_supervised.main([*args, "--set=fixmatch.lambda_u=2.0"]) == 0
  assert "reusing the finished run" in capsys.readouterr().out
  assert semi_supervised.main([*args, "--set=fixmatch.lambda=2"]) == 2
  assert "did you mean `fixmatch.lambda_u`?" in capsys.readouterr().err
  # fixmatch's own field does not reach the baseline's runs: both are reused.
  _fake_run(os.path.join(work, "supervised", "labels250_seed0"), 1200, {"test_top1": 0.7}, [0.7],
            config=_semi_config("supervised", 0))
  both = ["--methods=supervised,fixmatch", *args[1:], "--set=fixmatch.lambda_u=2.0"]
  assert semi_supervised.main(both) == 0
  assert capsys.readouterr().out.count("reusing the finished run") == 2


def test_baseline_vs_ssl_reuses_both_phases_and_judges_the_gain_against_the_spread(tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  for seed, (base, ssl) in enumerate(((0.80, 0.86), (0.82, 0.85))):
    for (phase, _, path, section), top1 in zip(baseline_vs_ssl.phases(), (base, ssl)):
      workdir = os.path.join(work, "fashion_mnist", f"{phase}_seed{seed}")
      command = baseline_vs_ssl.phase_command(phase, path, section, labels=5000, unlabelled=20000, seed=seed,
                                              workdir=workdir, dataset="fashion_mnist", data_dir=None, sets=[])
      _fake_run(workdir, 1200, {"test_top1": top1, "ema_test_top1": top1 - 0.01},
                config=config_lib.from_command(command, cwd=ROOT))
  assert baseline_vs_ssl.main(["--seeds=0,1", f"--out={out}", f"--workdirs={work}"]) == 0
  printed = capsys.readouterr().out
  assert "Baseline (5000 labelled only): 0.8100 ± 0.0141" in printed  # the sample std (n - 1)
  assert "Gain +0.0450 against a spread of 0.0141" in printed and "SSL is ahead by more" in printed
  assert "EMA models: baseline 0.8000 ± 0.0141, SSL 0.8450 ± 0.0071 (gain +0.0450)." in printed
  with open(os.path.join(out, "results_fashion_mnist.md")) as f:
    assert "| 1 | 0.8200 | 0.8500 | 0.8100 | 0.8400 |" in f.read()
  assert os.path.getsize(os.path.join(out, "baseline_vs_ssl_fashion_mnist.png")) > 1000
  command = baseline_vs_ssl.phase_command("ssl", "configs/semi/fixmatch_fashion_mnist.py", "fixmatch", labels=5000,
                                          unlabelled=20000, seed=1, workdir="w", dataset="cifar10", data_dir="/d",
                                          sets=["total_steps=10"])
  assert "--config=configs/semi/fixmatch_fashion_mnist.py:labels=5000,label_seed=1" in command
  assert "--config.fixmatch.unlabelled=20000" in command and "--config.data.name=cifar10" in command
  assert "--config.total_steps=10" in command and not any("data_dir" in c for c in command)
  # --ssl_from_baseline: the SSL phase has its own workdirs and starts from the same seed's baseline network.
  for seed, top1 in ((0, 0.87), (1, 0.88)):
    workdir = os.path.join(work, "fashion_mnist", f"ssl_from_baseline_seed{seed}")
    command = baseline_vs_ssl.phase_command(
        "ssl", "configs/semi/fixmatch_fashion_mnist.py", "fixmatch", labels=5000, unlabelled=20000, seed=seed,
        workdir=workdir, dataset="fashion_mnist", data_dir=None, sets=[],
        init_from=os.path.join(work, "fashion_mnist", f"baseline_seed{seed}"))
    assert f"--config.init_from={work}/fashion_mnist/baseline_seed{seed}" in command
    assert "--config.init_params=all" in command
    _fake_run(workdir, 1200, {"test_top1": top1}, config=config_lib.from_command(command, cwd=ROOT))
  assert baseline_vs_ssl.main(["--seeds=0,1", f"--out={out}", f"--workdirs={work}", "--ssl_from_baseline"]) == 0
  printed = capsys.readouterr().out
  assert "SSL (FixMatch from the baseline's network, + 20000 unlabelled): 0.8750" in printed
  assert printed.count("reusing the finished run") == 4
  assert os.path.exists(os.path.join(out, "results_fashion_mnist_from_baseline.md"))
  # A finished run of another recipe (here 1200 steps, not 3600; 5000 labels, not 1000) is refused, never reused.
  for other, field in (("--set=total_steps=3600", "total_steps=1200 in the workdir, 3600 now"),
                       ("--labels=1000", "supervised.labels=5000 in the workdir, 1000 now")):
    assert baseline_vs_ssl.main(["--seeds=0,1", f"--out={out}", f"--workdirs={work}", other]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the baseline phase (seed 0): ") and field in err and "another --workdirs" in err
  assert baseline_vs_ssl.main(["--seeds=0", f"--out={out}", f"--workdirs={work}", "--set=optim.lrr=1"]) == 2
  assert "did you mean `optim.lr`?" in capsys.readouterr().err


def test_baseline_vs_ssl_takes_every_method_of_the_labelled_unlabelled_stream(tmp_path, capsys):
  from ssl_jax.data import streams  # pylint: disable=g-import-not-at-top
  from ssl_jax.methods import METHODS  # pylint: disable=g-import-not-at-top
  # Every semi-supervised method that trains on labelled + unlabelled batches can be phase 2, and limits its
  # unlabelled images to --unlabelled.
  semi = set()
  for name, method in METHODS.items():
    if name == "supervised" or not os.path.exists(os.path.join(ROOT, "configs", "semi", f"{name}_fashion_mnist.py")):
      continue
    config = config_lib.load_config(os.path.join(ROOT, "configs", "semi", f"{name}_fashion_mnist.py"))
    if isinstance(method.stream(config), streams.LabelledUnlabelled):
      semi.add(name)
  assert semi == set(baseline_vs_ssl.SSL_METHODS)
  for name in semi:
    (_, _, path, section), = baseline_vs_ssl.phases(name)[1:]
    command = baseline_vs_ssl.phase_command("ssl", path, section, labels=5000, unlabelled=20000, seed=3, workdir="w",
                                            dataset="fashion_mnist", data_dir=None, sets=[])
    stream = METHODS[name].stream(config_lib.from_command(command, cwd=ROOT))
    assert (stream.num_labels, stream.split_seed, stream.num_unlabelled) == (5000, 3, 20000), name
  # --method=mixmatch: its own workdirs and results files; the baseline's runs are shared with FixMatch's.
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  for seed, (base, ssl) in enumerate(((0.80, 0.86), (0.82, 0.85))):
    for (phase, _, path, section), top1 in zip(baseline_vs_ssl.phases("mixmatch"), (base, ssl)):
      workdir = os.path.join(work, "fashion_mnist", f"{phase}{'_mixmatch' if phase == 'ssl' else ''}_seed{seed}")
      command = baseline_vs_ssl.phase_command(phase, path, section, labels=5000, unlabelled=20000, seed=seed,
                                              workdir=workdir, dataset="fashion_mnist", data_dir=None, sets=[])
      _fake_run(workdir, 1200, {"test_top1": top1}, config=config_lib.from_command(command, cwd=ROOT))
  assert baseline_vs_ssl.main(["--seeds=0,1", f"--out={out}", f"--workdirs={work}", "--method=mixmatch"]) == 0
  printed = capsys.readouterr().out
  assert printed.count("reusing the finished run") == 4
  assert "SSL (MixMatch, + 20000 unlabelled): 0.8550 ± 0.0071" in printed and "SSL is ahead by more" in printed
  with open(os.path.join(out, "results_fashion_mnist_mixmatch.md")) as f:
    text = f.read()
  assert "and with MixMatch on both" in text and "--method=mixmatch" in text
  assert os.path.getsize(os.path.join(out, "baseline_vs_ssl_fashion_mnist_mixmatch.png")) > 1000
  # One seed has no spread: no verdict either way.
  assert baseline_vs_ssl.main(["--seeds=1", f"--out={out}", f"--workdirs={work}", "--method=mixmatch"]) == 0
  printed = capsys.readouterr().out
  assert "Gain +0.0300 against a spread of 0.0000 over seeds 1: one seed has no seed-to-seed spread" in printed
  assert "SSL is ahead" not in printed and "SSL is NOT ahead" not in printed
  with pytest.raises(SystemExit):
    baseline_vs_ssl.main(["--method=supervised"])
  assert "invalid choice: 'supervised'" in capsys.readouterr().err


def test_baseline_vs_ssl_two_phase_pretrains_on_the_split_images_then_fine_tunes(tmp_path, capsys):
  """--method=simclr: pretraining on the labelled + unlabelled images (labels unused), fine-tuning from its encoder,
  against the same fine-tuning config from scratch."""
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  (base_p, base_what, base_path, _), (pre_p, _, pre_path, pre_section), (ssl_p, _, ssl_path, _) = \
      baseline_vs_ssl.phases("simclr")
  assert (base_p, pre_p, ssl_p) == ("baseline", "pretrain", "ssl") and base_path == ssl_path == baseline_vs_ssl.FINETUNE
  assert pre_path == "configs/ssl/simclr_fashion_mnist.py" and "from scratch" in base_what
  finetune = config_lib.load_config(os.path.join(ROOT, baseline_vs_ssl.FINETUNE))
  for method in baseline_vs_ssl.PRETRAIN_METHODS:  # each pretrains the very network that fine-tuning loads
    pretrain = config_lib.load_config(os.path.join(ROOT, baseline_vs_ssl.phases(method)[1][2]))
    assert pretrain.method == method and pretrain.model.to_dict() == finetune.model.to_dict(), method
  for seed, (base, probe, ssl) in enumerate(((0.82, 0.87, 0.85), (0.83, 0.88, 0.86))):
    runs = {"baseline": ("baseline_finetune", base, ""),
            "pretrain": ("pretrain_simclr", probe, ""),
            "ssl": ("ssl_simclr", ssl, os.path.join(work, "fashion_mnist", f"pretrain_simclr_seed{seed}"))}
    for phase, _, path, section in baseline_vs_ssl.phases("simclr"):
      name, top1, init_from = runs[phase]
      workdir = os.path.join(work, "fashion_mnist", f"{name}_seed{seed}")
      command = baseline_vs_ssl.phase_command(phase, path, section, labels=5000, unlabelled=20000, seed=seed,
                                              workdir=workdir, dataset="fashion_mnist", data_dir=None, sets=[],
                                              init_from=init_from)
      config = config_lib.from_command(command, cwd=ROOT)
      if phase == "pretrain":  # label-free, on exactly the images of the split and its unlabelled pool
        assert config.method == "simclr" and config.data.subset == f"{seed}@5000+20000" and not config.init_from
        _fake_run(workdir, config.total_steps, {"linear_probe_top1": top1}, config=config)
      else:  # the fine-tuning config on the split's labels; only the SSL phase loads the pretrained encoder
        assert config.method == "finetune" and not config.data.subset
        assert (config.finetune.labels, config.finetune.label_seed, config.finetune.label_fraction) == (5000, seed, 0)
        assert config.init_from == init_from and config.init_params == "encoder"
        _fake_run(workdir, config.total_steps, {"test_top1": top1, "ema_test_top1": top1 + 0.001}, config=config)
  assert baseline_vs_ssl.main(["--seeds=0,1", f"--out={out}", f"--workdirs={work}", "--method=simclr"]) == 0
  printed = capsys.readouterr().out
  assert printed.count("reusing the finished run") == 6
  assert "SSL (SimCLR pretraining, then fine-tuning, + 20000 unlabelled): 0.8550 ± 0.0071" in printed
  assert "Baseline (5000 labelled only): 0.8250 ± 0.0071" in printed and "SSL is ahead by more" in printed
  assert "SimCLR pretraining, linear probe of its encoder (all training labels, an evaluation only): 0.8750" in printed
  with open(os.path.join(out, "results_fashion_mnist_simclr.md")) as f:
    text = f.read()
  assert "pretrained by SimCLR on the labelled and unlabelled images (labels unused)" in text
  assert "--method=simclr" in text and "| 1 | 0.8300 | 0.8600 | 0.8310 | 0.8610 |" in text
  assert baseline_vs_ssl.main(["--seeds=0", f"--out={out}", f"--workdirs={work}", "--method=simclr",
                               "--ssl_from_baseline"]) == 2
  assert "simclr is pretrained from scratch, then fine-tuned" in capsys.readouterr().err
  # --finetune_steps: both fine-tuning runs train that long, in their own workdirs; the pretraining is reused.
  for seed in (0, 1):
    for phase, _, path, section in baseline_vs_ssl.phases("simclr")[::2]:
      name = "baseline_finetune" if phase == "baseline" else "ssl_simclr"
      workdir = os.path.join(work, "fashion_mnist", f"{name}_2400steps_seed{seed}")
      command = baseline_vs_ssl.phase_command(
          phase, path, section, labels=5000, unlabelled=20000, seed=seed, workdir=workdir, dataset="fashion_mnist",
          data_dir=None, sets=["total_steps=2400", "checkpoint_every_steps=600", "eval_every_steps=600"],
          init_from=os.path.join(work, "fashion_mnist", f"pretrain_simclr_seed{seed}") if phase == "ssl" else "")
      _fake_run(workdir, 2400, {"test_top1": 0.87 + 0.01 * (phase == "ssl") + 0.001 * seed},
                config=config_lib.from_command(command, cwd=ROOT))
  assert baseline_vs_ssl.main(["--seeds=0,1", f"--out={out}", f"--workdirs={work}", "--method=simclr",
                               "--finetune_steps=2400"]) == 0
  printed = capsys.readouterr().out
  assert printed.count("reusing the finished run") == 6 and "Baseline (5000 labelled only): 0.8705" in printed
  with open(os.path.join(out, "results_fashion_mnist_simclr_finetune2400steps.md")) as f:
    text = f.read()
  assert "2400 steps for both" in text and "--method=simclr --finetune_steps=2400" in text
  assert baseline_vs_ssl.main(["--seeds=0", "--finetune_steps=2400"]) == 2  # FixMatch has no fine-tuning runs
  assert "--finetune_steps sets the fine-tuning runs of a two-phase method" in capsys.readouterr().err


@pytest.mark.slow
def test_baseline_vs_ssl_runs_both_phases_for_real(tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  tiny = ["data.name=digits", "total_steps=6", "checkpoint_every_steps=3", "eval_every_steps=3",
          "model.widths=(8,16)", "batch_size=16"]  # common fields: --set applies to both phases
  args = ["--seeds=0", "--labels=100", "--unlabelled=500", f"--out={out}", f"--workdirs={work}",
          *(f"--set={s}" for s in tiny)]
  assert baseline_vs_ssl.main(args) == 0
  with open(os.path.join(work, "fashion_mnist", "ssl_seed0", "stream.json")) as f:
    record = json.load(f)
  assert record["num_unlabelled"] == 500 and record["num_labels"] == 100
  assert os.path.exists(os.path.join(out, "results_fashion_mnist.md"))
  assert baseline_vs_ssl.main(args) == 0  # the config.json that ssl_jax.main wrote matches: both phases reused
  assert capsys.readouterr().out.count("reusing the finished run") == 2


@pytest.mark.slow
def test_baseline_vs_ssl_runs_the_two_phase_method_for_real(tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  tiny = ["data.name=digits", "total_steps=4", "checkpoint_every_steps=2", "eval_every_steps=2",
          "model.widths=(8,16)", "batch_size=16"]  # fields of all three configs
  args = ["--seeds=0", "--labels=100", "--unlabelled=500", f"--out={out}", f"--workdirs={work}", "--method=simclr",
          *(f"--set={s}" for s in tiny)]
  assert baseline_vs_ssl.main(args) == 0
  runs = os.path.join(work, "fashion_mnist")
  with open(os.path.join(runs, "pretrain_simclr_seed0", "stream.json")) as f:
    assert json.load(f) == {"name": "digits.0@100+500u", "groups": {"image": 16}, "subset": "0@100+500",
                            "num_images": 600}
  with open(os.path.join(runs, "ssl_simclr_seed0", "config.json")) as f:
    assert json.load(f)["init_from"] == os.path.join(runs, "pretrain_simclr_seed0")
  for name in ("baseline_finetune_seed0", "ssl_simclr_seed0"):
    with open(os.path.join(runs, name, "stream.json")) as f:
      assert json.load(f)["name"] == "digits.0@100"
  assert os.path.exists(os.path.join(out, "results_fashion_mnist_simclr.md"))
  assert baseline_vs_ssl.main(args) == 0
  assert capsys.readouterr().out.count("reusing the finished run") == 3


def test_domain_adaptation_refuses_bad_arguments(capsys):
  assert domain_adaptation.main(["--pairs=mnist5k"]) == 2
  assert "--pairs takes source:target" in capsys.readouterr().err
  assert domain_adaptation.main(["--pairs=mnist5k:svhn"]) == 2
  assert "no config configs/transfer/dann_mnist5k_to_svhn.py" in capsys.readouterr().err
  assert domain_adaptation.main(["--set=total_steps=10"]) == 2
  assert "name the setting with --tag" in capsys.readouterr().err
  assert domain_adaptation.workdir_name("upper bound", "digits28", "mnist5k", 1, "w1") == "mnist5k_upper_bound_seed1_w1"
  assert domain_adaptation.workdir_name("source only", "digits28", "mnist5k", 0, "") == "digits28_to_mnist5k_source_only"
  assert not domain_adaptation.changes_baselines("dann.domain_weight=1")
  assert domain_adaptation.changes_baselines("dann.views.pad_fraction=0.1") and domain_adaptation.changes_baselines("seed=1")


@pytest.mark.slow
def test_domain_adaptation_runs_three_runs_per_direction_then_reuses_them(tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  tiny = ["total_steps=3", "checkpoint_every_steps=3", "eval_every_steps=3", "model.widths=(8,16)", "batch_size=16",
          "dann.domain_hidden_dim=8"]
  args = ["--pairs=mnist5k:digits28_mnist_layout", "--tag=tiny", f"--out={out}", f"--workdirs={work}",
          *(f"--set={s}" for s in tiny)]
  assert domain_adaptation.main(args) == 0
  assert sorted(os.listdir(work)) == ["digits28_mnist_layout_upper_bound_tiny",
                                      "mnist5k_to_digits28_mnist_layout_DANN_tiny",
                                      "mnist5k_to_digits28_mnist_layout_source_only_tiny"]
  with open(os.path.join(work, "mnist5k_to_digits28_mnist_layout_source_only_tiny", "config.json")) as f:
    config = json.load(f)
  assert config["dann"]["domain_weight"] == 0 and config["total_steps"] == 3
  with open(os.path.join(out, "results.md")) as f:
    text = f.read()
  assert "| mnist5k -> digits28_mnist_layout |" in text and "--set=total_steps=3" in text
  capsys.readouterr()
  assert domain_adaptation.main(args) == 0
  assert capsys.readouterr().out.count("already finished") == 3


def test_transfer_refuses_bad_arguments(capsys):
  assert transfer.main(["--fractions=0.01,2"]) == 2
  assert "--fractions takes fractions of the labels in (0, 1]" in capsys.readouterr().err
  assert transfer.main(["--set=total_steps"]) == 2
  assert "--set takes KEY=VALUE" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_simclr_run(tmp_path_factory):
  """A 4-step SimCLR run on scikit-learn's digits: the self-supervised run that transfer and retrieval read."""
  from ssl_jax.train import trainer  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp("simclr"))
  config = config_lib.load_config(os.path.join(ROOT, "configs", "ssl", "simclr_fashion_mnist.py"))
  for item in TINY_SIMCLR:
    config_lib.override(config, *item.split("=", 1))
  trainer.train_and_evaluate(config, workdir)
  return workdir


@pytest.mark.slow
def test_transfer_fine_tunes_from_both_runs_and_scratch_then_reuses_them(tiny_simclr_run, tmp_path, capsys):
  simclr = tiny_simclr_run
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  tiny = ["data.name=digits", "total_steps=2", "checkpoint_every_steps=2", "eval_every_steps=2", "batch_size=16",
          "model.widths=(8,16)"]
  args = [f"--simclr={simclr}", f"--byol={simclr}", "--fractions=0.2,0.5", f"--out={out}", f"--workdirs={work}",
          *(f"--set={s}" for s in tiny)]
  assert transfer.main(args) == 0
  assert sorted(d for d in os.listdir(work) if d.startswith("finetune")) == sorted(
      f"finetune_{slug}_{pct}pc" for slug in ("simclr", "simclr_lr0.1", "byol", "scratch") for pct in (20, 50))
  with open(os.path.join(work, "finetune_simclr_lr0.1_20pc", "config.json")) as f:
    config = json.load(f)
  assert config["finetune"]["pretrained_lr_scale"] == 0.1 and config["init_from"] == simclr
  assert config["total_steps"] == 2 and config["data"]["name"] == "digits"
  scratch = []
  for pct in (20, 50):
    with open(os.path.join(work, f"finetune_scratch_{pct}pc", "results.json")) as f:
      scratch.append(f"{json.load(f)['test_top1']:.4f}")
  with open(os.path.join(out, "results.md")) as f:
    text = f.read()
  row = next(line for line in text.splitlines() if line.startswith("| scratch |"))
  assert [cell.strip() for cell in row.strip("|").split("|")] == ["scratch", *scratch, "-", "-"]
  assert "| raw pixels | - | - |" in text and "--fractions=0.2,0.5" in text and "--set=data.name=digits" in text
  assert os.path.getsize(os.path.join(out, "transfer.png")) > 1000
  capsys.readouterr()
  assert transfer.main(args) == 0  # every fine-tuning run is found finished and reused
  assert capsys.readouterr().out.count("already finished 2 steps") == 8
  assert transfer.main([*args, "--set=optim.lr=0.1"]) == 2  # another recipe in the same workdirs: refused
  assert "holds a run with other settings: optim.lr" in capsys.readouterr().err


def test_metric_learning_refuses_bad_arguments(tmp_path, capsys):
  assert metric_learning.main(["--set=total_steps"]) == 2
  assert "--set takes KEY=VALUE" in capsys.readouterr().err
  work = str(tmp_path / "work")
  assert metric_learning.main([f"--simclr={tmp_path / 'none'}", f"--workdirs={work}", f"--out={tmp_path}"]) == 2
  assert "No run found in" in capsys.readouterr().err and not os.path.exists(work)  # refused before any training


@pytest.mark.slow
def test_metric_learning_trains_three_runs_and_scores_them_beside_two_baselines(tiny_simclr_run, tmp_path, capsys):
  out, work = str(tmp_path / "out"), str(tmp_path / "work")
  tiny = ["data.name=digits", "total_steps=2", "checkpoint_every_steps=2", "eval_every_steps=2", "model.widths=(8,16)",
          "batch_size=40"]
  args = [f"--simclr={tiny_simclr_run}", f"--out={out}", f"--workdirs={work}", *(f"--set={s}" for s in tiny)]
  assert metric_learning.main(args) == 0
  assert sorted(os.listdir(work)) == ["siamese", "triplet_batch_hard", "triplet_batch_semi_hard"]
  with open(os.path.join(work, "triplet_batch_semi_hard", "config.json")) as f:
    config = json.load(f)
  assert config["triplet"]["mining"] == "batch_semi_hard" and config["data"]["name"] == "digits"
  with open(os.path.join(work, "siamese", "results.json")) as f:
    siamese = json.load(f)
  with open(os.path.join(out, "results.md")) as f:
    text = f.read()
  row = next(line for line in text.splitlines() if line.startswith("| siamese"))
  assert f"| {siamese['recall_at_1']:.3f} |" in row and f"| {siamese['map_at_r']:.3f} |" in row
  assert "| raw pixels (64-d) |" in text and "| frozen SimCLR encoder, all 10 classes unlabelled (step 4" in text
  assert "held-out classes (5, 6, 7, 8, 9)" in text and "--set=data.name=digits" in text
  assert os.path.getsize(os.path.join(out, "metric_learning.png")) > 1000
  capsys.readouterr()
  assert metric_learning.main(args) == 0  # the three runs are found finished, not trained again
  assert capsys.readouterr().out.count("already finished 2 steps") == 3
