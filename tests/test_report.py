"""Reports: which paper numbers apply to a config, tables and figures from synthetic results."""
import csv
import json
import math
import os

import numpy as np
import pytest

from configs import (default, lung_resnet, segnet_binary, segnet_multi, segnet_vgg16_multi,
                     unet_binary, unet_multi)
from covseg_jax import evaluate, paper_results, report
from covseg_jax.data import pipeline, preprocess


def test_grids_match_the_configs():
  assert paper_results.GRIDS == {"segnet": default.SEGNET_GRID, "unet": default.UNET_GRID}


@pytest.mark.parametrize("family", [segnet_multi, unet_binary])
def test_experiment_numbers_match_the_config_variants(family):
  for n in range(1, 10):
    config = family.get_config(f"exp{n}")
    assert report.experiment_number(config.model.name, config.train.learning_rate,
                                     config.train.batch_size) == n


@pytest.mark.parametrize("family, experiment, accuracy, ggo_dice", [
    (segnet_multi, 7, (0.907, 0.060), 0.478),
    (unet_multi, 4, (0.908, 0.066), 0.484),
])
def test_full_protocol_configs_get_the_paper_numbers(family, experiment, accuracy, ggo_dice):
  comparison = report.paper_comparison(family.get_config())
  assert comparison.experiment == experiment
  assert comparison.accuracy == accuracy
  assert comparison.classes["ground-glass opacity"]["dice"] == ggo_dice


def test_class_numbers_exist_only_for_the_best_experiment():
  comparison = report.paper_comparison(segnet_binary.get_config("exp1"))
  assert comparison.accuracy == (0.934, 0.053)
  assert comparison.classes is None
  assert "experiment 4 only" in comparison.note


@pytest.mark.parametrize("config, reason", [
    (segnet_multi.get_config("cpu"), "data.image_size 128 (paper 256)"),
    (segnet_vgg16_multi.get_config(), "model.features (64, 128, 256, 512, 512)"),
    (lung_resnet.get_config(), "1200-patient"),
])
def test_other_protocols_get_no_paper_numbers(config, reason):
  comparison = report.paper_comparison(config)
  assert comparison.accuracy is None and comparison.classes is None
  assert reason in comparison.note


def test_off_grid_hyperparameters_get_no_paper_numbers():
  config = segnet_multi.get_config()
  config.train.learning_rate = 2e-3
  comparison = report.paper_comparison(config)
  assert comparison.experiment is None and "do not include" in comparison.note


def synthetic_split(task, n=3, size=12, seed=0):
  rng = np.random.default_rng(seed)
  classes = preprocess.num_classes(task)
  labels = rng.integers(0, classes, (n, size, size)).astype(np.int32)
  labels[0] = 0  # Slice without lesions: lesion Dice undefined unless predicted.
  raw = rng.uniform(0, 255, (n, size, size)).astype(np.float32)
  split = pipeline.SplitArrays(images=raw[..., None] / 255, labels=labels,
                               lung=np.ones_like(labels, np.uint8), raw=raw,
                               slice_numbers=np.arange(1, n + 1) * 7)
  predictions = labels.copy()
  predictions[1:, :3] = 0
  return split, predictions


def synthetic_results(task, config):
  split, predictions = synthetic_split(task)
  results = evaluate.compute_results(split, predictions, np.full(len(predictions), 0.3), task,
                                     preprocess.CLASS_NAMES[task])
  results.update({"split": "test", "checkpoint": "last", "step": 160})
  return split, predictions, results


def test_multi_class_report_files_tables_and_nan_policy(tmp_path):
  config = segnet_multi.get_config()  # Full protocol: the paper's numbers are shown.
  split, predictions, results = synthetic_results("multi", config)
  report_dir = report.write_report(str(tmp_path), config, results, split, predictions)
  names = set(os.listdir(report_dir))
  for table in ("accuracy", "class_metrics"):
    assert {f"test_{table}.{ext}" for ext in ("md", "csv", "json")} <= names
  assert {"test_per_image.csv", "test_report.md"} <= names
  figures = set(os.listdir(os.path.join(report_dir, "figures")))
  assert figures == {"test_boxplots.png", "test_slice_007.png", "test_slice_014.png",
                     "test_slice_021.png"}  # No metrics.jsonl here, so no curves.

  with open(os.path.join(report_dir, "test_report.md")) as f:
    markdown = f.read()
  assert "| paper, experiment 7 | 0.907 ± 0.060 | 18 |" in markdown
  assert ("|  | paper, experiment 7 | 0.639 | 0.952 | 0.780 | 0.478 | 0.563 | – | – |  |"
          in markdown)  # Beside this run's row; precision and Jaccard were not published.
  assert "## Undefined values" in markdown

  # Slice 7 has no lesion in truth or prediction: its lesion Dice is undefined everywhere.
  with open(os.path.join(report_dir, "test_per_image.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [r["slice"] for r in rows] == ["7", "14", "21"]
  assert rows[0]["dice_consolidation"] == "NaN" and rows[0]["global_accuracy"] == "1.0"
  assert float(rows[1]["dice_consolidation"]) < 1
  with open(os.path.join(tmp_path, "report", "test_class_metrics.json")) as f:
    classes = json.load(f)
  assert classes["paper"]["consolidation"]["dice"] == 0.454
  assert classes["run"]["consolidation"]["per_image_dice"]["count"] == 2
  with open(os.path.join(report_dir, "test_accuracy.csv")) as f:
    accuracy = list(csv.DictReader(f))
  assert [r["source"] for r in accuracy] == ["run", "paper"]
  assert math.isclose(float(accuracy[0]["global_accuracy_mean"]), results["global_accuracy_mean"])


def test_lung_report_has_the_lung_metrics_and_their_box_plots(tmp_path):
  config = lung_resnet.get_config("cpu")
  split, predictions, results = synthetic_results("lung", config)
  report_dir = report.write_report(str(tmp_path), config, results, split, predictions)
  names = set(os.listdir(report_dir))
  assert {f"test_lung_metrics.{ext}" for ext in ("md", "csv", "json")} <= names
  assert "test_lung_boxplots.png" in os.listdir(os.path.join(report_dir, "figures"))
  with open(os.path.join(report_dir, "test_lung_metrics.json")) as f:
    lung = json.load(f)
  # Slice 7 has no lung in reference or prediction: its DSC is undefined and left out.
  assert lung["dsc"]["count"] == 2
  assert lung["dsc"]["mean"] == pytest.approx(np.nanmean(results["lung"]["per_image"]["dsc"]))
  with open(os.path.join(report_dir, "test_per_image.csv")) as f:
    header = next(csv.reader(f))
  assert "lung_relative_volume_difference" in header


def test_overlay_blends_class_colours_over_grey():
  image = np.array([[0.0, 100.0], [200.0, 50.0]])
  labels = np.array([[0, 1], [0, 1]])
  rgb = report.overlay_rgb(image, labels, "binary")
  assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
  assert tuple(rgb[1, 0]) == (255, 255, 255)  # Background: grey, min-max scaled.
  red = np.asarray(report.CLASS_COLORS["binary"][1])
  expected = np.round((1 - report.OVERLAY_ALPHA) * 127.5 + report.OVERLAY_ALPHA * red)
  np.testing.assert_array_equal(rgb[0, 1], expected)
  assert report.overlay_panel(image, labels, labels, "binary").shape == (2, 3 * 2 + 4, 3)
