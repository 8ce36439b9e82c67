"""Chooses eval.foreground_threshold of a two-class config on the validation slices of its folds.

  python -m covseg_jax.threshold runs/sweeps/segnet_binary_improved_cv/exp4/fold{0,1,2,3,4}

For each run (binary or lung; its run directory, or an ensemble's), predicts the split (default
val) as its final evaluation does (its checkpoint, test-time flips and hole filling)
and prints, for each threshold of a grid, the pooled foreground Dice of every run and of all
runs together, then:
- the threshold with the best pooled Dice over all runs: the value to put in the config;
- cross-fitted, per run: the threshold chosen on the other runs' slices alone and this run's
  Dice at it against the argmax's (0.5). A run's own slices never choose its threshold, so these
  pairs measure what choosing a threshold gains on slices it was not chosen on.
Bad input (a missing or incomplete run, a multi-class run) ends with one `error: ...` line and
exit status 2.
"""
import argparse
import functools
import sys

import jax
import numpy as np

from covseg_jax import checkpoint, evaluate, parallel
from covseg_jax.data import pipeline
from covseg_jax.errors import InputError

GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95; 0.5 is the argmax.


def foreground_counts(workdir, split_name):
  """{threshold: (TP, FP, FN)} of the run's foreground over `split_name`'s slices, for GRID.

  The slices are predicted once, from the checkpoint and with the test-time flips of the run's
  final evaluation (eval.checkpoint, eval.tta_flip); each threshold then labels them as
  evaluate.labels_from_logits does, and hole filling follows for runs that use it.
  """
  mesh = parallel.create_mesh(jax.devices()[:1])
  which = checkpoint.load_config(workdir).eval.checkpoint
  run = checkpoint.restore_run(workdir, checkpoint.parse_which(which), mesh)
  if run.num_classes != 2:
    raise InputError(f"{workdir}: a {run.task!r} run; a foreground threshold is for the "
                     "two-class tasks (binary, lung)")
  split = pipeline.load_dataset(run.config.data).split(split_name)
  forward = jax.jit(functools.partial(evaluate.predict_logits, run.model.apply,
                                      tta_flip=run.config.eval.get("tta_flip", False)))
  batch, n = run.config.eval.batch_size, len(split.images)
  images = np.concatenate([split.images, np.zeros((-n % batch,) + split.images.shape[1:],
                                                  split.images.dtype)])  # One compilation.
  logits = np.concatenate([np.asarray(forward(run.variables, images[i:i + batch]))
                           for i in range(0, len(images), batch)])[:n]
  truth = split.labels == 1
  counts = {}
  for threshold in GRID:
    predictions = np.asarray(evaluate.labels_from_logits(logits, threshold))
    if run.config.eval.get("fill_holes", False):
      predictions = evaluate.fill_lung_holes(predictions)
    predicted = predictions == 1
    counts[threshold] = tuple(int(np.sum(a & b)) for a, b in
                              ((truth, predicted), (~truth, predicted), (truth, ~predicted)))
  return counts


def dice(counts):
  tp, fp, fn = counts
  return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def pooled_dice(runs_counts, threshold):
  return dice(np.sum([c[threshold] for c in runs_counts], axis=0))


def best_threshold(runs_counts):
  return max(GRID, key=lambda t: pooled_dice(runs_counts, t))


def report(names, runs_counts):
  """The Markdown lines of the module docstring's tables."""
  lines = ["| threshold | " + " | ".join(names) + " | pooled |",
           "|---" * (len(names) + 2) + "|"]
  for t in GRID:
    lines.append(f"| {t:g} | " + " | ".join(f"{dice(c[t]):.4f}" for c in runs_counts)
                 + f" | {pooled_dice(runs_counts, t):.4f} |")
  chosen = best_threshold(runs_counts)
  lines += ["", f"Best pooled threshold: {chosen:g} (Dice {pooled_dice(runs_counts, chosen):.4f}"
                f" against {pooled_dice(runs_counts, 0.5):.4f} at 0.5)."]
  if len(runs_counts) > 1:
    lines += ["", "| run | threshold chosen on the others | Dice at 0.5 | Dice at it |",
              "|---|---|---|---|"]
    gains = []
    for i, name in enumerate(names):
      t = best_threshold(runs_counts[:i] + runs_counts[i + 1:])
      before, after = dice(runs_counts[i][0.5]), dice(runs_counts[i][t])
      gains.append(after - before)
      lines.append(f"| {name} | {t:g} | {before:.4f} | {after:.4f} |")
    lines += ["", f"Cross-fitted: mean change {np.mean(gains):+.4f}, up on "
                  f"{sum(g > 0 for g in gains)} of {len(gains)} runs."]
  return lines


def main(argv):
  parser = argparse.ArgumentParser(
      prog="python -m covseg_jax.threshold",
      description="Choose eval.foreground_threshold on the validation slices of several runs.")
  parser.add_argument("runs", nargs="+", help="run (or ensemble) directories of a two-class task")
  parser.add_argument("--split", default="val", choices=("val", "test", "train"),
                      help="the slices to choose on (default: val; choose on val, never on test)")
  options = parser.parse_args(argv)
  try:
    runs_counts = [foreground_counts(run, options.split) for run in options.runs]
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print("\n".join(report(options.runs, runs_counts)))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
