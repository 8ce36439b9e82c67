"""Collects sweeps into the paper's tables, each beside the published numbers.

  python -m covseg_jax.results runs/sweeps/segnet_multi
  python -m covseg_jax.results runs/sweeps --out=results/cpu --select=val_loss

Every directory under the root that holds a config.json is a run. Its path in the sweep layout
(covseg_jax.sweep) names it: an 'expN' part is experiment N of the family, a 'foldK' part a
cross-validation fold; the rest of the path (or the root's name) is the family the run belongs
to. Per family:
- global accuracy per experiment, mean ± std over the test images (the paper's Table 3 or 5),
  from runs on the paper's split;
- class-level metrics of the best of those runs (Table 4 or 6), chosen by VALIDATION: the last
  validation global accuracy in metrics.jsonl (--select=val_accuracy: the score of the final
  weights, which the test metrics come from unless the run was evaluated at another checkpoint,
  as each table says) or the last validation loss (--select=val_loss);
- k-fold mean ± std over folds (Table 7) of accuracy and per-class Dice, from data.split='kfold';
  the same table for data.split='paper_kfold' (folds of the paper's 82 non-test slices, all
  tested on the paper's test slices; a fold's validation slices are its own, so no fold is
  "best").
A table is labelled 'reduced' when its runs differ from the paper's scale (256x256, 160 epochs,
full-width networks). Each family lists the commands, devices and dates its runs recorded and the
checkpoint (last, best or a step) its test metrics come from. An ensemble directory
(covseg_jax.ensemble) counts as a run; its validation scores come from its val_metrics.json.
Writes results.md, accuracy.csv, class_metrics.csv, kfold.csv and accuracy_vs_paper.png to --out
(default <root>/results) and prints the Markdown.
"""
import argparse
import collections
import csv
import dataclasses
import datetime
import json
import math
import os
import re
import shlex
import sys
from typing import Optional

import numpy as np

from covseg_jax import paper_results, summaries
from covseg_jax.checkpoint import ENSEMBLE_FILE, is_ensemble, is_fold_ensemble
from covseg_jax.evaluate import validation_scalars
from covseg_jax.sweep import RUN_RECORD_FILE

PAPER_IMAGE_SIZE = 256
# Per data.split of fold runs: the heading of their table and the note under it.
FOLD_SECTIONS = {
    "kfold": ("Cross-validation (Table 7)",
              "The paper's five-fold numbers are not available; its single-split numbers are "
              "shown for scale."),
    "paper_kfold": ("Folds of the paper's 82 non-test slices, all tested on its test split",
                    "Every fold is tested on the paper's test slices and validated on its own "
                    "fold of the others, so the folds' test scores compare directly with the "
                    "paper's."),
}
PAPER_EPOCHS = 160
# Features of each network's first stage at full width (the :cpu variants divide them).
FULL_WIDTH = {"segnet": 64, "unet": 64, "highresnet": 16}
# --select: (metrics.jsonl key, which is better).
SELECTIONS = {"val_accuracy": ("val/global_accuracy", max), "val_loss": ("val/loss", min)}
SELECTION_TEXT = {"val_accuracy": "last validation global accuracy",
                  "val_loss": "last validation loss"}
CLASS_METRIC_NAMES = (("sensitivity", "Sens"), ("specificity", "Spec"), ("gmean", "G-mean"),
                      ("dice", "Dice"), ("f2", "F2"), ("jaccard", "Jaccard"))
# Lung metrics of the test metrics' per-image summary, as the lung paper reports them.
LUNG_SUMMARY = (("dsc", "Dice"), ("jaccard", "Jaccard"),
                ("abs_relative_volume_difference", "|relative volume difference|"))
MODEL_NAMES = {"segnet": "SegNet", "unet": "U-Net", "highresnet": "HighResNet"}
# Task: (name, the paper's accuracy table, its class-level table); the lung paper has neither.
TASK_TABLES = {"binary": ("binary", " (Table 3)", " (Table 4)"),
               "multi": ("multi-class", " (Table 5)", " (Table 6)"),
               "lung": ("lung segmentation", "", "")}


@dataclasses.dataclass
class RunResult:
  """One run's config, last validation scalars and test metrics (None while unfinished)."""
  name: str  # Path relative to the root.
  group: str  # The family: the path without its expN and foldK parts.
  experiment: Optional[int]
  config: dict
  val: dict
  test: Optional[dict]
  # The sweep's sweep_run.json (command, device, times) or an ensemble's ensemble.json.
  record: Optional[dict]

  @property
  def label(self):
    """The name, or the family's for a run at the root itself."""
    return self.group if self.name == "." else self.name

  @property
  def fold(self):
    data = self.config["data"]
    if data["split"] not in FOLD_SECTIONS or is_fold_ensemble(self.config):
      return None  # An ensemble over folds is one model tested on the paper's split.
    return data["fold"]

  @property
  def scale(self):
    """(image size, epochs, first-stage features, the same at full width)."""
    model = self.config["model"]
    width = model["features"][0] if "features" in model else model["base_features"]
    return (self.config["data"]["image_size"], self.config["train"]["epochs"], width,
            FULL_WIDTH[model["name"]])

  @property
  def family_key(self):
    return self.config["model"]["name"], self.config["data"]["task"]


def _read_json(path):
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def last_validation(workdir):
  """The final weights' validation scores ({} if none): the last validation entry of
  metrics.jsonl, or for an ensemble, which has no training log, the same scalars from its
  val_metrics.json (with its test-time flips if it uses them)."""
  if not is_ensemble(workdir):
    entries = [e for e in summaries.read_metrics(workdir) if "val/global_accuracy" in e]
    return entries[-1] if entries else {}
  val = _read_json(os.path.join(workdir, "val_metrics.json"))
  return {} if val is None else validation_scalars(val, np.mean(val["per_image_loss"]))


def load_runs(root):
  """Every run under `root`, in path order (experiments and folds numerically)."""
  runs = []
  for workdir, dirnames, filenames in os.walk(root):
    dirnames.sort(key=lambda d: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", d)])
    if "config.json" not in filenames:
      continue
    dirnames.clear()  # A run's subdirectories (checkpoints, report) hold no runs.
    relative = os.path.relpath(workdir, root)
    parts = [] if relative == "." else relative.split(os.sep)
    experiments = [int(p[3:]) for p in parts if re.fullmatch(r"exp\d+", p)]
    family = [p for p in parts if not re.fullmatch(r"(exp|fold)\d+", p)]
    runs.append(RunResult(
        name=relative, group="/".join(family) or os.path.basename(os.path.abspath(root)),
        experiment=experiments[-1] if experiments else None,
        config=_read_json(os.path.join(workdir, "config.json")),
        val=last_validation(workdir),
        test=_read_json(os.path.join(workdir, "test_metrics.json")),
        record=(_read_json(os.path.join(workdir, RUN_RECORD_FILE))
                or _read_json(os.path.join(workdir, ENSEMBLE_FILE)))))
  return runs


def select_best(runs, selection):
  """The run with the best last validation score, or None; ties go to the earlier run."""
  key, better = SELECTIONS[selection]
  candidates = [r for r in runs if math.isfinite(r.val.get(key, math.nan))]
  return better(candidates, key=lambda r: r.val[key]) if candidates else None


def is_reduced(runs):
  return any((size, epochs, width) != (PAPER_IMAGE_SIZE, PAPER_EPOCHS, full)
             for size, epochs, width, full in {r.scale for r in runs})


def scale_label(runs):
  """'reduced: 128x128, 40 epochs, width 16/64' or 'full protocol: 256x256, 160 epochs'."""
  scales = "; ".join(f"{size}x{size}, {epochs} epochs" + (
      f", width {width}/{full}" if width != full else "")
                     for size, epochs, width, full in sorted({r.scale for r in runs}))
  return f"{'reduced' if is_reduced(runs) else 'full protocol'}: {scales}"


def _number(value):
  return "undefined" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _number_or_dash(value):
  """'—' where there is no number to show (e.g. one the paper does not give)."""
  return "—" if value is None else _number(value)


def _mean_std(mean, std):
  if mean is None:
    return "—"
  return _number(mean) if std is None or not math.isfinite(std) else f"{mean:.3f} ± {std:.3f}"


def markdown_table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
  return lines


def accuracy_rows(group, runs, best):
  """Table 3/5 rows (CSV dicts) of the finished paper-split runs."""
  rows = []
  for run in runs:
    paper = paper_results.GLOBAL_ACCURACY.get(run.family_key + (run.experiment,), (None, None))
    rows.append({
        "group": group, "model": run.family_key[0], "task": run.family_key[1], "run": run.label,
        "experiment": run.experiment, "learning_rate": run.config["train"]["learning_rate"],
        "batch_size": run.config["train"]["batch_size"], "image_size": run.scale[0],
        "epochs": run.scale[1], "width": run.scale[2], "reduced": is_reduced([run]),
        "val_global_accuracy": run.val.get("val/global_accuracy"),
        "val_loss": run.val.get("val/loss"),
        "test_accuracy_mean": run.test["global_accuracy_mean"],
        "test_accuracy_std": run.test["global_accuracy_std"],
        "paper_accuracy_mean": paper[0], "paper_accuracy_std": paper[1],
        "selected": run is best})
  return rows


def paper_class_metrics(model, task):
  """(source label, {class: metrics}) of the paper's class-level table for a family."""
  if task == "lung":
    return "Gholamiankhah et al. (own data, per patient)", paper_results.LUNG_METRICS
  experiment = paper_results.best_experiment(model, task)
  if experiment is None:
    return None, {}
  return f"paper: exp {experiment}", paper_results.CLASS_METRICS[(model, task, experiment)]


def class_rows(group, best, selection):
  """Table 4/6 rows: the selected run's foreground classes, each followed by the paper's."""
  model, task = best.family_key
  paper_source, paper = paper_class_metrics(model, task)
  run_source = f"this run: {best.label}"
  rows = []
  for name, measured in list(best.test["classes"].items())[1:]:  # Class 0 is the background.
    base = {"group": group, "model": model, "task": task, "class": name}
    rows.append({**base, "source": run_source, "selection": selection,
                 **{k: measured.get(k) for k, _ in CLASS_METRIC_NAMES}})
    if name in paper:
      rows.append({**base, "source": paper_source, "selection": "",
                   **{k: paper[name].get(k) for k, _ in CLASS_METRIC_NAMES}})
  return rows


def _fold_statistics(values):
  """(mean, std with ddof 1, number defined) over folds, leaving undefined (NaN) values out."""
  values = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
  if not len(values):
    return math.nan, math.nan, 0
  std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
  return float(values.mean()), std, len(values)


def kfold_rows(group, runs):
  """Table 7 rows: per experiment and metric, mean ± std over the finished folds.

  Metrics: the last validation global accuracy and Dice (what an improvement is chosen by),
  then the test ones, with the paper's single-split test numbers beside the latter.
  """
  rows = []
  for experiment in sorted({r.experiment for r in runs}, key=lambda e: e or 0):
    folds = [r for r in runs if r.experiment == experiment]
    model, task = folds[0].family_key
    class_names = list(folds[0].test["classes"])[1:]
    _, paper_classes = paper_class_metrics(model, task)
    if task != "lung" and experiment != paper_results.best_experiment(model, task):
      paper_classes = {}  # The paper gives class metrics of its best experiment only.
    metrics = {"val/global_accuracy": ([r.val.get("val/global_accuracy") for r in folds], None)}
    for name in class_names:
      metrics[f"val/dice/{name}"] = (
          [r.val.get(f"val/dice/{name.replace(' ', '_')}") for r in folds], None)
    metrics["test/global_accuracy"] = (
        [r.test["global_accuracy_mean"] for r in folds],
        paper_results.GLOBAL_ACCURACY.get((model, task, experiment), (None,))[0])
    for name in class_names:
      metrics[f"test/dice/{name}"] = ([r.test["classes"][name]["dice"] for r in folds],
                                      paper_classes.get(name, {}).get("dice"))
    for metric, (values, paper) in metrics.items():
      mean, std, defined = _fold_statistics(values)
      rows.append({"group": group, "model": model, "task": task, "experiment": experiment,
                   "split": folds[0].config["data"]["split"], "folds": len(folds),
                   "num_folds": folds[0].config["data"]["num_folds"],
                   "metric": metric, "mean": mean, "std": std, "defined_folds": defined,
                   "paper_test_split": paper})
  return rows


def provenance(runs):
  """Markdown lines: the sweep or ensemble commands, devices and dates recorded with finished
  runs (an ensemble's members have their own lines in their families)."""
  records = [r.record for r in runs if r.record]
  sweeps = [r for r in records if "sweep_command" in r]
  ensembles = [r for r in records if "members" in r]
  lines = [f"- Command: `{command}`" for command in sorted(
      {r["sweep_command"] for r in sweeps} | {r["command"] for r in ensembles if r["command"]})]
  for device in sorted({r["device"] for r in records}):
    lines.append(f"- Device: {device}")
  dates = sorted([r["started"][:10] for r in sweeps] + [r["finished"][:10] for r in sweeps]
                 + [r["created"][:10] for r in ensembles])
  if dates:
    lines.append(f"- Date: {dates[0] if dates[0] == dates[-1] else f'{dates[0]} to {dates[-1]}'}"
                 + (f" ({sum(r['seconds'] for r in sweeps) / 3600:.2f} h of training in total)"
                    if sweeps else ""))
  evaluated = collections.Counter(_evaluated_with(r.test) for r in runs if r.test)
  if evaluated:
    lines.append("- Test metrics from " + "; ".join(
        f"{what} ({count} run{'s' if count > 1 else ''})" for what, count in evaluated.items())
                 + ".")
  if ensembles:
    sizes = sorted({len(r["members"]) for r in ensembles})
    lines.append(f"- Ensembles of {' or '.join(map(str, sizes))} runs (mean softmax; members "
                 "listed in each ensemble.json).")
  if len(records) < len(runs):
    lines.append(f"- {len(runs) - len(records)} run(s) not made by covseg_jax.sweep or "
                 "covseg_jax.ensemble: their command and device are not recorded.")
  return lines


def _evaluated_with(test):
  """The checkpoint (and flips) a run's test metrics come from, as recorded in them."""
  name = test.get("checkpoint")
  if name is None:
    return "an unrecorded checkpoint"
  what = f"the {name} checkpoint" if name in ("last", "best") else f"the step {name} checkpoint"
  steps = [step for key, step in (("tta_flip", "flip TTA"), ("fill_holes", "hole filling"))
           if test.get(key)]
  if test.get("foreground_threshold", 0.5) != 0.5:
    steps.append(f"foreground threshold {test['foreground_threshold']:g}")
  if test.get("logit_offsets"):
    steps.append(f"logit offsets {_offsets(test['logit_offsets'])}")
  if len(steps) > 2:
    steps = [", ".join(steps[:-1]), steps[-1]]
  return what + (f" with {' and '.join(steps)}" if steps else "")


def _offsets(offsets):
  return "(" + ", ".join(f"{x:g}" for x in offsets) + ")"


def describe_family(run):
  model = run.config["model"]
  width = (f"features {model['features']}" if "features" in model
           else f"base features {model.get('base_features')}")
  if model.get("name") == "unet" and model.get("depth", 2) != 2:  # The paper's U-Nets have depth 2.
    width += f", depth {model['depth']}"
  if model.get("name") == "unet" and model.get("batch_norm"):
    width += ", BatchNorm"
  task_name = TASK_TABLES[run.family_key[1]][0]
  details = [width, model["dtype"]]
  train = run.config.get("train", {})
  if train.get("loss"):
    details.append(f"loss {train['loss']}")
  if train.get("label_smoothing"):
    details.append(f"label smoothing {train['label_smoothing']:g}")
  if train.get("lr_schedule", "piecewise") != "piecewise":
    details.append(f"{train['lr_schedule']} learning-rate schedule")
  if train.get("rotation_degrees"):
    details.append(f"rotation ±{train['rotation_degrees']:g}°")
  if train.get("scale_range"):
    details.append(f"zoom ±{train['scale_range']:g}")
  if train.get("elastic"):
    details.append(f"elastic deformation {train['elastic']:g}")
  if train.get("gamma_range"):
    details.append(f"gamma range {train['gamma_range']:g}")
  if "ensemble" in run.config:
    details.append(f"ensembles of {len(run.config['ensemble']['members'])} runs")
  evaluation = []  # as configured; each run's "Test metrics from" line says what it was tested with
  eval_config = run.config.get("eval", {})
  if eval_config.get("tta_flip"):
    evaluation.append("flip TTA")
  if eval_config.get("fill_holes"):
    evaluation.append("hole filling")
  if eval_config.get("foreground_threshold", 0.5) != 0.5:
    evaluation.append(f"foreground threshold {eval_config['foreground_threshold']:g}")
  if eval_config.get("logit_offsets"):
    evaluation.append(f"logit offsets {_offsets(eval_config['logit_offsets'])}")
  if evaluation:
    details.append("configured evaluation: " + ", ".join(evaluation))
  return f"{MODEL_NAMES.get(model['name'], model['name'])}, {task_name} ({', '.join(details)})"


def family_markdown(group, runs, selection, tables):
  """The Markdown section of one family; appends its CSV rows to `tables`."""
  finished = [r for r in runs if r.test is not None]
  unfinished = [r.label for r in runs if r.test is None]
  task = runs[0].family_key[1]
  _, accuracy_table, class_table = TASK_TABLES[task]
  lines = [f"## {group}: {describe_family(runs[0])}", "",
           f"{len(runs)} run(s), {scale_label(runs)}."
           + (f" Unfinished (no test_metrics.json): {', '.join(unfinished)}." if unfinished
              else "")]
  lines += provenance(finished) + [""]
  paper_split = [r for r in finished if r.fold is None]
  if paper_split:
    best = select_best(paper_split, selection)
    rows = accuracy_rows(group, paper_split, best)
    tables["accuracy"] += rows
    lines += [f"### Global accuracy per {'experiment' if accuracy_table else 'run'}"
              f"{accuracy_table}, {scale_label(paper_split)}", ""]
    lines += markdown_table(
        ["run", "lr", "batch", "val accuracy (last)", "val loss (last)",
         "test accuracy, mean ± std", "paper"],
        [[("**" + row["run"] + "** (selected)") if row["selected"] else row["run"],
          f"{row['learning_rate']:g}", row["batch_size"], _number(row["val_global_accuracy"]),
          _number(row["val_loss"]), _mean_std(row["test_accuracy_mean"], row["test_accuracy_std"]),
          _mean_std(row["paper_accuracy_mean"], row["paper_accuracy_std"])] for row in rows])
    paper_note = ("Paper: Saood & Hatem 2021, same experiment (PROTOCOL.md)."
                  if accuracy_table else "The paper publishes no global accuracy for this task.")
    lines += ["", f"Test accuracy: per-image global accuracy over the test images. {paper_note}",
              ""]
    if best is None and len(paper_split) == 1:  # E.g. an ensemble over folds.
      best, chosen = paper_split[0], (f"The family's only run, {paper_split[0].label}, which "
                                      "has no validation scores.")
    elif best is not None:
      chosen = (f"Best run chosen by the {SELECTION_TEXT[selection]} (never by test): "
                f"{best.label}.")
    if best is None:
      lines += ["No run has validation scores: no best run selected.", ""]
    else:
      rows = class_rows(group, best, selection)
      tables["class_metrics"] += rows
      lines += [f"### Class-level metrics of the best run{class_table}, "
                f"{scale_label([best])}", "",
                f"{chosen} Pooled confusion matrix over its test images.", ""]
      lines += markdown_table(["class", "source"] + [label for _, label in CLASS_METRIC_NAMES],
                              [[row["class"], row["source"]]
                               + [_number_or_dash(row[k]) for k, _ in CLASS_METRIC_NAMES]
                               for row in rows])
      lines += [""]
      lung = best.test.get("lung", {}).get("summary")
      if lung:
        lines += ["Per test image, mean ± std (the lung paper reports these per patient): "
                  + ", ".join(f"{label} {_mean_std(lung[k]['mean'], lung[k]['std'])}"
                              for k, label in LUNG_SUMMARY) + ".", ""]
  for split, (heading, note) in FOLD_SECTIONS.items():
    kfold = [r for r in finished if r.fold is not None and r.config["data"]["split"] == split]
    if not kfold:
      continue
    rows = kfold_rows(group, kfold)
    tables["kfold"] += rows
    lines += [f"### {heading}, {scale_label(kfold)}", ""]
    lines += markdown_table(
        ["experiment", "folds", "metric", "mean ± std over folds", "paper, 18-image test split"],
        [[row["experiment"] or "—", f"{row['folds']}/{row['num_folds']}", row["metric"],
          _mean_std(row["mean"], row["std"])
          + (f" ({row['defined_folds']} defined)" if row["defined_folds"] < row["folds"] else ""),
          _number_or_dash(row["paper_test_split"])]
         for row in rows])
    lines += ["", "Per fold: the last validation scores (val/), and the mean global accuracy "
              "over its test images and pooled Dice (test/). An undefined Dice (class absent "
              f"from a fold's test images and prediction) is left out of the mean. {note}", ""]
  return lines


def accuracy_figure(rows, path):
  """Per family: this sweep's test accuracy per experiment beside the paper's (mean ± std)."""
  import matplotlib  # Imported here: only the figure needs it.
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  groups = sorted({r["group"] for r in rows if r["experiment"] and r["paper_accuracy_mean"]})
  if not groups:
    return False
  columns = min(len(groups), 3)
  rows_of_axes = -(-len(groups) // columns)
  fig, axes = plt.subplots(rows_of_axes, columns, figsize=(4.5 * columns, 3.6 * rows_of_axes),
                           squeeze=False)
  for ax in axes.flat[len(groups):]:
    ax.set_visible(False)
  for ax, group in zip(axes.flat, groups):
    group_rows = [r for r in rows if r["group"] == group and r["experiment"]]
    x = np.asarray([r["experiment"] for r in group_rows], np.float64)
    ax.errorbar(x - 0.12, [r["test_accuracy_mean"] for r in group_rows],
                yerr=np.asarray([r["test_accuracy_std"] for r in group_rows], float), fmt="o",
                capsize=3,
                label="this sweep" + (" (reduced)" if group_rows[0]["reduced"] else ""))
    ax.errorbar(x + 0.12, [r["paper_accuracy_mean"] for r in group_rows],
                yerr=[r["paper_accuracy_std"] for r in group_rows], fmt="s", capsize=3,
                label="paper")
    ax.set(title=group, xlabel="experiment", ylabel="global accuracy", xticks=range(1, 10))
    ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def write_csv(path, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def collect(root, out, selection="val_accuracy", command=None):
  """Writes the tables of every family under `root` to `out`; returns the Markdown text."""
  runs = load_runs(root)
  if not runs:
    raise ValueError(f"no runs (directories with a config.json) under {root}")
  groups = {}
  for run in runs:
    groups.setdefault((run.group,) + run.family_key, []).append(run)
  tables = {"accuracy": [], "class_metrics": [], "kfold": []}
  lines = ["# Results", "",
           f"Made by `{command or 'covseg_jax.results.collect'}` on "
           f"{datetime.date.today().isoformat()} from {len(runs)} run(s) under `{root}`. "
           f"Best runs are chosen by the {SELECTION_TEXT[selection]} in metrics.jsonl, never by "
           f"test. 'Reduced' marks runs below the paper's scale ({PAPER_IMAGE_SIZE}x"
           f"{PAPER_IMAGE_SIZE}, {PAPER_EPOCHS} epochs, full width; 'width 16/64': 16 features "
           "in the first stage where the paper's network has 64).", ""]
  for (group, *_), group_runs in groups.items():
    lines += family_markdown(group, group_runs, selection, tables)
  os.makedirs(out, exist_ok=True)
  for name, rows in tables.items():
    if rows:
      write_csv(os.path.join(out, f"{name}.csv"), rows)
  if tables["accuracy"] and accuracy_figure(tables["accuracy"],
                                            os.path.join(out, "accuracy_vs_paper.png")):
    lines += ["![test accuracy per experiment beside the paper's](accuracy_vs_paper.png)", ""]
  text = "\n".join(lines)
  with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
    f.write(text)
  return text


def main(argv):
  parser = argparse.ArgumentParser(
      prog="python -m covseg_jax.results",
      description="Collect sweeps into the paper's tables (Markdown, CSV, a figure).")
  parser.add_argument("root", help="a sweep directory, or a directory of sweeps")
  parser.add_argument("--out", help="output directory (default: <root>/results)")
  parser.add_argument("--select", choices=sorted(SELECTIONS), default="val_accuracy",
                      help="validation score that picks the best run (default: val_accuracy)")
  options = parser.parse_args(argv)
  out = options.out or os.path.join(options.root, "results")
  try:
    text = collect(options.root, out, options.select,
                   shlex.join(["python", "-m", "covseg_jax.results", *argv]))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(text)
  print(f"\nwritten to {out}/", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
