"""The experiment scripts that write the README's tables: they train, reuse finished runs and write tables."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import ssl_benchmark  # noqa: E402  pylint: disable=wrong-import-position

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
