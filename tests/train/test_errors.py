"""Bad input: one sentence `error: ...` naming the problem and the fix, exit status 2, no traceback.

Most cases run the commands in-process through `cli.run` (the boundary every command shares); the ones
whose symptom only shows in a real process (output at interpreter exit) run `python -m ssl_jax.main`.
"""

import os
import re

import pytest

from ssl_jax import cli, evaluate, main

from tests.train._run import ROOT, TINY, run_main

FAST = ("--config.total_steps=2", "--config.eval.final=false", "--config.eval_every_steps=0",
        "--config.checkpoint_every_steps=1", "--config.log_every_steps=1")


def run(capsys, *argv, command=main):
  """`cli.run(command.main, argv)`; returns (exit status, the last line of stderr, all of stderr)."""
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_info:
    cli.run(command.main, list(argv))
  err = capsys.readouterr().err
  lines = err.strip().splitlines()
  return exit_info.value.code, (lines[-1] if lines else ""), err


def assert_sentence(result, *fragments):
  code, line, err = result
  assert code == 2, (code, err[-2000:])
  assert "Traceback" not in err, err[-3000:]
  assert line.startswith("error: ") and len(err.strip().splitlines()) == 1, err[-2000:]
  for fragment in fragments:
    assert fragment in line, line


def _main(capsys, tmp_path, *overrides, config=TINY):
  return run(capsys, f"--config={config}", f"--workdir={tmp_path / 'w'}", *overrides)


def test_unknown_field_hints_the_right_one(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.optim.learnig_rate=0.1"),
                  "unknown config field `optim.learnig_rate`; did you mean `optim.lr`?")
  assert_sentence(_main(capsys, tmp_path, "--config.total_step=3"), "did you mean `total_steps`?")
  assert_sentence(_main(capsys, tmp_path, "--config.simclr.temprature=0.1"),
                  "did you mean `simclr.temperature`?")


def test_wrong_type(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.total_steps=ten"),
                  "`total_steps` is an int (now 20); 'ten' is not a valid int")


def test_a_block_is_not_a_value(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.optim=adam"), "`optim` is a block of fields")


def test_missing_config_file(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, config=str(tmp_path / "missing.py")), "does not exist")


def test_config_file_returning_a_dict(capsys, tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config():\n  return {'method': 'simclr'}\n")
  assert_sentence(_main(capsys, tmp_path, config=str(bad)), "returned a dict, not an ml_collections.ConfigDict")


def test_config_file_with_an_unknown_field(capsys, tmp_path):
  bad = tmp_path / "extra.py"
  bad.write_text("from ssl_jax.train.config import base_config\n"
                 "def get_config():\n  c = base_config('simclr')\n  c.optim.lrr = 1.0\n  return c\n")
  assert_sentence(_main(capsys, tmp_path, config=str(bad)), "unknown config field `optim.lrr`",
                  "did you mean `optim.lr`?")


def test_bad_config_argument(capsys, tmp_path):
  config = os.path.join(ROOT, "configs", "semi", "fixmatch_fashion_mnist.py")
  assert_sentence(_main(capsys, tmp_path, config=config + ":lables=40"),
                  "Cannot read the config argument 'lables=40'", "labels=...")


def test_unknown_method(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.method=simclrr"), "unknown method 'simclrr'",
                  "did you mean `simclr`?")


def test_unknown_dataset(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.data.name=fashion_mnst"), "Unknown dataset 'fashion_mnst'")


def test_unknown_encoder(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.model.encoder=resnet18"), "Unknown encoder 'resnet18'",
                  "resnet18_cifar")


def test_batch_larger_than_the_training_set(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.batch_size=2048"),
                  "larger than the 1500 training images", "--config.batch_size=1500 or less")


def test_a_bad_data_subset(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.data.subset=0@100"),
                  "data.subset is written SEED@LABELS+UNLABELLED, e.g. 0@5000+20000")
  assert_sentence(_main(capsys, tmp_path, "--config.data.subset=0@100+2000"),
                  "data.subset=0@100+2000: 100 labelled + 2000 unlabelled images do not fit in the 1500 training images")
  assert_sentence(_main(capsys, tmp_path, "--config.data.subset=0@20+20"),
                  "larger than the 40 images of data.subset=0@20+20", "--config.batch_size=40 or less")
  semi = os.path.join(ROOT, "configs", "semi", "fixmatch_fashion_mnist.py")
  assert_sentence(_main(capsys, tmp_path, "--config.data.subset=0@100+400", config=semi),
                  "data.subset='0@100+400' restricts the label-free image stream", "fixmatch draws its own split")


def test_files_that_are_not_idx_files(capsys, tmp_path):
  folder = tmp_path / "not_idx"
  folder.mkdir()
  for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"):
    (folder / name).write_text("these are not IDX files\n")
  assert_sentence(_main(capsys, tmp_path, "--config.data.name=fashion_mnist", f"--config.data.data_dir={folder}",
                        "--config.batch_size=64", *FAST),
                  "is not an IDX file", "pass the original MNIST-format files")


def test_missing_dataset_names_package_and_path(capsys, tmp_path):
  missing = str(tmp_path / "no-such-folder")
  assert_sentence(_main(capsys, tmp_path, "--config.data.name=fashion_mnist", f"--config.data.data_dir={missing}"),
                  missing, "dataset-fashion-mnist")


def test_batch_not_divisible_by_devices(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.batch_size=60"),  # tests run with 8 CPU devices
                  "60 is not divisible by the 8 devices", "--config.batch_size=56 or 64")


def test_unwritable_workdir(capsys, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  assert_sentence(run(capsys, f"--config={TINY}", f"--workdir={blocker / 'run'}"), "Cannot write to the workdir")


def test_dataset_of_varying_image_sizes_needs_an_image_size(capsys, tmp_path):
  assert_sentence(_main(capsys, tmp_path, "--config.data.name=imagenet2012"), "imagenet2012 vary in size",
                  "--config.data.image_size=S")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(capsys, tmp_path):
  # The first step runs at lr 0 (warm-up) and is fine; later steps, at lr ~1e29, blow the weights up.
  result = _main(capsys, tmp_path, "--config.optim.lr=1e30", "--config.optim.warmup_steps=3",
                 "--config.checkpoint_every_steps=1", "--config.log_every_steps=1", "--config.eval_every_steps=0")
  assert_sentence(result, "became", "training stopped", "lower optim.lr", "run the same command again")
  bad_step = int(re.search(r"at step (\d+)", result[1]).group(1))
  good_step = int(re.search(r"last good checkpoint \(step (\d+)\)", result[1]).group(1))
  steps = sorted(int(s) for s in os.listdir(tmp_path / "w" / "checkpoints") if s.isdigit())
  assert steps and steps[-1] == good_step == bad_step - 1  # nothing non-finite was ever saved


def test_missing_workdir_and_stray_arguments(capsys):
  assert_sentence(run(capsys, f"--config={TINY}"), "--workdir is needed")
  assert_sentence(run(capsys, f"--config={TINY}", "--workdir=/tmp/x", "--bogus=1"), "Unknown argument --bogus")
  assert_sentence(run(capsys, f"--config={TINY}", "--workdir=/tmp/x", "extra"), "Cannot read the argument 'extra'")


def test_evaluate_refuses_overrides_that_change_what_is_evaluated(capsys, tmp_path):
  assert_sentence(run(capsys, f"--workdir={tmp_path}", command=evaluate), "No run found")
  code = run(capsys, f"--config={TINY}", f"--workdir={tmp_path / 'w'}", *FAST)[0]
  assert code == 0
  assert_sentence(run(capsys, f"--workdir={tmp_path / 'w'}", "--config.data.name=mnist", command=evaluate),
                  "--config.data.name cannot be changed here", "only eval.*")
  assert_sentence(run(capsys, f"--workdir={tmp_path / 'w'}", "--step=7", command=evaluate),
                  "no checkpoint of step 7", "the steps there are 1, 2")


def test_checkpoint_of_another_model_is_one_sentence_in_a_real_process(tmp_path):
  """The checkpoint's model differs (config.json was removed): one sentence, and nothing printed at exit."""
  first = run_main(tmp_path / "w", *FAST)
  assert first.returncode == 0, first.stderr[-2000:]
  os.remove(tmp_path / "w" / "config.json")
  os.remove(tmp_path / "w" / "results.json") if os.path.exists(tmp_path / "w" / "results.json") else None
  again = run_main(tmp_path / "w", *FAST, "--config.total_steps=4", "--config.model.widths=(8,32)")
  assert again.returncode == 2, again.stderr[-2000:]
  assert "Traceback" not in again.stderr and "Event loop is closed" not in again.stderr, again.stderr[-3000:]
  lines = again.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: The checkpoint at step 2"), again.stderr
  assert "was written for another model" in lines[0] and "use a new --workdir" in lines[0]


def test_console_shows_only_our_lines(tmp_path):
  """No TensorFlow/XLA start-up lines, and no progress-bar frames when stdout is a file."""
  out = tmp_path / "out.txt"
  with open(out, "w") as f:
    import subprocess
    from tests.train._run import main_command
    done = subprocess.run(main_command(tmp_path / "w", *FAST), cwd=ROOT, stdout=f, stderr=subprocess.PIPE,
                          text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stderr.strip() == "", done.stderr
  text = out.read_text()
  assert "\r" not in text and "step 2/2" in text and "linear probe" not in text
