"""Evaluation reports: the papers' tables as Markdown, CSV and JSON, a per-image CSV, PNG figures.

<workdir>/report/ after evaluating split S (test or val):
  S_report.md                 everything below in one page, figures inline
  S_accuracy.{md,csv,json}    Table 3/5: per-image global accuracy, mean ± std, beside the paper's
  S_class_metrics.{md,csv,json}  Table 4/6: pooled class-level metrics, beside the paper's
  S_lung_metrics.{md,csv,json}   lung task: the second paper's lung metrics, mean ± std
  S_per_image.csv             one row per slice: accuracy, loss, per-class Dice/sens/spec (NaN if
                              undefined), lung metrics for the lung task
  figures/S_slice_NNN.png     CT, ground truth and prediction of every slice
  figures/curves.png          training and validation curves from metrics.jsonl
  figures/S_boxplots.png      per-image accuracy and Dice; figures/S_lung_boxplots.png (lung task)
"""
import csv
import dataclasses
import json
import math
import os
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # Files only; no display on training machines.
import numpy as np  # pylint: disable=wrong-import-position
from matplotlib import pyplot as plt  # pylint: disable=wrong-import-position
from matplotlib.patches import Patch  # pylint: disable=wrong-import-position

from covseg_jax import paper_results, summaries  # pylint: disable=wrong-import-position

REPORT_DIR = "report"
FIGURES_DIR = "figures"

# RGB per class; None (background) stays transparent in overlays.
CLASS_COLORS = {
    "binary": (None, (230, 25, 75)),
    "multi": (None, (255, 215, 0), (230, 25, 75), (0, 130, 200)),
    "lung": (None, (60, 180, 75)),
}
OVERLAY_ALPHA = 0.5

NAN_POLICY = (
    "Undefined values: a ratio whose denominator is zero (e.g. Dice, sensitivity and precision "
    "of a class absent from both the truth and the prediction of an image) is undefined, never "
    "0 or 1. It shows as n/a in Markdown, NaN in CSV and null in JSON. Per-image means and "
    "standard deviations (sample std, ddof 1, as MATLAB's std) are taken over the images where "
    "the value is defined, and n says how many those are. Class-level metrics come from the "
    "confusion matrix summed over all images, never from averaging per-image values. Box plots "
    "leave undefined values out.")

_CLASS_COLUMNS = (("sensitivity", "Sens"), ("specificity", "Spec"), ("gmean", "G-mean"),
                  ("dice", "Dice"), ("f2", "F2"), ("precision", "Precision"),
                  ("jaccard", "Jaccard"))
_LUNG_COLUMNS = (("dsc", "DSC"), ("jaccard", "Jaccard"), ("fp_ratio", "FP ratio"),
                 ("fn_ratio", "FN ratio"), ("me", "ME"), ("mae", "MAE"),
                 ("relative_mean_intensity_difference", "Rel. mean intensity diff."),
                 ("abs_relative_mean_intensity_difference", "|Rel. mean intensity diff.|"),
                 ("relative_volume_difference", "Rel. volume diff."),
                 ("abs_relative_volume_difference", "|Rel. volume diff.|"))
# The panels of Gholamiankhah et al.'s Figure 4: (metric, title, scale to percent).
_LUNG_BOXPLOTS = (("dsc", "Dice", False), ("jaccard", "Jaccard", False), ("me", "ME", False),
                  ("mae", "MAE", False),
                  ("relative_mean_intensity_difference", "Rel. mean intensity diff. (%)", True),
                  ("relative_volume_difference", "Rel. volume diff. (%)", True))
_ARCHITECTURES = {  # The networks of the authors' code, which the published numbers come from.
    "segnet": {"features": (64, 128, 256), "convs_per_stage": (2, 2, 2)},
    "unet": {"depth": 2, "base_features": 64},
}
_PROTOCOL = {"data.split": "paper", "data.image_size": 256, "train.epochs": 160}


@dataclasses.dataclass
class PaperComparison:
  """The paper's numbers for a run, or None with `note` saying why there are none."""
  experiment: Optional[int]
  accuracy: Optional[tuple]  # (mean, std) of the per-image global accuracy.
  classes: Optional[dict]  # Class name -> {metric: value}.
  note: str


def experiment_number(model_name, learning_rate, batch_size):
  """N of the paper's expN for a network, learning rate and batch size; None if off the grid."""
  if model_name not in paper_results.GRIDS:
    return None
  learning_rates, batch_sizes = paper_results.GRIDS[model_name]
  lr_index = next((i for i, lr in enumerate(learning_rates) if math.isclose(lr, learning_rate)),
                  None)
  if lr_index is None or batch_size not in batch_sizes:
    return None
  return batch_sizes.index(batch_size) + 1 + 3 * lr_index


def _config_value(config, dotted):
  value = config
  for key in dotted.split("."):
    if key not in value:
      return None
    value = value[key]
  return tuple(value) if isinstance(value, (list, tuple)) else value


def protocol_differences(config):
  """'field value (paper P)' for each setting where `config` leaves the paper's protocol."""
  expected = dict(_PROTOCOL)
  expected.update({f"model.{k}": v for k, v in _ARCHITECTURES.get(config.model.name, {}).items()})
  return [f"{field} {_config_value(config, field)} (paper {value})"
          for field, value in expected.items() if _config_value(config, field) != value]


def paper_comparison(config):
  """The first paper's numbers for the run `config` describes, where they apply."""
  model_name, task = config.model.name, config.data.task
  if task == "lung":
    return PaperComparison(None, None, None, paper_results.LUNG_NOTE)
  lr, batch = config.train.learning_rate, config.train.batch_size
  experiment = experiment_number(model_name, lr, batch)
  if experiment is None or (model_name, task, experiment) not in paper_results.GLOBAL_ACCURACY:
    return PaperComparison(None, None, None,
                           f"No paper numbers: the paper's nine experiments per network do not "
                           f"include {model_name} {task} with learning rate {lr:g} and batch "
                           f"size {batch}.")
  differences = protocol_differences(config)
  if differences:
    return PaperComparison(experiment, None, None,
                           f"No paper numbers: this is experiment {experiment} of the paper's "
                           f"grid, but the paper's protocol differs ({'; '.join(differences)}).")
  note = f"Paper: Saood & Hatem 2021, {model_name} {task} experiment {experiment}."
  classes = paper_results.CLASS_METRICS.get((model_name, task, experiment))
  if classes is None:
    note += (" Class-level numbers were published for experiment "
             f"{paper_results.best_experiment(model_name, task)} only.")
  return PaperComparison(experiment, paper_results.GLOBAL_ACCURACY[(model_name, task, experiment)],
                         classes, note)


def overlay_rgb(image, labels, task, alpha=OVERLAY_ALPHA):
  """(H, W, 3) uint8: `image` in grey (min-max scaled) with each class's colour blended in."""
  image = np.asarray(image, np.float64)
  low, high = image.min(), image.max()
  grey = (image - low) / (high - low) if high > low else np.zeros_like(image)
  rgb = np.repeat(grey[..., None] * 255.0, 3, axis=-1)
  for c, color in enumerate(CLASS_COLORS[task]):
    if color is not None:
      where = np.asarray(labels) == c
      rgb[where] = (1 - alpha) * rgb[where] + alpha * np.asarray(color, np.float64)
  return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def overlay_panel(image, truth, prediction, task):
  """CT | ground truth | prediction side by side, (H, 3W + 4, 3) uint8 with white gaps."""
  gap = np.full((image.shape[0], 2, 3), 255, np.uint8)
  return np.concatenate([overlay_rgb(image, np.zeros_like(truth), task), gap,
                         overlay_rgb(image, truth, task), gap,
                         overlay_rgb(image, prediction, task)], axis=1)


def _number(value, digits=3):
  return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _mean_std(mean, std, digits=3):
  return f"{_number(mean, digits)} ± {_number(std, digits)}"


def _markdown_table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
  return "\n".join(lines)


def _write_csv(path, header, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows([["NaN" if isinstance(v, float) and math.isnan(v) else v for v in row]
                      for row in rows])


def json_ready(value):
  """`value` with NaN and infinities as None (JSON null) and NumPy scalars as Python ones."""
  if isinstance(value, dict):
    return {k: json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_ready(v) for v in value]
  if isinstance(value, (float, np.floating)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value


def _write_json(path, value):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(json_ready(value), f, indent=2)


def _run_label(results):
  return f"this run ({results['checkpoint']} checkpoint, step {results['step']})"


def accuracy_table(prefix, results, comparison):
  """Table 3/5: writes prefix_accuracy.{md,csv,json}; returns the Markdown."""
  rows = [(_run_label(results), None, results["num_images"], results["global_accuracy_mean"],
           results["global_accuracy_std"])]
  if comparison.accuracy is not None:
    rows.append((f"paper, experiment {comparison.experiment}", comparison.experiment, 18,
                 *comparison.accuracy))
  markdown = _markdown_table(
      ["", "Global accuracy (mean ± std over images)", "Images"],
      [(label, _mean_std(mean, std), n) for label, _, n, mean, std in rows])
  markdown += f"\n\n{comparison.note}\n"
  with open(f"{prefix}_accuracy.md", "w", encoding="utf-8") as f:
    f.write(markdown)
  _write_csv(f"{prefix}_accuracy.csv",
             ["source", "experiment", "num_images", "global_accuracy_mean", "global_accuracy_std"],
             [("paper" if e else "run", e, n, mean, std) for _, e, n, mean, std in rows])
  _write_json(f"{prefix}_accuracy.json", {
      "run": {"num_images": results["num_images"], "mean": results["global_accuracy_mean"],
              "std": results["global_accuracy_std"], "checkpoint": results["checkpoint"],
              "step": results["step"]},
      "paper": None if comparison.accuracy is None else {
          "experiment": comparison.experiment, "num_images": 18,
          "mean": comparison.accuracy[0], "std": comparison.accuracy[1]},
      "note": comparison.note})
  return markdown


def class_table(prefix, results, comparison):
  """Table 4/6: writes prefix_class_metrics.{md,csv,json}; returns the Markdown."""
  keys = [key for key, _ in _CLASS_COLUMNS]
  paper = comparison.classes or {}
  md_rows, csv_rows = [], []
  for name, measured in results["classes"].items():
    per_image = measured["per_image_dice"]
    dice = _mean_std(per_image["mean"], per_image["std"])
    md_rows.append([name, "this run", *(_number(measured[k]) for k in keys),
                    f"{dice} (n={per_image['count']:.0f})"])
    csv_rows.append(["run", name, *(measured[k] for k in keys), per_image["mean"],
                     per_image["std"], int(per_image["count"])])
    if name in paper:
      md_rows.append(["", f"paper, experiment {comparison.experiment}",
                      *("–" if paper[name].get(k) is None else _number(paper[name][k])
                        for k in keys), ""])
      csv_rows.append(["paper", name, *(paper[name].get(k, math.nan) for k in keys),
                       math.nan, math.nan, ""])
  markdown = _markdown_table(
      ["Class", "Source", *(title for _, title in _CLASS_COLUMNS),
       "Per-image Dice (mean ± std, n)"], md_rows)
  markdown += ("\n\nPooled over the split's images (one confusion matrix summed over all "
               f"images). {comparison.note}\n")
  with open(f"{prefix}_class_metrics.md", "w", encoding="utf-8") as f:
    f.write(markdown)
  _write_csv(f"{prefix}_class_metrics.csv",
             ["source", "class", *keys, "per_image_dice_mean", "per_image_dice_std",
              "per_image_dice_count"], csv_rows)
  _write_json(f"{prefix}_class_metrics.json", {
      "run": results["classes"], "pooled_confusion_matrix": results["pooled_confusion_matrix"],
      "paper": comparison.classes, "paper_experiment": comparison.experiment,
      "note": comparison.note})
  return markdown


def lung_table(prefix, results):
  """The second paper's lung metrics: writes prefix_lung_metrics.{md,csv,json}; returns Markdown."""
  summary = results["lung"]["summary"]
  markdown = _markdown_table(
      ["Metric", "Mean ± std", "Images (n)"],
      [(title, _mean_std(summary[key]["mean"], summary[key]["std"], 4),
        f"{summary[key]['count']:.0f}") for key, title in _LUNG_COLUMNS])
  markdown += ("\n\nME and MAE are in the input's intensity units (8-bit for the PNG sources, "
               "not HU); relative differences are fractions.\n")
  with open(f"{prefix}_lung_metrics.md", "w", encoding="utf-8") as f:
    f.write(markdown)
  _write_csv(f"{prefix}_lung_metrics.csv", ["metric", "mean", "std", "count"],
             [(key, summary[key]["mean"], summary[key]["std"], int(summary[key]["count"]))
              for key, _ in _LUNG_COLUMNS])
  _write_json(f"{prefix}_lung_metrics.json", summary)
  return markdown


def per_image_csv(path, results):
  """One row per slice; NaN where a value is undefined."""
  names = results["class_names"]
  columns = [(f"{metric}_{name.replace(' ', '_')}", results["per_image"][metric][name])
             for name in names for metric in results["per_image"]]
  if "lung" in results:
    columns += [(f"lung_{key}", values) for key, values in results["lung"]["per_image"].items()]
  header = ["slice", "global_accuracy", "loss"] + [name for name, _ in columns]
  rows = [[s, results["per_image_global_accuracy"][i], results["per_image_loss"][i],
           *(values[i] for _, values in columns)]
          for i, s in enumerate(results["slice_numbers"])]
  _write_csv(path, header, rows)


def _legend_handles(task, class_names):
  return [Patch(color=np.asarray(color) / 255.0, label=name)
          for color, name in zip(CLASS_COLORS[task], class_names) if color is not None]


def plot_overlays(figure_dir, split_name, split, predictions, results):
  """figures/<split>_slice_NNN.png for every slice; returns the paths."""
  task, names = results["task"], results["class_names"]
  figure, axes = plt.subplots(1, 3, figsize=(9.6, 3.9))
  blank = np.zeros(split.labels.shape[1:] + (3,), np.uint8)
  artists = []
  for axis, title in zip(axes, ("CT", "ground truth", "prediction")):
    artists.append(axis.imshow(blank, interpolation="nearest"))
    axis.set_title(title)
    axis.axis("off")
  figure.legend(handles=_legend_handles(task, names), loc="lower center", ncol=len(names),
                frameon=False)
  figure.subplots_adjust(left=0.01, right=0.99, top=0.82, bottom=0.1, wspace=0.03)
  paths = []
  for i, slice_number in enumerate(results["slice_numbers"]):
    image = split.raw[i]
    for artist, labels in zip(artists, (np.zeros_like(split.labels[i]), split.labels[i],
                                        predictions[i])):
      artist.set_data(overlay_rgb(image, labels, task))
    dice = ", ".join(f"{name} {_number(results['per_image']['dice'][name][i], 2)}"
                     for name in names[1:])
    figure.suptitle(f"slice {slice_number}: accuracy "
                    f"{results['per_image_global_accuracy'][i]:.3f}; Dice {dice}", fontsize=9)
    path = os.path.join(figure_dir, f"{split_name}_slice_{slice_number:03d}.png")
    figure.savefig(path, dpi=100)
    paths.append(path)
  plt.close(figure)
  return paths


def plot_curves(path, records):
  """Training and validation curves from metrics.jsonl records; False if there are none."""
  def series(key):
    points = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
    return tuple(zip(*points)) if points else ((), ())

  if not any("train/loss" in r for r in records):
    return False
  figure, axes = plt.subplots(2, 2, figsize=(10, 7))
  for key, label in (("train/loss", "training"), ("val/loss", "validation")):
    axes[0, 0].plot(*series(key), label=label)
  axes[0, 0].set(title="loss", xlabel="step")
  axes[0, 0].legend()
  axes[0, 1].plot(*series("train/learning_rate"))
  axes[0, 1].set(title="learning rate", xlabel="step", yscale="log")
  axes[1, 0].plot(*series("val/global_accuracy"))
  axes[1, 0].set(title="validation global accuracy", xlabel="step")
  dice_keys = sorted({k for r in records for k in r if k.startswith("val/dice/")})
  for key in dice_keys:
    axes[1, 1].plot(*series(key), label=key[len("val/dice/"):].replace("_", " "))
  axes[1, 1].set(title="validation Dice (pooled)", xlabel="step")
  if dice_keys:
    axes[1, 1].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)
  return True


def _boxplot(axis, values, labels):
  """Box plot of the defined values of each series, labelled with their count."""
  defined = [np.asarray(v, np.float64)[np.isfinite(np.asarray(v, np.float64))] for v in values]
  axis.boxplot([d if d.size else [np.nan] for d in defined])
  axis.set_xticks(range(1, len(labels) + 1),
                  [f"{label}\n(n={d.size})" for label, d in zip(labels, defined)], fontsize=8)


def plot_boxplots(path, results):
  """Per-image global accuracy and per-class Dice of one split."""
  names = results["class_names"]
  figure, axis = plt.subplots(figsize=(2 + 1.6 * len(names), 4.5))
  _boxplot(axis, [results["per_image_global_accuracy"]]
           + [results["per_image"]["dice"][name] for name in names],
           ["global accuracy"] + [f"Dice\n{name}" for name in names])
  axis.set(title=f"{results['split']}: per-image metrics", ylim=(-0.02, 1.02))
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def plot_lung_boxplots(path, results):
  """Lung metrics per image, the panels of Gholamiankhah et al.'s Figure 4."""
  figure, axes = plt.subplots(2, 3, figsize=(11, 7))
  for axis, (key, title, percent) in zip(axes.flat, _LUNG_BOXPLOTS):
    values = np.asarray(results["lung"]["per_image"][key], np.float64) * (100 if percent else 1)
    _boxplot(axis, [values], [results["split"]])
    axis.set_title(title)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def write_report(workdir, config, results, split, predictions):
  """Writes <workdir>/report/ for one evaluated split; returns the report directory.

  Args:
    workdir: the run directory (metrics.jsonl there gives the curves).
    config: the run's config (decides which of the paper's numbers apply).
    results: evaluate.compute_results' dict with 'split', 'checkpoint' and 'step'.
    split: the evaluated pipeline.SplitArrays (raw images and labels for the overlays).
    predictions: (N, S, S) predicted classes.
  """
  report_dir = os.path.join(workdir, REPORT_DIR)
  figure_dir = os.path.join(report_dir, FIGURES_DIR)
  os.makedirs(figure_dir, exist_ok=True)
  name = results["split"]
  prefix = os.path.join(report_dir, name)
  comparison = paper_comparison(config)

  training = (f"learning rate {config.train.learning_rate:g}, batch size "
              f"{config.train.batch_size}, {config.data.image_size}x{config.data.image_size}, "
              f"{config.train.epochs} epochs, split '{config.data.split}'")
  if "ensemble" in config:  # covseg_jax.ensemble
    members = config.ensemble.members
    weights = (f"ensemble of {len(members)} runs ({', '.join(members)}), each at its "
               f"{results['checkpoint']} checkpoint; the first member's {training}")
  else:
    weights = f"{results['checkpoint']} checkpoint, step {results['step']}; {training}"
  sections = [
      f"# {config.model.name} {config.data.task}: {name} split",
      f"{results['num_images']} images; {weights}.",
      "## Global accuracy per image (Tables 3 and 5)", accuracy_table(prefix, results, comparison),
      "## Class-level metrics (Tables 4 and 6)", class_table(prefix, results, comparison),
      "Pooled confusion matrix (rows: truth, columns: prediction):",
      _markdown_table(["", *results["class_names"]],
                      [[n, *row] for n, row in zip(results["class_names"],
                                                  results["pooled_confusion_matrix"])]),
  ]
  if "lung" in results:
    sections += ["## Lung metrics (Gholamiankhah et al.)", lung_table(prefix, results)]
  per_image_csv(f"{prefix}_per_image.csv", results)
  sections += ["## Undefined values", NAN_POLICY, "## Figures"]

  if plot_curves(os.path.join(figure_dir, "curves.png"), summaries.read_metrics(workdir)):
    sections.append(f"![training and validation curves]({FIGURES_DIR}/curves.png)")
  plot_boxplots(os.path.join(figure_dir, f"{name}_boxplots.png"), results)
  sections.append(f"![per-image box plots]({FIGURES_DIR}/{name}_boxplots.png)")
  if "lung" in results:
    plot_lung_boxplots(os.path.join(figure_dir, f"{name}_lung_boxplots.png"), results)
    sections.append(f"![lung metric box plots]({FIGURES_DIR}/{name}_lung_boxplots.png)")
  for path in plot_overlays(figure_dir, name, split, predictions, results):
    sections.append(f"![{os.path.basename(path)}]({FIGURES_DIR}/{os.path.basename(path)})")
  with open(f"{prefix}_report.md", "w", encoding="utf-8") as f:
    f.write("\n\n".join(sections) + "\n")
  return report_dir
