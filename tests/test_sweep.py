"""Sweep launcher: run planning, a CI-sized sweep end to end, resuming, failures."""
import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from covseg_jax import config_file, errors, results, sweep
from tests import helpers, test_resume

REPO = pathlib.Path(__file__).resolve().parent.parent
# The :cpu variant shrunk further: 32x32, a 4-8-16 SegNet, one epoch.
TINY = ("--config.data.image_size=32", "--config.model.features=(4,8,16)",
        "--config.train.epochs=1", "--config.train.val_every_steps=5",
        "--config.train.log_every_steps=5", "--config.eval.batch_size=8")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return helpers.data_dir_or_phantoms(tmp_path_factory)


@pytest.mark.parametrize("text, expected", [
    ("1-9", list(range(1, 10))), ("4,7", [4, 7]), ("1-3,7", [1, 2, 3, 7]), ("7,4,4", [4, 7]),
    ("none", []), ("", [])])
def test_parse_experiments(text, expected):
  assert sweep.parse_experiments(text) == expected


@pytest.mark.parametrize("text", ["0", "10", "1-12", "a", "3-x"])
def test_parse_experiments_rejects(text):
  with pytest.raises(argparse.ArgumentTypeError):
    sweep.parse_experiments(text)


def test_plan_experiments_and_folds(in_repo):
  runs = sweep.plan_runs("configs/unet_multi.py:cpu", "sw", [1, 4], 3, ["--config.train.epochs=2"])
  assert [r.name for r in runs] == [f"exp{e}/fold{k}" for e in (1, 4) for k in range(3)]
  run = runs[4]  # exp4, fold 1.
  assert run.workdir == os.path.join("sw", "exp4", "fold1")
  # The experiment comes after cpu: it keeps the paper's batch size (cpu sets its own).
  assert run.args == ("--config=configs/unet_multi.py:cpu,exp4", "--workdir=sw/exp4/fold1",
                      "--config.data.split=kfold", "--config.data.num_folds=3",
                      "--config.data.fold=1", "--config.train.epochs=2")
  config = config_file.load("configs/unet_multi.py:cpu,exp4")
  assert (config.train.learning_rate, config.train.batch_size) == (5e-4, 2)
  runs = sweep.plan_runs("configs/unet_multi.py:cpu", "sw", [4], 3, [], "paper_kfold")
  assert "--config.data.split=paper_kfold" in runs[1].args


def test_fold_split_needs_folds(capsys):
  with pytest.raises(SystemExit):
    sweep.parse_args(["--config=c.py", "--root=r", "--fold_split=paper_kfold"])
  assert "--fold_split=paper_kfold needs --folds" in capsys.readouterr().err


@pytest.mark.parametrize("family, augmentation, threshold", [
    ("segnet_multi", (15.0, 0.15), 0.5), ("segnet_binary", (0.0, 0.0), 0.8)])
def test_improved_config_differs_from_the_paper_only_in_the_adopted_changes(in_repo, family,
                                                                           augmentation,
                                                                           threshold):
  for variant in ("", ":cpu,exp3"):
    paper = config_file.load(f"configs/{family}.py{variant}").to_dict()
    improved = config_file.load(f"configs/{family}_improved.py{variant}").to_dict()
    assert (paper["train"].pop("loss"), improved["train"].pop("loss")) == (
        "weighted_ce", "weighted_ce+dice")
    assert (paper["eval"].pop("tta_flip"), improved["eval"].pop("tta_flip")) == (False, True)
    for field, value in zip(("rotation_degrees", "scale_range"), augmentation):
      assert (paper["train"].pop(field), improved["train"].pop(field)) == (0.0, value)
    assert (paper["eval"].pop("foreground_threshold"),
            improved["eval"].pop("foreground_threshold")) == (0.5, threshold)
    assert improved == paper


def test_improved_lung_config_differs_from_the_paper_only_in_flips_and_hole_filling(in_repo):
  for variant in ("", ":cpu"):
    paper = config_file.load(f"configs/lung_resnet.py{variant}").to_dict()
    improved = config_file.load(f"configs/lung_resnet_improved.py{variant}").to_dict()
    for field in ("tta_flip", "fill_holes"):
      assert (paper["eval"].pop(field), improved["eval"].pop(field)) == (False, True)
    assert improved == paper


def test_lung_unet_differs_from_the_improved_lung_config_only_in_the_network(in_repo):
  for variant, epochs in (("", (160, 160)), (":cpu", (20, 40))):
    highresnet = config_file.load(f"configs/lung_resnet_improved.py{variant}").to_dict()
    unet = config_file.load(f"configs/lung_unet.py{variant}").to_dict()
    assert (highresnet.pop("model")["name"], unet.pop("model")["name"]) == ("highresnet", "unet")
    # The :cpu variant trains HighResNet, 4x costlier per image, for fewer epochs.
    assert (highresnet["train"].pop("epochs"), unet["train"].pop("epochs")) == epochs
    assert unet == highresnet


def test_plan_single_runs(in_repo):
  (run,) = sweep.plan_runs("configs/lung_resnet.py:cpu", "sw", [], 0, [])
  assert (run.name, run.workdir) == (".", "sw")
  assert run.args == ("--config=configs/lung_resnet.py:cpu", "--workdir=sw")
  assert [r.name for r in sweep.plan_runs("configs/lung_resnet.py", "sw", [], 2, [])] == [
      "fold0", "fold1"]


@pytest.mark.parametrize("config, experiments, overrides, message", [
    ("configs/lung_resnet.py", [1], [], "unknown config variant 'exp1'"),
    ("configs/segnet_multi.py:exp3", [1], [], "give them with --experiments"),
    ("configs/missing.py", [1], [], "no config file"),
    ("configs/segnet_multi.py", [1], ["--config.trian.epochs=2"], "has no field 'trian'")])
def test_plan_rejects(in_repo, config, experiments, overrides, message):
  with pytest.raises(ValueError, match=message):
    sweep.plan_runs(config, "sw", experiments, 0, overrides)


def test_bad_arguments_exit_with_usage(in_repo, tmp_path):
  for argv in (["--bogus"], ["--folds=1"], ["--config.train.epochs", "2"]):
    with pytest.raises(SystemExit) as exit_info:
      sweep.main(["--config=configs/segnet_multi.py", f"--root={tmp_path}"] + argv)
    assert exit_info.value.code == 2


def test_metrics_path_follows_eval_split():
  assert sweep.metrics_path("w", []) == os.path.join("w", "test_metrics.json")
  assert sweep.metrics_path("w", ["--config.eval.split=val"]) == os.path.join(
      "w", "val_metrics.json")


@pytest.mark.slow
def test_tiny_cross_validation_end_to_end_and_resume(in_repo, data_dir, tmp_path, capsys):
  root = tmp_path / "sweep"
  argv = ["--config=configs/segnet_multi.py:cpu", f"--root={root}", "--experiments=4",
          "--folds=2", f"--config.data.data_dir={data_dir}", *TINY]
  assert sweep.main(argv) == 0
  out = capsys.readouterr().out
  assert "[2/2] exp4/fold1: done in" in out
  for fold in range(2):
    workdir = root / "exp4" / f"fold{fold}"
    config = json.loads((workdir / "config.json").read_text())
    assert (config["train"]["learning_rate"], config["train"]["batch_size"]) == (1e-3, 4)
    assert (config["data"]["image_size"], config["model"]["features"]) == (32, [4, 8, 16])
    assert (config["data"]["split"], config["data"]["num_folds"], config["data"]["fold"]) == (
        "kfold", 2, fold)
    record = json.loads((workdir / sweep.RUN_RECORD_FILE).read_text())
    assert record["returncode"] == 0 and record["command"].startswith("python -m covseg_jax.main")
    assert (workdir / sweep.LOG_FILE).stat().st_size > 0

  # A second invocation skips both finished runs and starts no training.
  done_file = root / "exp4" / "fold0" / "test_metrics.json"
  mtime = done_file.stat().st_mtime_ns
  assert sweep.main(argv) == 0
  out = capsys.readouterr().out
  assert out.count("finished earlier, skipped") == 2 and "running" not in out
  assert done_file.stat().st_mtime_ns == mtime

  text = results.collect(str(root), str(tmp_path / "tables"))
  assert "### Cross-validation (Table 7), reduced: 32x32, 1 epochs, width 4/64" in text
  assert "| 4 | 2/2 | test/global_accuracy |" in text
  assert "Command: `python -m covseg_jax.sweep --config=configs/segnet_multi.py:cpu" in text
  assert (tmp_path / "tables" / "kfold.csv").exists()


def test_failed_run_is_reported_and_the_sweep_goes_on(in_repo, tmp_path, capsys):
  root = tmp_path / "sweep"
  argv = ["--config=configs/segnet_binary.py", f"--root={root}", "--experiments=1,2",
          f"--config.data.data_dir={tmp_path / 'no_data_here'}"]
  assert sweep.main(argv) == 1
  out = capsys.readouterr().out
  assert "[1/2] exp1: FAILED (exit status 2)" in out
  assert "[2/2] exp2: FAILED (exit status 2)" in out
  assert "error:" in out  # The run's one-line error, from the end of its log.
  assert "2 of 2 run(s) failed: exp1, exp2" in out
  record = json.loads((root / "exp2" / sweep.RUN_RECORD_FILE).read_text())
  assert record["returncode"] == 2

  # An unfinished run is started again with the same command, its log appended to.
  assert sweep.main(argv[:2] + ["--experiments=1"] + argv[3:]) == 1
  assert "[1/1] exp1: running" in capsys.readouterr().out
  assert (root / "exp1" / sweep.LOG_FILE).read_text().count("error:") == 2


@pytest.mark.slow
def test_sigterm_stops_the_sweep_and_the_same_command_resumes(data_dir, tmp_path):
  """SIGTERM reaches the running training process, which saves and stops; the sweep stops
  with it (exit status 143, no later run started) and the same command finishes the sweep."""
  root = tmp_path / "sweep"
  command = [sys.executable, "-m", "covseg_jax.sweep", "--config=configs/segnet_multi.py:cpu",
             f"--root={root}", "--experiments=4", "--folds=2",
             f"--config.data.data_dir={data_dir}", *TINY, "--config.train.epochs=4",
             "--config.checkpoint.every_steps=5"]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  process = subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
  first = root / "exp4" / "fold0"
  try:
    while not test_resume.saved_steps(str(first)) and process.poll() is None:
      time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    out = process.communicate(timeout=300)[0]
  finally:
    process.kill()
  assert process.returncode == errors.PREEMPTED_EXIT_STATUS, out
  assert "[1/2] exp4/fold0: stopped by SIGTERM" in out
  assert "fold1" not in out and not (root / "exp4" / "fold1").exists()
  assert "preempted: stopped by SIGTERM" in (first / sweep.LOG_FILE).read_text()
  saved = max(test_resume.saved_steps(str(first)))

  result = subprocess.run(command, cwd=REPO, env=env, text=True, capture_output=True,
                          timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  assert f"resuming at step {saved}" in (first / sweep.LOG_FILE).read_text()
  assert (root / "exp4" / "fold1" / "test_metrics.json").exists()
