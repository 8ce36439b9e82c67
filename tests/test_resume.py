"""A training run killed with SIGKILL, or stopped with SIGTERM, and started again ends exactly
like an uninterrupted one; so does a finished run given more epochs.

This is the reproducibility demonstration: the same command, run twice in one workdir with a
SIGKILL in between, gives the same test metrics, curves and TensorBoard scalars as one run.
SIGTERM (a scheduler's notice) makes the run save a checkpoint where it is and stop with exit
status 143, so the second run resumes from that step instead of the last periodic checkpoint.
A finished run started again with a larger train.epochs trains on from its last checkpoint: the
learning-rate schedule depends on the step, not on the number of epochs.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from covseg_jax import checkpoint, errors, summaries
from tests import helpers
from tests.test_summaries import read_events

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTAL_STEPS = 36  # 4 epochs of 72 training slices in batches of 8.


def command(data_dir, workdir, epochs=4):
  return [sys.executable, "-m", "covseg_jax.main", "--config=configs/segnet_multi.py:cpu",
          f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
          "--config.data.image_size=32", "--config.model.features=(4,8,16)",
          f"--config.train.epochs={epochs}", "--config.train.val_every_steps=9",
          "--config.train.log_every_steps=3", "--config.train.image_summary_every_steps=18",
          "--config.checkpoint.every_steps=9",
          "--config.train.lr_drop_every_epochs=1"]  # The learning rate changes within the run.


def saved_steps(workdir):
  directory = os.path.join(workdir, checkpoint.CHECKPOINT_DIR)
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(
      directory) else []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """(data_dir, workdir): the data and one uninterrupted 4-epoch run, trained once for all the
  tests of the module (the processes share the session's compilation cache, tests/conftest.py,
  so only the first pays for compiling)."""
  data_dir = helpers.data_dir_or_phantoms(tmp_path_factory)
  workdir = str(tmp_path_factory.mktemp("resume") / "reference")
  run_to_completion(command(data_dir, workdir))
  return data_dir, workdir


def run_to_completion(args):
  process = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
  assert process.returncode == 0, process.stderr[-3000:]
  return process.stderr


def read_json(path):
  with open(path) as f:
    return json.load(f)


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_stopped_run_resumes_to_the_same_result(uninterrupted, tmp_path, signal_number):
  data_dir, reference = uninterrupted
  resumed = str(tmp_path / "resumed")

  process = subprocess.Popen(command(data_dir, resumed), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    while not saved_steps(resumed) and process.poll() is None:
      time.sleep(0.02)
    process.send_signal(signal_number)  # As soon as the first checkpoint is on disk.
  finally:
    _, stderr = process.communicate()
  saved = saved_steps(resumed)
  assert saved and max(saved) < TOTAL_STEPS, "the run ended before it could be stopped"
  if signal_number == signal.SIGKILL:
    assert process.returncode == -signal.SIGKILL
  else:  # Saved where it stopped (every_steps=9: the first save was at step 9).
    assert process.returncode == errors.PREEMPTED_EXIT_STATUS, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    assert last_line == (f"preempted: stopped by SIGTERM at step {max(saved)}/{TOTAL_STEPS}; "
                         f"its checkpoint is in {resumed}: run the same command to resume")
    assert max(saved) > 9
  assert not os.path.exists(os.path.join(resumed, "test_metrics.json"))

  log = run_to_completion(command(data_dir, resumed))
  assert f"resuming at step {max(saved)}" in log
  assert_same_run(reference, resumed)


@pytest.mark.slow
def test_finished_run_given_more_epochs_ends_like_a_longer_run(uninterrupted, tmp_path):
  data_dir, reference = uninterrupted
  extended = str(tmp_path / "extended")
  run_to_completion(command(data_dir, extended, epochs=2))
  assert read_json(os.path.join(extended, "test_metrics.json"))["step"] == TOTAL_STEPS // 2

  log = run_to_completion(command(data_dir, extended))
  assert f"resuming at step {TOTAL_STEPS // 2}" in log
  assert_same_run(reference, extended)

  # Fewer epochs than the checkpoint has: one line, exit status 2, and config.json untouched.
  config_json = read_json(os.path.join(extended, checkpoint.CONFIG_FILE))
  process = subprocess.run(command(data_dir, extended, epochs=2), cwd=REPO,
                           capture_output=True, text=True, timeout=900)
  assert process.returncode == 2, process.stderr[-3000:]
  assert process.stderr.strip().splitlines()[-1] == (
      f"error: {extended}: its checkpoint is at step {TOTAL_STEPS}, past the "
      f"{TOTAL_STEPS // 2} steps of train.epochs=2: give at least as many epochs as it was "
      "trained for, or a new --workdir")
  assert read_json(os.path.join(extended, checkpoint.CONFIG_FILE)) == config_json


def assert_same_run(reference, resumed):
  """The test metrics, the curves and the TensorBoard scalars of two runs are the same."""
  expected = read_json(os.path.join(reference, "test_metrics.json"))
  actual = read_json(os.path.join(resumed, "test_metrics.json"))
  for key in ("per_image_global_accuracy", "pooled_confusion_matrix", "per_image_loss",
              "classes", "step"):
    assert actual[key] == expected[key], key

  # Curves: the same steps once each, with the same losses (timings differ).
  def curve(workdir):
    return [(r["step"], r.get("train/loss"), r.get("val/loss"))
            for r in summaries.read_metrics(workdir)]
  assert curve(resumed) == curve(reference)
  tensorboard = read_events(resumed)
  assert [(e.step, e.value) for e in tensorboard.Scalars("val/loss")] == [
      (e.step, e.value) for e in read_events(reference).Scalars("val/loss")]
