"""Evaluation: predict a split with a trained model, compute the papers' metrics, write the report.

  python -m covseg_jax.main --workdir=runs/segnet_multi --mode=evaluate \
      [--checkpoint=best|last|STEP] [--split=test|val] [--tta_flip] [--fill_holes] \
      [--foreground_threshold=T]

Training ends with the same evaluation (`evaluate_and_report`), so every trained run has its
report; `evaluate_run` repeats it from the run directory alone.
"""
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from scipy import ndimage

from covseg_jax import checkpoint, losses, metrics, parallel, report
from covseg_jax.data import pipeline, preprocess
from covseg_jax.errors import InputError

# Pooled class-level metrics of the paper's Tables 4 and 6, plus precision and Jaccard.
POOLED_METRICS = ("sensitivity", "specificity", "precision", "gmean", "dice", "f2", "jaccard")
# Per-image class metrics kept for the per-image CSV and the box plots.
PER_IMAGE_METRICS = ("dice", "sensitivity", "specificity")
LUNG_METRICS = ("dsc", "jaccard", "fp_ratio", "fn_ratio", "me", "mae",
                "relative_mean_intensity_difference", "abs_relative_mean_intensity_difference",
                "relative_volume_difference", "abs_relative_volume_difference")


def predict_logits(apply_fn, variables, images, tta_flip=False):
  """Float32 logits (B,S,S,C) of a batch.

  tta_flip: test-time augmentation with the training flip: the log of the mean of the softmax
  of each image and of its top-bottom mirror (mirrored back), both in one forward pass.
  """
  if not tta_flip:
    return apply_fn(variables, images, train=False).astype(jnp.float32)
  both = apply_fn(variables, jnp.concatenate([images, images[:, ::-1]]), train=False)
  plain, mirrored = jnp.split(jax.nn.softmax(both.astype(jnp.float32), axis=-1), 2)
  return jnp.log((plain + mirrored[:, ::-1]) / 2)


def labels_from_logits(logits, foreground_threshold=0.5, logit_offsets=()):
  """Class labels (...) int32 of logits (..., C): the argmax; for two classes with a threshold
  other than 0.5, 1 where the softmax of class 1 exceeds it; with logit_offsets (C floats), the
  argmax of logits + offsets, i.e. of the log-softmax with each class's log-prior shifted."""
  if len(logit_offsets):
    if len(logit_offsets) != logits.shape[-1]:
      raise ValueError(f"{len(logit_offsets)} logit offsets for {logits.shape[-1]} classes")
    return jnp.argmax(logits + jnp.asarray(logit_offsets, logits.dtype), axis=-1).astype(jnp.int32)
  if foreground_threshold == 0.5:  # The argmax itself, bit for bit.
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  if logits.shape[-1] != 2:
    raise ValueError(f"a foreground threshold needs two classes, not {logits.shape[-1]}")
  return (jax.nn.softmax(logits, axis=-1)[..., 1] > foreground_threshold).astype(jnp.int32)


def decision_problem(foreground_threshold, logit_offsets, task):
  """Why eval.foreground_threshold or eval.logit_offsets does not suit a run of `task`, or None.

  The threshold is the two-class tasks' decision rule, the offsets the multi-class task's."""
  classes = preprocess.num_classes(task)
  if not 0 < foreground_threshold < 1:
    return f"eval.foreground_threshold={foreground_threshold} must be in (0, 1)"
  if foreground_threshold != 0.5 and classes != 2:
    return (f"eval.foreground_threshold={foreground_threshold} is for the two-class tasks "
            f"(binary, lung), not data.task={task!r}; use eval.logit_offsets")
  if len(logit_offsets) and classes == 2:
    return (f"eval.logit_offsets={tuple(logit_offsets)} is for the multi-class task, not "
            f"data.task={task!r}; use eval.foreground_threshold")
  if len(logit_offsets) not in (0, classes) or not all(
      isinstance(x, (int, float)) and np.isfinite(x) for x in logit_offsets):
    return (f"eval.logit_offsets={tuple(logit_offsets)} must be {classes} finite numbers, one "
            f"per class of data.task={task!r}, or ()")
  return None


def fill_lung_holes(predictions):
  """Lung masks (..., H, W) with the enclosed holes of each slice's class 1 filled.

  A hole is background that no path of background pixels connects to the slice's border: in a
  lung mask, a lesion or vessel the network left out although lung surrounds it.
  """
  predictions = np.asarray(predictions)
  flat = predictions.reshape((-1,) + predictions.shape[-2:])
  filled = np.stack([ndimage.binary_fill_holes(p == 1) for p in flat])
  return np.where(filled.reshape(predictions.shape), 1, predictions).astype(predictions.dtype)


def eval_step(variables, images, labels, class_weights, *, apply_fn, loss_name, tta_flip=False,
              foreground_threshold=0.5, logit_offsets=()):
  """Predictions (B,S,S) int32 (labels_from_logits) and per-image losses (B,) for a batch
  (predict_logits)."""
  logits = predict_logits(apply_fn, variables, images, tta_flip)
  per_image_loss = jax.vmap(
      lambda l, y: losses.compute_loss(loss_name, l[None], y[None], class_weights))(logits, labels)
  return labels_from_logits(logits, foreground_threshold, logit_offsets), per_image_loss


class Evaluator:
  """Runs eval_step over a whole split in fixed-size, padded, sharded batches.

  Each process puts only its rows of a batch on its devices (parallel.process_batch_rows);
  every process gets the whole batch's predictions back. tta_flip: as in predict_logits;
  foreground_threshold, logit_offsets: as in labels_from_logits; fill_holes: the predictions
  pass through `fill_lung_holes` (lung task).
  """

  def __init__(self, mesh, apply_fn, loss_name, class_weights, batch_size, tta_flip=False,
               fill_holes=False, foreground_threshold=0.5, logit_offsets=()):
    num_devices = mesh.devices.size
    self.batch_size = -(-batch_size // num_devices) * num_devices  # Round up to the mesh.
    self.mesh, self.tta_flip, self.fill_holes = mesh, bool(tta_flip), bool(fill_holes)
    self.foreground_threshold = float(foreground_threshold)
    self.logit_offsets = tuple(float(x) for x in logit_offsets)
    self.rows = parallel.process_batch_rows(self.batch_size, mesh)
    self.class_weights = parallel.replicate(np.asarray(class_weights), mesh)
    replicated = parallel.replicated_sharding(mesh)
    self._step = jax.jit(functools.partial(eval_step, apply_fn=apply_fn, loss_name=loss_name,
                                           tta_flip=tta_flip,
                                           foreground_threshold=self.foreground_threshold,
                                           logit_offsets=self.logit_offsets),
                         out_shardings=(replicated, replicated))

  def __call__(self, variables, split):
    """(predictions (N,S,S) int32, per-image losses (N,)) as host arrays.

    variables: {'params', 'batch_stats'} on the mesh; split: a pipeline.SplitArrays.
    """
    n = len(split.images)
    padded = -(-n // self.batch_size) * self.batch_size  # Whole batches: one compilation.
    images, labels = (np.concatenate([x, np.zeros((padded - n,) + x.shape[1:], x.dtype)])
                      for x in (split.images, split.labels))
    predictions, image_losses = [], []
    for start in range(0, padded, self.batch_size):
      rows = start + self.rows  # This process's share of the batch.
      preds, batch_losses = self._step(
          variables, parallel.global_batch_from_local(images[rows], self.mesh, self.batch_size),
          parallel.global_batch_from_local(labels[rows], self.mesh, self.batch_size),
          self.class_weights)
      predictions.append(np.asarray(preds))
      image_losses.append(np.asarray(batch_losses))
    predictions = np.concatenate(predictions)[:n]
    if self.fill_holes:
      predictions = fill_lung_holes(predictions)
    return predictions, np.concatenate(image_losses)[:n]


def split_metrics(labels, predictions, num_classes, class_names):
  """The paper's numbers for one split: per-image global accuracy (mean, std) and pooled
  class-level metrics (sensitivity, specificity, G-mean, Dice, F2, ...)."""
  confusion = np.asarray(metrics.confusion_matrices(labels, predictions, num_classes))
  return _confusion_metrics(confusion, class_names)


def validation_scalars(split_results, loss):
  """The scalars a validation logs (metrics.jsonl, TensorBoard, best-checkpoint choice):
  'val/loss' (`loss`, the mean per-image loss), 'val/global_accuracy' and 'val/dice/<class>'
  (spaces as _), from split_metrics' (or compute_results') dict."""
  scalars = {"val/loss": float(loss), "val/global_accuracy": split_results["global_accuracy_mean"]}
  scalars.update({f"val/dice/{name.replace(' ', '_')}": m["dice"]
                  for name, m in split_results["classes"].items()})
  return scalars


def _confusion_metrics(confusion, class_names):
  """split_metrics from per-image confusion matrices (N, C, C)."""
  pooled_confusion = metrics.pooled_confusion_matrix(confusion)
  pooled = metrics.class_metrics(pooled_confusion)
  accuracy = metrics.class_metrics(confusion)["global_accuracy"]
  return {
      "num_images": int(len(confusion)),
      "global_accuracy_mean": float(accuracy.mean()),
      "global_accuracy_std": float(accuracy.std(ddof=1)) if len(accuracy) > 1 else math.nan,
      "per_image_global_accuracy": accuracy.tolist(),
      "pooled_confusion_matrix": pooled_confusion.tolist(),
      "classes": {name: {key: float(pooled[key][c]) for key in POOLED_METRICS}
                  for c, name in enumerate(class_names)},
  }


def compute_results(split, predictions, losses_per_image, task, class_names):
  """Everything the report shows for one split, as plain Python values (NaN = undefined).

  `split_metrics`' keys, plus 'task', 'class_names', 'slice_numbers', 'per_image_loss',
  'per_image' {metric: {class: [...]}}, per class 'per_image_dice' {mean, std, count} over the
  images where Dice is defined, and for the lung task 'lung' {'per_image', 'summary'}.
  """
  confusion = np.asarray(
      metrics.confusion_matrices(split.labels, predictions, len(class_names)))
  results = _confusion_metrics(confusion, class_names)
  per_image = metrics.class_metrics(confusion)
  dice_summary = metrics.summarize(per_image["dice"])
  for c, name in enumerate(class_names):
    results["classes"][name]["per_image_dice"] = {
        key: float(dice_summary[key][c]) for key in ("mean", "std", "count")}
  results.update({
      "task": task,
      "class_names": list(class_names),
      "slice_numbers": [int(s) for s in split.slice_numbers],
      "per_image_loss": np.asarray(losses_per_image, np.float64).tolist(),
      "per_image": {key: {name: per_image[key][:, c].tolist() for c, name in enumerate(class_names)}
                    for key in PER_IMAGE_METRICS},
  })
  if task == "lung":
    # Intensities are the resized but un-normalised inputs (8-bit for the PNG sources, not HU).
    lung = metrics.lung_metrics(split.labels, predictions, split.raw)
    results["lung"] = {
        "per_image": {key: np.asarray(lung[key], np.float64).tolist() for key in LUNG_METRICS},
        "summary": {key: {k: float(v) for k, v in metrics.summarize(lung[key]).items()}
                    for key in LUNG_METRICS},
    }
  return results


def evaluate_and_report(workdir, config, split, evaluator, variables, *, split_name,
                        checkpoint_name, step, task, class_names):
  """Predicts `split`, writes <workdir>/<split>_metrics.json and <workdir>/report/; returns results.

  checkpoint_name: 'best', 'last' or the step, recorded with the results (and the evaluator's
  test-time flips, hole filling, foreground threshold and logit offsets).
  """
  predictions, image_losses = evaluator(variables, split)
  results = compute_results(split, predictions, image_losses, task, class_names)
  results.update({"split": split_name, "checkpoint": str(checkpoint_name), "step": int(step),
                  "tta_flip": evaluator.tta_flip, "fill_holes": evaluator.fill_holes,
                  "foreground_threshold": evaluator.foreground_threshold,
                  "logit_offsets": list(evaluator.logit_offsets)})
  if jax.process_index() == 0:
    path = os.path.join(workdir, f"{split_name}_metrics.json")
    with open(path, "w", encoding="utf-8") as f:
      json.dump(report.json_ready(results), f, indent=2)
    report_dir = report.write_report(workdir, config, results, split, predictions)
    logging.info("%s (%s checkpoint, step %d): global accuracy %.4f +- %.4f; dice %s -> %s, %s",
                 split_name, checkpoint_name, step, results["global_accuracy_mean"],
                 results["global_accuracy_std"],
                 ", ".join(f"{k} {v['dice']:.3f}" for k, v in results["classes"].items()),
                 path, report_dir)
  return results


def evaluate_run(workdir, which=None, splits=None, mesh=None, tta_flip=None, fill_holes=None,
                 foreground_threshold=None, logit_offsets=None, run=None):
  """Restores a run from `workdir` alone, evaluates splits and writes their reports.

  Args:
    workdir: a training run's directory.
    which: 'best', 'last' or a step number; None takes the run's eval.checkpoint.
    splits: names among 'test', 'val' and 'train', evaluated with one restore and one
      compilation; None takes the run's eval.split.
    mesh: devices to evaluate on; all by default.
    tta_flip: test-time flips (predict_logits); None takes the run's eval.tta_flip.
    fill_holes: fill the predicted lungs' holes (`fill_lung_holes`); None takes the run's
      eval.fill_holes. Lung runs only.
    foreground_threshold: labels_from_logits' threshold; None takes the run's
      eval.foreground_threshold (0.5 for runs from before it existed). Two-class runs only.
    logit_offsets: labels_from_logits' offsets, one per class; None takes the run's
      eval.logit_offsets (() for runs from before they existed). Multi-class runs only.
    run: the checkpoint.Run of `workdir` at `which`, where the caller has just restored it
      (ensemble.create); None restores it.

  Returns:
    {split: the results dict (see `compute_results`)}, each also written to
    <workdir>/<split>_metrics.json.
  """
  config = checkpoint.load_config(workdir)
  which = checkpoint.parse_which(config.eval.checkpoint if which is None else which)
  splits = [config.eval.split] if splits is None else list(splits)
  for split_name in splits:
    checkpoint.check_split(workdir, config, split_name)
  tta_flip = config.eval.get("tta_flip", False) if tta_flip is None else tta_flip
  fill_holes = config.eval.get("fill_holes", False) if fill_holes is None else fill_holes
  if fill_holes and config.data.task != "lung":
    raise InputError(f"{workdir}: a {config.data.task!r} run; hole filling is for lung runs")
  if foreground_threshold is None:
    foreground_threshold = config.eval.get("foreground_threshold", 0.5)
  if logit_offsets is None:
    logit_offsets = tuple(config.eval.get("logit_offsets", ()))
  problem = decision_problem(foreground_threshold, logit_offsets, config.data.task)
  if problem:
    raise InputError(f"{workdir}: {problem}")
  dataset = pipeline.load_dataset(config.data)
  checkpoint.check_split_record(workdir, dataset)
  mesh = parallel.create_mesh() if mesh is None else mesh
  if run is None:
    run = checkpoint.restore_run(workdir, which, mesh)
  evaluator = Evaluator(mesh, run.model.apply, run.config.train.loss, dataset.class_weights,
                        run.config.eval.batch_size, tta_flip, fill_holes, foreground_threshold,
                        logit_offsets)
  return {split_name: evaluate_and_report(
              workdir, run.config, dataset.split(split_name), evaluator, run.variables,
              split_name=split_name, checkpoint_name=which, step=run.step, task=run.task,
              class_names=run.class_names)
          for split_name in splits}
