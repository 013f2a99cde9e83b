"""`python -m ssl_jax.evaluate` protocols: frozen-feature probes, fine-tuning, label budgets, transfer, names."""

import json
import os

import numpy as np
import pytest

from ssl_jax import cli, evaluate
from ssl_jax.evaluation.svm import svm_probe
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("simclr"))
  trainer.train_and_evaluate(tiny_config("simclr", **{"eval.final": False, "eval_every_steps": 0}), workdir)
  return workdir


def _results(path):
  with open(path) as f:
    return json.load(f)


def test_each_protocol_is_written_under_its_own_name(run, tmp_path):
  out = str(tmp_path / "results.json")
  for protocol in ("linear_probe", "knn", "svm", "mlp_probe"):
    assert evaluate.main([f"--workdir={run}", f"--protocol={protocol}", "--labels=100", f"--output={out}"]) == 0
  assert evaluate.main([f"--workdir={run}", "--protocol=svm", "--label_fraction=0.2", "--label_seed=1",
                        f"--output={out}"]) == 0
  results = _results(out)
  assert set(results) == {"linear_probe step_12 digits.0@100", "knn step_12 digits.0@100", "svm step_12 digits.0@100",
                          "mlp_probe step_12 digits.0@100", "svm step_12 digits.1@300"}
  for name, r in results.items():
    assert 0.1 < r[f"{r['protocol']}_top1"] <= 1.0, (name, r)  # better than chance on 10 digits
    assert r["steps"] == 12 and "transfer" not in r
  assert results["svm step_12 digits.0@100"]["labels"] == 100 and results["svm step_12 digits.1@300"]["labels"] == 300
  assert results["svm step_12 digits.0@100"]["C"] in (1e-3, 1e-2, 1e-1, 1.0)
  assert not os.path.exists(os.path.join(run, "eval_results.json")), "--output leaves the run's folder alone"


def test_another_dataset_is_an_explicit_transfer_and_finetune_trains_from_the_run(run, tmp_path):
  out = str(tmp_path / "results.json")
  assert evaluate.main([f"--workdir={run}", "--protocol=knn", "--dataset=digits28", f"--output={out}"]) == 0
  assert evaluate.main([f"--workdir={run}", "--protocol=finetune", "--labels=50", "--finetune_steps=3",
                        f"--finetune_workdir={tmp_path / 'ft'}", f"--output={out}"]) == 0
  results = _results(out)
  knn = results["knn step_12 digits28"]
  assert knn["transfer"] == "digits -> digits28" and knn["labels"] == 1500
  ft = results["finetune step_12 digits.0@50"]
  assert 0.0 <= ft["finetune_top1"] <= 1.0 and ft["finetune_steps"] == 3
  with open(tmp_path / "ft" / "config.json") as f:
    assert json.load(f)["init_from"] == run


def test_protocol_mistakes_are_one_sentence(run, tmp_path, capsys):
  def error(*args):
    with pytest.raises(SystemExit) as exited:
      cli.run(evaluate.main, [f"--workdir={run}", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err
  assert "add --protocol=" in error("--labels=100")
  assert "not both" in error("--protocol=svm", "--labels=100", "--label_fraction=0.1")
  assert "impossible" in error("--protocol=svm", "--labels=15", f"--output={tmp_path / 'r.json'}")
  assert "drop --step" in error("--protocol=finetune", "--step=12")


def test_svm_chooses_c_on_the_validation_rows():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 8)) * 4
  y = np.repeat(np.arange(3), 40)
  x = centres[y] + rng.normal(size=(120, 8))
  r = svm_probe(x[::2], y[::2], x[1::2], y[1::2], cs=(1e-3, 1.0))
  assert r.top1 > 0.9 and set(r.val_top1) == {1e-3, 1.0} and r.val_top1[r.best] == max(r.val_top1.values())
  with pytest.raises(ValueError, match="svm_probe: need features"):
    svm_probe(x[:, :, None], y, x, y)
