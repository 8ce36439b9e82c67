"""Results tables from fake sweep workdirs: selection by validation, paper values, k-fold."""
import csv
import dataclasses
import json
import math

import pytest

from covseg_jax import paper_results, results, sweep

CLASS_NAMES = {"binary": ("not infected", "infected"), "lung": ("background", "lung"),
               "multi": ("background and healthy lung", "ground-glass opacity", "consolidation",
                         "pleural effusion")}


def write_run(workdir, *, model="segnet", task="multi", lr=1e-3, batch=4, image_size=128,
              epochs=40, width=16, fold=None, split="kfold", val=(), accuracy=(0.9, 0.05),
              dice=(0.9, 0.5, 0.4, 0.1), record=None, extra=None, ensemble=None):
  """A finished run: config.json, metrics.jsonl with `val` (accuracy, loss[, consolidation
  Dice]) entries in order
  and test_metrics.json with the given accuracy, per-class Dice and `extra` entries. A `fold`
  is one of data.split `split`; `ensemble` is the config's ensemble entry."""
  workdir.mkdir(parents=True)
  names = CLASS_NAMES[task]
  widths = ({"base_features": width} if model == "unet" else
            {"features": [width, 2 * width, 4 * width]})
  config = {"model": {"name": model, "dtype": "float32", **widths},
            "data": {"task": task, "image_size": image_size, "num_folds": 5,
                     "split": "paper" if fold is None else split, "fold": fold or 0},
            "train": {"epochs": epochs, "learning_rate": lr, "batch_size": batch,
                      "loss": "weighted_ce"}, **({"ensemble": ensemble} if ensemble else {})}
  (workdir / "config.json").write_text(json.dumps(config))
  lines = [{"step": 9, "train/loss": 1.0}]
  lines += [{"step": 10 * (i + 1), "val/global_accuracy": v[0], "val/loss": v[1],
             **({"val/dice/consolidation": v[2]} if len(v) > 2 else {})}
            for i, v in enumerate(val)]
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
  classes = {name: {"sensitivity": 0.8, "specificity": 0.95, "precision": 0.6, "gmean": 0.87,
                    "dice": d, "f2": 0.7, "jaccard": 0.4} for name, d in zip(names, dice)}
  test = {"global_accuracy_mean": accuracy[0], "global_accuracy_std": accuracy[1],
          "classes": classes, "checkpoint": "last", "tta_flip": False, **(extra or {})}
  (workdir / "test_metrics.json").write_text(json.dumps(test))
  if record:
    (workdir / sweep.RUN_RECORD_FILE).write_text(json.dumps(record))


def read_csv(path):
  with open(path, encoding="utf-8") as f:
    return list(csv.DictReader(f))


@pytest.fixture
def multi_sweep(tmp_path):
  """SegNet multi, experiments 1, 2 and 7: exp 2 has the best test accuracy, exp 7 the best
  last validation accuracy, exp 1 the best validation accuracy before its last one and the
  lowest last validation loss."""
  root = tmp_path / "segnet_multi"
  record = {"sweep_command": "python -m covseg_jax.sweep --config=configs/segnet_multi.py:cpu",
            "device": "AMD EPYC, 2 cores", "started": "2026-11-22T10:00:00+00:00",
            "finished": "2026-11-22T10:03:00+00:00", "seconds": 180.0}
  write_run(root / "exp1", lr=1e-4, val=[(0.99, 0.5), (0.80, 0.1)], accuracy=(0.81, 0.07),
            record=record)
  write_run(root / "exp2", lr=1e-4, batch=8, val=[(0.85, 0.4)], accuracy=(0.95, 0.02),
            record=record)
  write_run(root / "exp7", lr=3e-3, val=[(0.7, 0.5), (0.90, 0.3)], accuracy=(0.88, 0.06),
            dice=(0.95, 0.61, 0.52, math.nan), record=record)
  return root


def test_best_run_is_chosen_by_validation_never_by_test(multi_sweep, tmp_path):
  text = results.collect(str(multi_sweep), str(tmp_path / "out"))
  assert ("| **exp7** (selected) | 0.003 | 4 | 0.900 | 0.300 | 0.880 ± 0.060 | 0.907 ± 0.060 |"
          in text)
  assert "| exp1 | 0.0001 | 4 | 0.800 | 0.100 | 0.810 ± 0.070 | 0.703 ± 0.063 |" in text
  accuracy = read_csv(tmp_path / "out" / "accuracy.csv")
  assert [(r["experiment"], r["selected"]) for r in accuracy] == [
      ("1", "False"), ("2", "False"), ("7", "True")]
  assert float(accuracy[1]["paper_accuracy_mean"]) == 0.657

  rows = read_csv(tmp_path / "out" / "class_metrics.csv")
  ggo = [r for r in rows if r["class"] == "ground-glass opacity"]
  assert [r["source"] for r in ggo] == ["this run: exp7", "paper: exp 7"]
  assert float(ggo[0]["dice"]) == 0.61 and float(ggo[1]["dice"]) == 0.478
  assert float(ggo[1]["sensitivity"]) == 0.639
  assert "background and healthy lung" not in {r["class"] for r in rows}
  effusion = [r for r in rows if r["class"] == "pleural effusion"]
  assert math.isnan(float(effusion[0]["dice"])) and float(effusion[1]["dice"]) == 0.122
  assert "| pleural effusion | this run: exp7 | 0.800 | 0.950 | 0.870 | undefined |" in text


def test_select_by_validation_loss(multi_sweep, tmp_path):
  text = results.collect(str(multi_sweep), str(tmp_path / "out"), selection="val_loss")
  assert "| **exp1** (selected) |" in text
  assert "Best run chosen by the last validation loss (never by test): exp1." in text


def test_tables_are_labelled_with_their_scale_and_provenance(multi_sweep, tmp_path):
  text = results.collect(str(multi_sweep), str(tmp_path / "out"))
  assert ("## segnet_multi: SegNet, multi-class (features [16, 32, 64], float32, "
          "loss weighted_ce)") in text
  assert "### Global accuracy per experiment (Table 5), reduced: 128x128, 40 epochs, width 16/64" in text
  assert "### Class-level metrics of the best run (Table 6), reduced: 128x128, 40 epochs, width 16/64" in text
  assert "- Command: `python -m covseg_jax.sweep --config=configs/segnet_multi.py:cpu`" in text
  assert "- Device: AMD EPYC, 2 cores" in text
  assert "- Date: 2026-11-22 (0.15 h of training in total)" in text
  assert "- Test metrics from the last checkpoint (3 runs)." in text
  assert (tmp_path / "out" / "accuracy_vs_paper.png").stat().st_size > 0
  assert (tmp_path / "out" / "results.md").read_text() == text

  full = tmp_path / "full"
  write_run(full / "unet_binary" / "exp4", model="unet", task="binary", image_size=256,
            epochs=160, width=64, val=[(0.9, 0.2)], dice=(0.99, 0.74))
  write_run(full / "unet_narrow" / "exp4", model="unet", task="binary", image_size=256,
            epochs=160, width=16, val=[(0.9, 0.2)], dice=(0.99, 0.74))
  write_run(full / "unet_narrow" / "exp5", model="unet", task="binary", image_size=256,
            epochs=160, width=16, val=[(0.8, 0.2)], dice=(0.99, 0.74),
            extra={"checkpoint": "best", "tta_flip": True, "fill_holes": True,
                   "foreground_threshold": 0.85})
  text = results.collect(str(full), str(tmp_path / "out_full"))
  assert "reduced" not in text.split("## unet_binary")[1].split("## unet_narrow")[0]
  assert "(Table 3), full protocol: 256x256, 160 epochs" in text
  assert "(Table 3), reduced: 256x256, 160 epochs, width 16/64" in text
  assert "not made by covseg_jax.sweep" in text
  assert ("- Test metrics from the last checkpoint (1 run); the best checkpoint with flip TTA, "
          "hole filling and foreground threshold 0.85 (1 run).") in text
  rows = read_csv(tmp_path / "out_full" / "class_metrics.csv")
  assert [(r["source"], float(r["dice"])) for r in rows if r["group"] == "unet_binary"] == [
      ("this run: unet_binary/exp4", 0.74), ("paper: exp 4", 0.734)]


def test_lung_run_beside_the_lung_paper(tmp_path):
  summary = {key: {"mean": 0.5, "std": 0.1} for key, _ in results.LUNG_SUMMARY}
  write_run(tmp_path / "lung_resnet", model="highresnet", task="lung", batch=8,
            val=[(0.95, 0.07)], dice=(0.99, 0.92), extra={"lung": {"summary": summary}})
  text = results.collect(str(tmp_path / "lung_resnet"), str(tmp_path / "out"))
  assert "## lung_resnet: HighResNet, lung segmentation" in text
  assert "### Global accuracy per run, reduced: 128x128, 40 epochs" in text  # Full width: 16.
  assert "The paper publishes no global accuracy for this task." in text
  assert "| **lung_resnet** (selected) | 0.001 | 8 | 0.950 | 0.070 | 0.900 ± 0.050 | — |" in text
  assert "| lung | this run: lung_resnet | 0.800 | 0.950 | 0.870 | 0.920 | 0.700 | 0.400 |" in text
  assert "| 0.971 | — | 0.938 |" in text
  assert "Dice 0.500 ± 0.100, Jaccard 0.500 ± 0.100" in text
  assert not (tmp_path / "out" / "accuracy_vs_paper.png").exists()  # No paper accuracy.


def test_kfold_mean_and_std_over_folds(tmp_path):
  root = tmp_path / "sweeps"
  dice = [(0.9, 0.5, 0.4, 0.1), (0.9, 0.7, 0.6, math.nan), (0.9, 0.6, 0.5, 0.3)]
  for fold, (accuracy, fold_dice) in enumerate(zip((0.90, 0.92, 0.94), dice)):
    write_run(root / "segnet_multi_cv" / "exp7" / f"fold{fold}", fold=fold,
              val=[(0.8 + 0.05 * fold, 0.3, 0.3 + 0.1 * fold)], accuracy=(accuracy, 0.05),
              dice=fold_dice)
  (root / "segnet_multi_cv" / "exp7" / "fold3").mkdir()  # Not started yet: no config.json.
  text = results.collect(str(root), str(tmp_path / "out"))
  assert "### Cross-validation (Table 7), reduced: 128x128, 40 epochs, width 16/64" in text
  assert "Global accuracy per experiment" not in text  # No run on the paper's split.
  assert "| 7 | 3/5 | val/global_accuracy | 0.850 ± 0.050 | — |" in text
  assert "| 7 | 3/5 | val/dice/consolidation | 0.400 ± 0.100 | — |" in text
  assert "| 7 | 3/5 | test/global_accuracy | 0.920 ± 0.020 | 0.907 |" in text
  assert "| 7 | 3/5 | test/dice/ground-glass opacity | 0.600 ± 0.100 | 0.478 |" in text
  assert "| 7 | 3/5 | test/dice/pleural effusion | 0.200 ± 0.141 (2 defined) | 0.122 |" in text
  rows = {r["metric"]: r for r in read_csv(tmp_path / "out" / "kfold.csv")}
  assert float(rows["test/dice/consolidation"]["mean"]) == pytest.approx(0.5)
  assert rows["test/dice/pleural effusion"]["defined_folds"] == "2"


def test_folds_of_the_paper_split_and_their_ensemble(tmp_path):
  """paper_kfold folds get their own table (no fold is 'best': each validates on its own
  slices); an ensemble over them is one run on the paper's split, its family's only run."""
  root = tmp_path / "sweeps"
  for fold in range(2):
    write_run(root / "folds" / "exp7" / f"fold{fold}", fold=fold, split="paper_kfold",
              val=[(0.9 + 0.02 * fold, 0.3)], accuracy=(0.90 + 0.02 * fold, 0.05))
  write_run(root / "folds_ensemble", fold=1, split="paper_kfold", accuracy=(0.95, 0.04),
            ensemble={"members": ["../folds/exp7/fold0", "../folds/exp7/fold1"], "folds": [0, 1]})
  text = results.collect(str(root), str(tmp_path / "out"))
  folds_section, ensemble_section = text.split("## folds_ensemble")
  assert "### Folds of the paper's 82 non-test slices, all tested on its test split" in (
      folds_section)
  assert "| 7 | 2/5 | test/global_accuracy | 0.910 ± 0.014 | 0.907 |" in folds_section
  assert "Global accuracy per experiment" not in folds_section
  assert "Folds of the paper" not in ensemble_section
  assert "| folds_ensemble | 0.001 | 4 | undefined | undefined | 0.950 ± 0.040 |" in (
      ensemble_section)
  assert "The family's only run, folds_ensemble, which has no validation scores." in (
      ensemble_section)


def test_unfinished_runs_are_listed_not_tabled(tmp_path):
  root = tmp_path / "segnet_binary"
  write_run(root / "exp4", task="binary", val=[(0.9, 0.2)], dice=(0.99, 0.7))
  write_run(root / "exp5", task="binary", val=[(0.95, 0.1)], dice=(0.99, 0.8))
  (root / "exp5" / "test_metrics.json").unlink()
  text = results.collect(str(root), str(tmp_path / "out"))
  assert "Unfinished (no test_metrics.json): exp5." in text
  assert "| **exp4** (selected) |" in text and "| exp5 |" not in text


def test_main_reports_an_empty_root(tmp_path, capsys):
  assert results.main([str(tmp_path)]) == 2
  assert "error: no runs" in capsys.readouterr().err


def test_paper_tables_are_complete():
  assert len(paper_results.GLOBAL_ACCURACY) == 36
  assert {paper_results.best_experiment(m, t) for m in ("segnet", "unet")
          for t in ("binary", "multi")} == {4, 7}
  assert paper_results.best_experiment("highresnet", "lung") is None
  for (model, task, experiment), classes in paper_results.CLASS_METRICS.items():
    # The paper's best runs are the most accurate of its Table 3/5.
    best = max(range(1, 10), key=lambda e: paper_results.GLOBAL_ACCURACY[(model, task, e)][0])
    assert experiment == best
    for metrics in classes.values():
      assert metrics["gmean"] == pytest.approx(
          math.sqrt(metrics["sensitivity"] * metrics["specificity"]), abs=1e-3)


def test_family_heading_names_the_training_changes():
  config = {"model": {"name": "segnet", "features": [16, 32, 64], "dtype": "float32"},
            "data": {"task": "multi"},
            "train": {"loss": "weighted_ce+dice", "rotation_degrees": 15.0, "scale_range": 0.15},
            "eval": {"tta_flip": True}}
  run = results.RunResult(name="exp7", group="g", experiment=7, config=config, val={},
                          test=None, record=None)
  assert results.describe_family(run) == (
      "SegNet, multi-class (features [16, 32, 64], float32, loss weighted_ce+dice, "
      "rotation ±15°, zoom ±0.15, configured evaluation: flip TTA)")
  config["train"].update(rotation_degrees=0.0, scale_range=0.0)
  assert "rotation" not in results.describe_family(run)
  config["train"]["lr_schedule"] = "cosine"
  assert results.describe_family(run) == (
      "SegNet, multi-class (features [16, 32, 64], float32, loss weighted_ce+dice, "
      "cosine learning-rate schedule, configured evaluation: flip TTA)")
  config["train"].update(lr_schedule="piecewise", gamma_range=0.5, elastic=0.02)
  assert ("loss weighted_ce+dice, elastic deformation 0.02, gamma range 0.5, configured"
          in results.describe_family(run))
  config["train"].update(elastic=0.0, label_smoothing=0.1)
  assert "loss weighted_ce+dice, label smoothing 0.1, gamma" in results.describe_family(run)
  config["train"]["label_smoothing"] = 0.0
  unet = {**config, "model": {"name": "unet", "base_features": 16, "depth": 4,
                              "batch_norm": True, "dtype": "float32"}}
  assert results.describe_family(dataclasses.replace(run, config=unet)).startswith(
      "U-Net, multi-class (base features 16, depth 4, BatchNorm, float32, ")
  unet["model"].update(depth=2, batch_norm=False)  # The paper's.
  assert results.describe_family(dataclasses.replace(run, config=unet)).startswith(
      "U-Net, multi-class (base features 16, float32, ")
  config["train"]["gamma_range"] = 0.0
  config["eval"]["fill_holes"] = True
  assert results.describe_family(run).endswith("configured evaluation: flip TTA, hole filling)")
  config["eval"]["foreground_threshold"] = 0.85
  assert results.describe_family(run).endswith("hole filling, foreground threshold 0.85)")
  config["eval"].update(foreground_threshold=0.5, logit_offsets=[0.0, -1.5, -0.25, -2.0])
  assert results.describe_family(run).endswith("hole filling, logit offsets (0, -1.5, -0.25, -2))")
  assert results._evaluated_with({"checkpoint": "last", "tta_flip": True,
                                  "logit_offsets": [0.0, -1.5, -0.25, -2.0]}) == (
      "the last checkpoint with flip TTA and logit offsets (0, -1.5, -0.25, -2)")
