"""Patient-level bags from a folder tree (the OCT case), built here from scikit-learn's digit images."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from ssl_jax.data import bag_folders, streams
from ssl_jax.train import trainer

from tests.methods.cases import tiny_config


def _tree(root, patients=16, seed=0):
  """root/<patient>/*.png + labels.csv: a patient is positive when one of its images is a 9 (RGB for odd ones)."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = (digits.images * (255.0 / 16.0)).astype(np.uint8)
  rng = np.random.default_rng(seed)
  nines, others = np.flatnonzero(digits.target == 9), np.flatnonzero(digits.target != 9)
  lines = ["patient_id,label"]
  for p in range(patients):
    label = p % 2
    picks = list(rng.choice(others, rng.integers(2, 7), replace=False))
    if label:
      picks[rng.integers(len(picks))] = rng.choice(nines)
    folder = os.path.join(root, f"P{p:03d}")
    os.makedirs(folder)
    for j, i in enumerate(picks):
      img = Image.fromarray(images[i])
      (img.convert("RGB") if p % 2 else img).save(os.path.join(folder, f"scan_{j}.png"))
    lines.append(f"P{p:03d},{label}")
  with open(os.path.join(root, "labels.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return str(root)


def test_folder_bags_train_evaluate_and_draw_attention(tmp_path):
  root = _tree(tmp_path / "patients")
  config = tiny_config("mil", **{"data.name": "folder_bags", "data.data_dir": root, "batch_size": 8,
                                 "data.image_size": 12, "data.channels": 0, "mil.test_fraction": 0.25,
                                 "total_steps": 4, "eval_every_steps": 0, "mil.pooling": "attention"})
  workdir = str(tmp_path / "run")
  results = trainer.train_and_evaluate(config, workdir)
  assert {"bag_auc", "bag_accuracy"} <= set(results) and "instance_auc" not in results
  assert os.path.exists(os.path.join(workdir, "attention.png"))
  with open(os.path.join(workdir, "stream.json")) as f:
    record = json.load(f)
  assert len(record["train_patients"]) == 12 and len(record["test_patients"]) == 4
  assert not set(record["train_patients"]) & set(record["test_patients"]), "held-out patients never train"
  assert record["max_size"] == 6


def test_folder_bags_read_rgb_and_grayscale_resized_and_padded(tmp_path):
  root = _tree(tmp_path / "p", patients=4)
  bags = bag_folders.read_bag_folder(root, image_size=10, channels=3)
  assert bags["patients"] == ["P000", "P001", "P002", "P003"] and bags["label"].tolist() == [0, 1, 0, 1]
  assert all(x.shape[1:] == (10, 10, 3) and x.dtype == np.uint8 for x in bags["images"])
  instances, mask = bag_folders.pad_bags(bags["images"], 7)
  assert instances.shape == (4, 7, 10, 10, 3) and mask.sum(1).tolist() == [len(x) for x in bags["images"]]
  assert (instances[~mask] == 0).all()
  # A second folder as the test patients.
  spec = streams.FolderBags(root=root, test_root=_tree(tmp_path / "q", patients=4, seed=1), image_size=8)
  stream = spec.build(None, batch_size=2, seed=0)
  batch = stream.global_batch(0)
  assert batch["instances"].shape[0] == 2 and stream.eval_data["bags_test"]["label"].tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("break_it,message", [
    (lambda root: os.makedirs(os.path.join(root, "P999")), r"Patient folder .*P999 has no images"),
    (lambda root: open(os.path.join(root, "P001", "scan_0.png"), "wb").write(b"not a png"),
     r"image file .*P001/scan_0.png does not decode"),
    (lambda root: os.rename(os.path.join(root, "P002"), os.path.join(root, "P777")),
     r"Patient 'P777' \(folder .*P777\) has no line in .*labels.csv"),
])
def test_folder_bags_errors_are_one_sentence(tmp_path, break_it, message):
  root = _tree(tmp_path / "p", patients=4)
  if "P777" in message:  # the renamed patient's old line must go too, or that is the error reported
    with open(os.path.join(root, "labels.csv")) as f:
      kept = [line for line in f if not line.startswith("P002")]
    with open(os.path.join(root, "labels.csv"), "w") as f:
      f.writelines(kept)
  break_it(root)
  with pytest.raises(ValueError, match=message):
    bag_folders.read_bag_folder(root, image_size=8, channels=1)


def test_folder_bags_error_reaches_the_command_line_as_one_line(tmp_path, capsys):
  from ssl_jax import cli, main as main_lib  # pylint: disable=g-import-not-at-top
  root = _tree(tmp_path / "p", patients=4)
  os.makedirs(os.path.join(root, "P999"))
  with pytest.raises(SystemExit) as exit_info:
    cli.run(main_lib.main, ["--config=configs/mil/mil_fashion_mnist.py", f"--workdir={tmp_path / 'w'}",
                            "--config.data.name=folder_bags", f"--config.data.data_dir={root}",
                            "--config.data.image_size=28", "--config.model.encoder=mlp", "--config.batch_size=8",
                            "--config.total_steps=1"])
  err = capsys.readouterr().err.strip().splitlines()
  assert exit_info.value.code == 2 and err[-1].startswith("error: Patient folder") and "has no images" in err[-1]
