"""Evaluation of a trained run from its directory alone; training's report and TensorBoard logs."""
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import segnet_multi
from covseg_jax import checkpoint, evaluate, models, parallel, summaries, train
from covseg_jax.data import pipeline
from covseg_jax.errors import InputError
from tests import helpers
from tests.test_summaries import hparams_written, read_events
from tests.test_train import tiny_config

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A 2-epoch tiny SegNet run: (workdir, config, training's returned test results)."""
  config = tiny_config(helpers.data_dir_or_phantoms(tmp_path_factory))
  config.train.image_summary_every_steps = 9
  config.train.image_summary_slices = 2
  workdir = str(tmp_path_factory.mktemp("run"))
  return workdir, config, train.train_and_evaluate(config, workdir)


def assert_report(workdir, split, num_images):
  """Every table in every format, the per-image CSV, the curves, box plots and overlays."""
  report_dir = os.path.join(workdir, "report")
  files = {f"{split}_{table}.{ext}" for table in ("accuracy", "class_metrics")
           for ext in ("md", "csv", "json")}
  assert files | {f"{split}_per_image.csv", f"{split}_report.md"} <= set(os.listdir(report_dir))
  figures = set(os.listdir(os.path.join(report_dir, "figures")))
  assert {"curves.png", f"{split}_boxplots.png"} <= figures
  assert len([f for f in figures if f.startswith(f"{split}_slice_")]) == num_images


def test_training_writes_the_report_and_run_files(trained_run):
  workdir, _, results = trained_run
  assert results["checkpoint"] == "last" and results["step"] == 18
  assert_report(workdir, "test", 18)
  for name in (checkpoint.CONFIG_FILE, checkpoint.NORMALIZATION_FILE, checkpoint.SPLIT_FILE,
               "test_metrics.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert os.listdir(os.path.join(workdir, checkpoint.CHECKPOINT_DIR)) == ["18"]
  assert os.listdir(os.path.join(workdir, checkpoint.BEST_DIR))


def test_training_writes_tensorboard_scalars_images_and_hparams(trained_run):
  workdir, config, _ = trained_run
  events = read_events(workdir)
  scalars = set(events.Tags()["scalars"])
  assert {"train/loss", "train/learning_rate", "train/images_per_sec", "val/loss",
          "val/global_accuracy", "val/dice/ground-glass_opacity"} <= scalars
  assert [e.step for e in events.Scalars("val/loss")] == [9, 18]
  images = events.Tags()["images"]
  assert len(images) == 2 and all(tag.startswith("val/slice_") for tag in images)
  (first, _) = events.Images(images[0])
  assert (first.step, first.height, first.width) == (9, 32, 3 * 32 + 4)
  assert hparams_written(events)["train.batch_size"] == config.train.batch_size


def test_evaluation_from_the_workdir_alone_repeats_training_evaluation(trained_run, tmp_path):
  workdir, _, trained = trained_run
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("report", "*_metrics.json"))
  results = evaluate.evaluate_run(copy, which="last", splits=["test"])["test"]
  assert_report(copy, "test", 18)
  assert results["per_image_global_accuracy"] == trained["per_image_global_accuracy"]
  assert results["pooled_confusion_matrix"] == trained["pooled_confusion_matrix"]
  with open(os.path.join(copy, "test_metrics.json")) as f:
    assert json.load(f)["step"] == 18


def test_evaluation_of_the_best_checkpoint_on_validation(trained_run, tmp_path):
  workdir, config, _ = trained_run
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("report"))
  results = evaluate.evaluate_run(copy, which="best", splits=["val"])["val"]
  assert_report(copy, "val", 10)
  records = [r for r in summaries.read_metrics(workdir) if "val/loss" in r]
  best = min(records, key=lambda r: r["val/loss"])
  assert results["step"] == best["step"]
  assert results["global_accuracy_mean"] == pytest.approx(best["val/global_accuracy"])
  assert set(results["classes"]) == set(pipeline.load_dataset(config.data).class_names)


def test_evaluation_refuses_a_run_whose_slices_changed(trained_run, tmp_path):
  workdir, _, _ = trained_run
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("report", "*_metrics.json"))
  path = os.path.join(copy, checkpoint.SPLIT_FILE)
  with open(path, encoding="utf-8") as f:
    record = json.load(f)
  record["test"], record["train"] = record["test"][1:], record["train"] + record["test"][:1]
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f)
  with pytest.raises(InputError, match=f"{path}: the run's train slices differ"):
    evaluate.evaluate_run(copy, which="last", splits=["test"])
  assert not os.path.exists(os.path.join(copy, "test_metrics.json"))
  assert not os.path.exists(os.path.join(copy, "report"))


def test_evaluate_command_on_a_directory_without_config_exits_2(tmp_path):
  process = subprocess.run(
      [sys.executable, "-m", "covseg_jax.main", f"--workdir={tmp_path}", "--mode=evaluate"],
      capture_output=True, text=True, timeout=300,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert process.returncode == 2
  assert process.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path}: no config.json, not a training run directory")


def test_evaluate_command_with_offsets_that_are_not_numbers_exits_2(tmp_path):
  process = subprocess.run(
      [sys.executable, "-m", "covseg_jax.main", f"--workdir={tmp_path}", "--mode=evaluate",
       "--logit_offsets=0,-1,x,0"],
      capture_output=True, text=True, timeout=300,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert process.returncode == 2
  assert process.stderr.strip().splitlines()[-1] == (
      "error: --logit_offsets=0,-1,x,0: not a comma-separated list of numbers")


def test_fill_lung_holes_fills_enclosed_background_only():
  """Two slices of lung masks: a ring's inside is filled; a bay open to the border, a gap in
  the ring and the background around it are not."""
  ring = np.zeros((12, 12), np.int32)
  ring[2:9, 2:9] = 1
  ring[4:7, 4:7] = 0  # Enclosed: filled.
  bay = ring.copy()
  bay[5, 6:] = 0  # The hole opens to the right border through the ring: kept.
  masks = np.stack([ring, bay])
  filled = evaluate.fill_lung_holes(masks)
  assert filled.dtype == masks.dtype and filled.shape == masks.shape
  expected_ring = ring.copy()
  expected_ring[4:7, 4:7] = 1
  np.testing.assert_array_equal(filled, np.stack([expected_ring, bay]))


@pytest.mark.parametrize("config_args, message", [
    (["--config=configs/no_such_config.py"], "no config file 'configs/no_such_config.py'"),
    (["--config", "configs/no_such_config.py:cpu", "--config.train.epochs=3"],
     "no config file 'configs/no_such_config.py'"),
    (["--config=configs/segnet_multi.py:bogus"], "flag --config=configs/segnet_multi.py:bogus: "
     "ValueError: unknown config variant 'bogus': use exp1..exp9 and/or cpu"),
    (["--config=configs/segnet_multi.py", "--config.train.epochs=abc"],
     "flag --config.train.epochs=abc: invalid literal for int() with base 10: 'abc'")])
def test_train_command_with_a_bad_config_exits_2_without_a_workdir(tmp_path, config_args,
                                                                    message):
  workdir = tmp_path / "run"
  process = subprocess.run(
      [sys.executable, "-m", "covseg_jax.main", *config_args, f"--workdir={workdir}"],
      capture_output=True, text=True, timeout=300,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert process.returncode == 2
  assert process.stderr.strip().splitlines() == [f"error: {message}"]
  assert not workdir.exists()


def test_flip_tta_is_equivariant_to_the_flip():
  """With tta_flip the prediction of a mirrored slice is the mirrored prediction (and the
  logits are log-probabilities); a plain forward pass of an untrained SegNet is not."""
  config = segnet_multi.get_config("cpu")
  model = models.get_model(config.model, 4)
  images = np.random.default_rng(0).standard_normal((2, 32, 32, 1)).astype(np.float32)
  variables = model.init({"params": jax.random.key(0)}, images, train=False)
  mirrored = images[:, ::-1]
  tta = [np.asarray(evaluate.predict_logits(model.apply, variables, x, tta_flip=True))
         for x in (images, mirrored)]
  np.testing.assert_allclose(tta[1], tta[0][:, ::-1], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.nn.logsumexp(tta[0], axis=-1), 0, atol=1e-5)
  plain = [np.asarray(evaluate.predict_logits(model.apply, variables, x)) for x in (images, mirrored)]
  assert np.abs(plain[1] - plain[0][:, ::-1]).max() > 1e-3


def test_evaluation_with_flip_tta(trained_run, tmp_path):
  workdir, _, trained = trained_run
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("report", "*_metrics.json"))
  results = evaluate.evaluate_run(copy, which="last", splits=["test"], tta_flip=True)["test"]
  assert results["tta_flip"] is True and trained["tta_flip"] is False
  assert results["per_image_global_accuracy"] != trained["per_image_global_accuracy"]
  with open(os.path.join(copy, "test_metrics.json")) as f:
    assert json.load(f)["tta_flip"] is True


def test_labels_from_logits_is_the_argmax_at_one_half_and_thresholds_the_softmax_otherwise():
  logits = jnp.asarray(np.random.default_rng(0).standard_normal((3, 8, 8, 2)), jnp.float32)
  logits = logits.at[0, 0, 0].set(jnp.array([0.25, 0.25]))  # A tie: the argmax takes class 0.
  np.testing.assert_array_equal(evaluate.labels_from_logits(logits), jnp.argmax(logits, -1))
  foreground = np.asarray(jax.nn.softmax(logits, -1)[..., 1])
  for threshold in (0.2, 0.85):
    labels = np.asarray(evaluate.labels_from_logits(logits, threshold))
    np.testing.assert_array_equal(labels, (foreground > threshold).astype(np.int32))
  assert 0 < np.asarray(evaluate.labels_from_logits(logits, 0.85)).sum() < (foreground > 0.5).sum()
  with pytest.raises(ValueError, match="needs two classes, not 4"):
    evaluate.labels_from_logits(jnp.zeros((1, 4)), 0.8)


def test_logit_offsets_shift_the_argmax():
  logits = jnp.asarray(np.random.default_rng(1).standard_normal((2, 8, 8, 4)), jnp.float32)
  offsets = (0.0, -1.0, 0.5, -0.75)
  labels = np.asarray(evaluate.labels_from_logits(logits, logit_offsets=offsets))
  np.testing.assert_array_equal(labels, np.argmax(np.asarray(logits) + np.array(offsets), -1))
  # log w on a class weighs its softmax by w: the same labels from the weighted softmax.
  weighted = np.asarray(jax.nn.softmax(logits, -1)) * np.exp(offsets)
  np.testing.assert_array_equal(labels, np.argmax(weighted, -1))
  assert 0 < (labels == 3).sum() < (np.argmax(np.asarray(logits), -1) == 3).sum()
  np.testing.assert_array_equal(evaluate.labels_from_logits(logits, logit_offsets=(0.0,) * 4),
                                jnp.argmax(logits, -1))
  with pytest.raises(ValueError, match="3 logit offsets for 4 classes"):
    evaluate.labels_from_logits(logits, logit_offsets=(0.0, 1.0, 2.0))


@pytest.mark.parametrize("threshold, offsets, task, problem", [
    (0.5, (), "multi", None), (0.8, (), "binary", None), (0.3, (), "lung", None),
    (0.5, (0, -1.5, 0.25, -0.5), "multi", None),
    (0.8, (), "multi", "eval.foreground_threshold=0.8 is for the two-class tasks (binary, lung), "
                       "not data.task='multi'; use eval.logit_offsets"),
    (1.0, (), "binary", "eval.foreground_threshold=1.0 must be in (0, 1)"),
    (0.5, (0, -1), "binary", "eval.logit_offsets=(0, -1) is for the multi-class task, not "
                             "data.task='binary'; use eval.foreground_threshold"),
    (0.5, (0, -1, 0), "multi", "eval.logit_offsets=(0, -1, 0) must be 4 finite numbers, one per "
                               "class of data.task='multi', or ()"),
    (0.5, (0, -1, 0, float("nan")), "multi", "eval.logit_offsets=(0, -1, 0, nan) must be 4")])
def test_decision_problem(threshold, offsets, task, problem):
  found = evaluate.decision_problem(threshold, offsets, task)
  assert found == problem or (problem and found.startswith(problem))


def test_foreground_threshold_is_refused_for_a_multi_class_run(trained_run):
  workdir, _, _ = trained_run
  with pytest.raises(InputError, match="is for the two-class tasks"):
    evaluate.evaluate_run(workdir, splits=["test"], foreground_threshold=0.8)


def test_evaluator_thresholds_the_foreground_and_records_it(tmp_path):
  """Evaluator(foreground_threshold=t) labels foreground where the softmax exceeds t; the
  losses stay those of the logits. The 'model' gives logits (0, x): softmax sigmoid(x)."""
  def apply_fn(variables, images, train=False):
    del variables, train
    return jnp.concatenate([jnp.zeros_like(images), images], axis=-1)

  x = np.linspace(-3, 3, 3 * 16 * 16, dtype=np.float32).reshape(3, 16, 16)
  labels = (x > 1).astype(np.int32)
  split = pipeline.SplitArrays(images=x[..., None], labels=labels, lung=np.ones_like(x, np.uint8),
                               raw=x, slice_numbers=np.arange(1, 4))
  mesh = parallel.create_mesh()
  plain, plain_losses = evaluate.Evaluator(mesh, apply_fn, "dice", np.ones(2), 2)(None, split)
  evaluator = evaluate.Evaluator(mesh, apply_fn, "dice", np.ones(2), 2, foreground_threshold=0.8)
  high, losses = evaluator(None, split)
  np.testing.assert_array_equal(plain, (x > 0).astype(np.int32))
  np.testing.assert_array_equal(high, (jax.nn.sigmoid(x) > 0.8).astype(np.int32))
  np.testing.assert_array_equal(losses, plain_losses)
  results = evaluate.evaluate_and_report(
      str(tmp_path), segnet_multi.get_config("cpu"), split, evaluator, None, split_name="test",
      checkpoint_name="last", step=1, task="binary", class_names=("not infected", "infected"))
  with open(tmp_path / "test_metrics.json") as f:
    assert json.load(f)["foreground_threshold"] == results["foreground_threshold"] == 0.8


def test_logit_offsets_evaluate_a_multi_class_run_and_are_recorded(trained_run, tmp_path):
  workdir, _, _ = trained_run
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("report", "*_metrics.json"))
  plain = evaluate.evaluate_run(copy, which="last", splits=["test"])["test"]
  shifted = evaluate.evaluate_run(copy, which="last", splits=["test"],
                                  logit_offsets=(0.0, 50.0, 0.0, 0.0))["test"]
  assert plain["logit_offsets"] == [] and shifted["logit_offsets"] == [0.0, 50.0, 0.0, 0.0]
  # An offset that large labels every pixel ground glass.
  confusion = np.asarray(shifted["pooled_confusion_matrix"])
  assert confusion[:, 1].sum() == confusion.sum() > 0
  assert shifted["per_image_global_accuracy"] != plain["per_image_global_accuracy"]
  with open(os.path.join(copy, "test_metrics.json")) as f:
    assert json.load(f)["logit_offsets"] == [0.0, 50.0, 0.0, 0.0]
  with pytest.raises(InputError, match="must be 4 finite numbers"):
    evaluate.evaluate_run(copy, splits=["test"], logit_offsets=(0.0, 1.0))


def test_hole_filling_is_refused_for_an_infection_run(trained_run):
  workdir, _, _ = trained_run
  with pytest.raises(InputError, match="a 'multi' run; hole filling is for lung runs"):
    evaluate.evaluate_run(workdir, splits=["test"], fill_holes=True)


def test_evaluator_fills_holes_of_a_lung_model():
  """Evaluator(fill_holes=True) passes the plain predictions through fill_lung_holes and
  leaves the losses alone. The 'model' labels lung where the input is positive: rings."""
  def apply_fn(variables, images, train=False):
    del variables, train
    return jnp.concatenate([-images, images], axis=-1)

  rings = np.full((3, 16, 16), -1.0, np.float32)
  rings[:, 3:13, 3:13] = 1.0
  rings[:, 6:10, 6:10] = -1.0
  labels = (rings > 0).astype(np.int32)
  split = pipeline.SplitArrays(images=rings[..., None], labels=labels,
                               lung=labels.astype(np.uint8), raw=rings,
                               slice_numbers=np.arange(1, 4))
  mesh = parallel.create_mesh()
  plain, plain_losses = evaluate.Evaluator(mesh, apply_fn, "dice", np.ones(2), 2)(None, split)
  filled, losses = evaluate.Evaluator(mesh, apply_fn, "dice", np.ones(2), 2, fill_holes=True)(
      None, split)
  np.testing.assert_array_equal(plain, labels)
  expected = labels.copy()
  expected[:, 6:10, 6:10] = 1
  np.testing.assert_array_equal(filled, expected)
  np.testing.assert_array_equal(losses, plain_losses)
