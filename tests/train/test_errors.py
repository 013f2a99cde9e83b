"""Bad input: one clear sentence naming the problem and the fix, a non-zero exit, no traceback, no lost work."""

import os
import re

from tests.train._run import run_main as run


def assert_one_sentence(result, *fragments):
  assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("error: "), result.stderr[-2000:]
  for fragment in fragments:
    assert fragment in line, line


def test_unknown_config_field(tmp_path):
  r = run(tmp_path / "w", "--config.optim.learnig_rate=0.1")
  assert_one_sentence(r, "unknown config field `optim.learnig_rate`", "did you mean")


def test_wrong_type(tmp_path):
  r = run(tmp_path / "w", "--config.total_steps=ten")
  assert_one_sentence(r, "`total_steps` is a int", "'ten' is not a valid int")


def test_missing_config_file(tmp_path):
  r = run(tmp_path / "w", config=str(tmp_path / "missing.py"))
  assert_one_sentence(r, "does not exist")


def test_missing_dataset_names_package_and_path(tmp_path):
  missing = str(tmp_path / "no-such-folder")
  r = run(tmp_path / "w", "--config.data.name=fashion_mnist", f"--config.data.data_dir={missing}")
  assert_one_sentence(r, missing, "dataset-fashion-mnist")


def test_batch_not_divisible_by_devices(tmp_path):
  r = run(tmp_path / "w", "--config.batch_size=60")  # tests run with 8 CPU devices
  assert_one_sentence(r, "60 is not divisible by the 8 devices", "--config.batch_size=56 or 64")


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  r = run(blocker / "run")
  assert_one_sentence(r, "Cannot write to the workdir", "--workdir")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  workdir = tmp_path / "w"
  # The first step runs at lr 0 (warm-up) and is fine; later steps, at lr ~1e29, blow the weights up.
  r = run(workdir, "--config.optim.lr=1e30", "--config.optim.warmup_steps=3", "--config.checkpoint_every_steps=1",
          "--config.log_every_steps=1", "--config.eval_every_steps=0")
  assert_one_sentence(r, "became", "training stopped", "lower optim.lr", "run the same command again")
  line = r.stderr.strip().splitlines()[-1]
  bad_step = int(re.search(r"at step (\d+)", line).group(1))
  good_step = int(re.search(r"last good checkpoint \(step (\d+)\)", line).group(1))
  steps = sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit())
  assert steps and steps[-1] == good_step == bad_step - 1  # nothing non-finite was ever saved


def test_dataset_too_large_for_memory_is_refused(tmp_path):
  r = run(tmp_path / "w", "--config.data.name=imagenet2012")
  assert_one_sentence(r, "imagenet2012 is too large", "tf_iterate_batches")
