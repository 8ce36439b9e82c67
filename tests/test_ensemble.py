"""Ensembles of trained runs: the mean-softmax prediction, the ensemble directory read as a run
by evaluation, predict and the results tables, and bad input."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from covseg_jax import checkpoint, ensemble, evaluate, metrics, parallel, predict, results, train
from covseg_jax.data import pipeline
from covseg_jax.errors import InputError
from tests import helpers
from tests.test_train import tiny_config


@pytest.fixture(scope="module")
def members(tmp_path_factory):
  """Two tiny SegNet runs of the same data, seeds 0 and 1, under one root: [workdir, ...]."""
  root = tmp_path_factory.mktemp("runs")
  data_dir = helpers.data_dir_or_phantoms(tmp_path_factory)
  workdirs = []
  for seed in (0, 1):
    config = tiny_config(data_dir)
    config.seed = seed
    workdir = str(root / f"seed{seed}")
    train.train_and_evaluate(config, workdir)
    workdirs.append(workdir)
  return workdirs


def read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def member_probabilities(workdir, split_name):
  """float64 softmax (N, S, S, C) of one member on a split, outside the ensemble code."""
  run = checkpoint.restore_run(workdir, "last", parallel.create_mesh(jax.devices()[:1]))
  split = pipeline.load_dataset(run.config.data).split(split_name)
  logits = np.asarray(run.model.apply(run.variables, split.images, train=False), np.float64)
  probabilities = np.exp(logits - logits.max(-1, keepdims=True))
  return probabilities / probabilities.sum(-1, keepdims=True), split


def test_the_prediction_is_the_argmax_of_the_mean_softmax(members, tmp_path):
  out = str(tmp_path / "ensemble")
  assert ensemble.main([f"--members={','.join(members)}", f"--out={out}"]) == 0
  (first, split), (second, _) = (member_probabilities(m, "test") for m in members)
  expected = np.argmax(first + second, axis=-1)
  assert (np.argmax(first, -1) != np.argmax(second, -1)).mean() > 0.01  # The members differ.

  run = checkpoint.restore_run(out, "last")
  assert isinstance(run.model, ensemble.EnsembleModel) and len(run.variables) == 2
  dataset = pipeline.load_dataset(run.config.data)
  evaluator = evaluate.Evaluator(parallel.create_mesh(), run.model.apply, run.config.train.loss,
                                 dataset.class_weights, 8)
  predictions, _ = evaluator(run.variables, split)
  assert (predictions != expected).mean() < 1e-4  # Only near-ties may round differently.

  written = read_json(os.path.join(out, "test_metrics.json"))
  confusion = metrics.pooled_confusion_matrix(
      np.asarray(metrics.confusion_matrices(split.labels, predictions, 4)))
  assert written["pooled_confusion_matrix"] == np.asarray(confusion).tolist()
  assert os.path.exists(os.path.join(out, "val_metrics.json"))
  assert os.path.exists(os.path.join(out, "report", "test_report.md"))
  record = read_json(os.path.join(out, checkpoint.ENSEMBLE_FILE))
  assert [os.path.realpath(p) for p in ensemble.member_paths(out)] == [
      os.path.realpath(m) for m in members]
  assert not any(os.path.isabs(p) for p in record["members"])  # Relative: the tree can move.
  assert record["checkpoint"] == "last" and record["member_steps"] == [18, 18]


def test_the_command_restores_each_member_once(members, tmp_path, monkeypatch):
  restored = []
  restore_run = checkpoint.restore_run

  def counted(workdir, *args, **kwargs):
    restored.append(os.path.realpath(workdir))
    return restore_run(workdir, *args, **kwargs)

  monkeypatch.setattr(checkpoint, "restore_run", counted)
  out = str(tmp_path / "ensemble")
  assert ensemble.main([f"--members={','.join(members)}", f"--out={out}"]) == 0
  assert restored == [os.path.realpath(m) for m in members]  # Not again to evaluate.
  assert os.path.exists(os.path.join(out, "val_metrics.json"))
  assert os.path.exists(os.path.join(out, "test_metrics.json"))


def test_an_ensemble_of_a_run_and_its_copy_is_the_run(members, tmp_path):
  copy = str(tmp_path / "copy")
  shutil.copytree(members[0], copy)
  out = str(tmp_path / "ensemble")
  assert ensemble.main([f"--members={members[0]},{copy}", f"--out={out}", "--splits=test"]) == 0
  single = read_json(os.path.join(members[0], "test_metrics.json"))
  both = read_json(os.path.join(out, "test_metrics.json"))
  assert both["pooled_confusion_matrix"] == single["pooled_confusion_matrix"]
  assert both["per_image_global_accuracy"] == single["per_image_global_accuracy"]

  # predict reads the ensemble directory as a run, with the same masks as the member alone.
  slices = np.random.default_rng(0).uniform(0, 255, (3, 40, 40)).astype(np.float32)
  alone, pair = (predict.load_model(path, "infection", batch_size=2) for path in (members[0], out))
  assert (alone.segment(slices) != pair.segment(slices)).mean() < 1e-3
  assert "ensemble_members" not in alone.describe()
  assert len(pair.describe()["ensemble_members"]) == 2


def test_results_read_an_ensemble_as_a_run(members, tmp_path):
  root = tmp_path / "root"
  shutil.copytree(os.path.dirname(members[0]), root / "single")
  out = str(root / "pair")
  assert ensemble.main([f"--members={root / 'single' / 'seed0'},{root / 'single' / 'seed1'}",
                        f"--out={out}"]) == 0
  loaded = {r.name: r for r in results.load_runs(str(root))}
  pair = loaded["pair"]
  val = read_json(os.path.join(out, "val_metrics.json"))
  assert pair.val["val/global_accuracy"] == val["global_accuracy_mean"]
  assert pair.val["val/loss"] == pytest.approx(np.mean(val["per_image_loss"]))
  assert "members" in pair.record
  # An ensemble made through the API records no command; the tables still build.
  ensemble.create([str(root / "single" / "seed1"), str(root / "single" / "seed0")],
                  str(root / "api"))
  evaluate.evaluate_run(str(root / "api"), splits=["test"])
  text = results.collect(str(root), str(tmp_path / "tables"))
  assert "ensembles of 2 runs" in text and "python -m covseg_jax.ensemble" in text
  assert "## api:" in text and "`None`" not in text


def test_an_ensemble_over_folds_is_tested_on_the_paper_test_slices_only(tmp_path_factory,
                                                                        tmp_path, capsys):
  """Runs of data.split='paper_kfold' differ in their fold but share the test slices and the
  mean image, so they ensemble; their validation slices differ, so the ensemble has no val."""
  data_dir = helpers.data_dir_or_phantoms(tmp_path_factory)
  folds = []
  for fold in (0, 1):
    config = tiny_config(data_dir)
    config.train.epochs = 1
    config.data.split, config.data.fold = "paper_kfold", fold
    folds.append((str(tmp_path / f"fold{fold}"), pipeline.load_dataset(config.data)))
    train.train_and_evaluate(config, folds[-1][0])
  (first, data0), (second, data1) = folds
  assert not np.array_equal(data0.val.slice_numbers, data1.val.slice_numbers)
  assert np.array_equal(data0.test.slice_numbers, data1.test.slice_numbers)
  np.testing.assert_array_equal(data0.mean_image, data1.mean_image)

  out = str(tmp_path / "ensemble")
  assert ensemble.main([f"--members={first},{second}", f"--out={out}"]) == 0
  assert os.path.exists(os.path.join(out, "test_metrics.json"))
  assert not os.path.exists(os.path.join(out, "val_metrics.json"))
  with pytest.raises(InputError, match="an ensemble over folds"):
    evaluate.evaluate_run(out, splits=["val"])
  capsys.readouterr()
  fresh = tmp_path / "fresh"
  assert ensemble.main([f"--members={first},{second}", f"--out={fresh}", "--splits=val"]) == 2
  assert "only its test split" in capsys.readouterr().err and not fresh.exists()

  # Folds of a cross-validation ('kfold') have different test slices: refused.
  for path, fold in ((first, 0), (second, 1)):
    config = read_json(os.path.join(path, checkpoint.CONFIG_FILE))
    config["data"]["split"] = "kfold"
    shutil.copytree(path, tmp_path / f"kfold{fold}")
    (tmp_path / f"kfold{fold}" / checkpoint.CONFIG_FILE).write_text(json.dumps(config))
  assert ensemble.main([f"--members={tmp_path / 'kfold0'},{tmp_path / 'kfold1'}",
                        f"--out={tmp_path / 'cv'}"]) == 2
  assert "data.fold: 1 vs 0" in capsys.readouterr().err

  # A member whose recorded test slices are not the ones its config gives now: refused.
  record = read_json(os.path.join(second, checkpoint.SPLIT_FILE))
  record["test"], record["val"] = record["test"][1:], record["val"] + record["test"][:1]
  with open(os.path.join(second, checkpoint.SPLIT_FILE), "w", encoding="utf-8") as f:
    json.dump(record, f)
  with pytest.raises(InputError, match=f"{second}/split.json: the run's test slices differ"):
    evaluate.evaluate_run(out, splits=["test"])
  capsys.readouterr()
  assert ensemble.main([f"--members={first},{second}", f"--out={fresh}"]) == 2
  assert "split.json: the run's test slices differ" in capsys.readouterr().err
  assert not fresh.exists()


def test_bad_input_is_one_line_and_writes_nothing(members, tmp_path, capsys):
  out = tmp_path / "out"
  first, second = members

  def error(*args):
    assert ensemble.main(list(args)) == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("error: "), message
    assert not out.exists()
    return message[0]

  assert "at least two members" in error(f"--members={first}", f"--out={out}")
  assert "listed twice" in error(f"--members={first},{first}/", f"--out={out}")
  assert "no config.json" in error(f"--members={first},{tmp_path}", f"--out={out}")
  assert "is one of the members" in error(f"--members={first},{second}", f"--out={second}")

  other = tmp_path / "other_data"
  shutil.copytree(first, other)
  config = read_json(other / checkpoint.CONFIG_FILE)
  config["data"]["split_seed"] = 5
  (other / checkpoint.CONFIG_FILE).write_text(json.dumps(config))
  assert "data.split_seed: 5 vs 0" in error(f"--members={first},{other}", f"--out={out}")

  busy = tmp_path / "busy"
  busy.mkdir()
  (busy / "notes.txt").write_text("keep")
  message = ensemble.main([f"--members={first},{second}", f"--out={busy}"])
  assert message == 2 and "not an ensemble directory" in capsys.readouterr().err
  assert os.listdir(busy) == ["notes.txt"]

  with pytest.raises(SystemExit):  # argparse: usage and exit status 2.
    ensemble.main([f"--members={first},{second}", f"--out={out}", "--checkpoint=newest"])
  assert not out.exists()
