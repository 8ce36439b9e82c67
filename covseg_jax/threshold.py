"""Chooses a config's decision rule on the validation slices of its folds: eval.foreground_threshold
for the two-class tasks, eval.logit_offsets for the multi-class one.

  python -m covseg_jax.threshold runs/sweeps/segnet_binary_improved_cv/exp4/fold{0,1,2,3,4}
  python -m covseg_jax.threshold runs/sweeps/segnet_multi_improved_cv/exp7/fold{0,1,2,3,4}

For each run (its run directory, or an ensemble's; all of one task), predicts the split (default
val) as its final evaluation does (its checkpoint, test-time flips and hole filling), labels it
with every candidate rule and scores each by the foreground Dice pooled over the slices (for the
multi-class task, the mean of the three lesion classes' pooled Dice). The candidates:
- two classes: the foreground thresholds of GRID, 0.05 to 0.95 (0.5 is the argmax);
- multi-class: logit offsets (0, g, c, e), each of g, c, e (ground glass, consolidation, pleural
  effusion) from OFFSET_GRID, -3 to 1 (all 0: the argmax). An offset of log w weighs that
  class's softmax by w against the background's. `--offset_classes=1,2` searches the offsets of
  those classes only (here ground glass and consolidation) and holds the others at 0.
It prints the score of every run and of all runs together at each threshold (multi-class: at the
argmax and the ten best offsets), then:
- the rule with the best pooled score over all runs: the value to put in the config;
- cross-fitted, per run: the rule chosen on the other runs' slices alone and this run's Dice at
  it against the argmax's. A run's own slices never choose its rule, so these pairs measure what
  choosing one gains on slices it was not chosen on, as long as the runs validate on different
  slices (folds); runs that share slices with another (seeds on one split) are named in a
  closing line, since their rows are not held out.
Bad input (a missing or incomplete run, runs of different tasks) ends with one `error: ...` line
and exit status 2.
"""
import argparse
import functools
import itertools
import sys

import jax
import numpy as np

from covseg_jax import checkpoint, evaluate, metrics, parallel
from covseg_jax.data import pipeline
from covseg_jax.errors import InputError

GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95; 0.5 is the argmax.
OFFSET_GRID = tuple(round(0.25 * k, 2) for k in range(-12, 5))  # -3 ... 1; 0 is the argmax.


def candidates(num_classes, offset_classes=None):
  """The decision rules tried for a task of `num_classes`; the first is the argmax.

  For the multi-class task, `offset_classes` (default: every class but the background) are the
  classes whose logit offsets are searched; the others' stay 0.
  """
  if num_classes == 2:
    return (0.5,) + tuple(t for t in GRID if t != 0.5)
  searched = range(1, num_classes) if offset_classes is None else sorted(offset_classes)
  rules = [(0.0,) * num_classes]
  for values in itertools.product(OFFSET_GRID, repeat=len(searched)):
    if any(values):
      rule = [0.0] * num_classes
      for c, value in zip(searched, values):
        rule[c] = value
      rules.append(tuple(rule))
  return tuple(rules)


def check_offset_classes(offset_classes, num_classes, where):
  """Raises InputError unless `offset_classes` are distinct foreground classes of a multi-class
  task; `where` names the run."""
  if num_classes == 2:
    raise InputError(f"{where}: --offset_classes applies to multi-class runs; this one has two "
                     "classes (its rule is a foreground threshold)")
  bad = [c for c in offset_classes if not 1 <= c < num_classes]
  if bad or len(set(offset_classes)) != len(offset_classes) or not offset_classes:
    raise InputError(f"{where}: --offset_classes={','.join(map(str, offset_classes))}: need "
                     f"distinct classes from 1 to {num_classes - 1} (0 is the background)")


def labels(logits, rule):
  """evaluate.labels_from_logits with a threshold (float) or logit offsets (tuple)."""
  if isinstance(rule, tuple):
    return evaluate.labels_from_logits(logits, logit_offsets=rule)
  return evaluate.labels_from_logits(logits, rule)


def decision_counts(workdir, split_name, offset_classes=None):
  """(task, rules, counts, slices): counts (len(rules), 3, C) int64 holds the TP, FP and FN of
  every class over `split_name`'s slices under each rule of candidates(C, offset_classes);
  slices are those slices' numbers in the data set.

  The slices are predicted once, from the checkpoint and with the test-time flips of the run's
  final evaluation (eval.checkpoint, eval.tta_flip); each rule then labels them as
  evaluate.labels_from_logits does, and hole filling follows for runs that use it.
  """
  mesh = parallel.create_mesh(jax.devices()[:1])
  which = checkpoint.load_config(workdir).eval.checkpoint
  run = checkpoint.restore_run(workdir, checkpoint.parse_which(which), mesh)
  if offset_classes is not None:
    check_offset_classes(offset_classes, run.num_classes, workdir)
  dataset = pipeline.load_dataset(run.config.data)
  checkpoint.check_split_record(workdir, dataset)
  split = dataset.split(split_name)
  forward = jax.jit(functools.partial(evaluate.predict_logits, run.model.apply,
                                      tta_flip=run.config.eval.get("tta_flip", False)))
  batch, n = run.config.eval.batch_size, len(split.images)
  images = np.concatenate([split.images, np.zeros((-n % batch,) + split.images.shape[1:],
                                                  split.images.dtype)])  # One compilation.
  logits = np.concatenate([np.asarray(forward(run.variables, images[i:i + batch]))
                           for i in range(0, len(images), batch)])[:n]
  classes = run.num_classes
  rules = candidates(classes, offset_classes)
  counts = np.zeros((len(rules), 3, classes), np.int64)
  for k, rule in enumerate(rules):
    predictions = np.asarray(labels(logits, rule))
    if run.config.eval.get("fill_holes", False):
      predictions = evaluate.fill_lung_holes(predictions)
    confusion = metrics.pooled_confusion_matrix(
        metrics.confusion_matrices(split.labels, predictions, classes))
    tp = np.diag(confusion)
    counts[k] = tp, confusion.sum(0) - tp, confusion.sum(1) - tp
  return run.task, rules, counts, np.asarray(split.slice_numbers)


def dice(counts):
  """The foreground classes' Dice (C-1,) of counts (3, C) (NaN for a class nowhere)."""
  tp, fp, fn = np.asarray(counts, np.float64)[:, 1:]
  with np.errstate(invalid="ignore"):
    return 2 * tp / (2 * tp + fp + fn)


def score(counts):
  """The mean foreground Dice of counts (3, C); -inf if no foreground class occurs."""
  values = dice(counts)
  return float(np.mean(values[~np.isnan(values)])) if not np.all(np.isnan(values)) else -np.inf


def best_rule(counts):
  """The index of the rule with the best pooled score of counts (runs, rules, 3, C); ties go to
  the earlier rule (the argmax first)."""
  return int(np.argmax([score(c) for c in counts.sum(0)]))


def _name(rule):
  return f"({', '.join(f'{x:g}' for x in rule)})" if isinstance(rule, tuple) else f"{rule:g}"


def _dice(counts):
  return " / ".join(f"{d:.4f}" for d in dice(counts))


def report(names, rules, counts, slices=None):
  """The Markdown lines of the module docstring's tables; counts (runs, rules, 3, C); slices,
  if given, each run's slice numbers, to name the runs whose cross-fitted rows are not held out.
  """
  counts = np.asarray(counts)
  kind = "offsets" if isinstance(rules[0], tuple) else "threshold"
  pooled = counts.sum(0)
  if kind == "offsets":  # The argmax, then the ten best.
    order = np.argsort([-score(c) for c in pooled], kind="stable")
    shown = [0] + [int(k) for k in order if k != 0][:10]
  else:
    shown = sorted(range(len(rules)), key=lambda k: rules[k])
  lines = [f"| {kind} | " + " | ".join(names) + " | pooled |", "|---" * (len(names) + 2) + "|"]
  for k in shown:
    lines.append(f"| {_name(rules[k])} | " + " | ".join(f"{score(c[k]):.4f}" for c in counts)
                 + f" | {score(pooled[k]):.4f} |")
  chosen = best_rule(counts)
  lines += ["", f"Best pooled {kind}: {_name(rules[chosen])} (Dice {_dice(pooled[chosen])} "
                f"against {_dice(pooled[0])} at the argmax)."]
  if len(counts) > 1:
    lines += ["", f"| run | {kind} chosen on the others | Dice at the argmax | Dice at it |",
              "|---|---|---|---|"]
    gains = []
    for i, name in enumerate(names):
      k = best_rule(np.delete(counts, i, axis=0))
      gains.append(dice(counts[i][k]) - dice(counts[i][0]))
      lines.append(f"| {name} | {_name(rules[k])} | {_dice(counts[i][0])} | "
                   f"{_dice(counts[i][k])} |")
    gains = np.array(gains)
    change = " / ".join(f"{g:+.4f}" for g in np.nanmean(gains, axis=0))
    up = " / ".join(str(int(u)) for u in np.sum(gains > 0, axis=0))
    lines += ["", f"Cross-fitted: mean change {change}, up on {up} of {len(gains)} runs."]
    if slices is not None:
      shared = [name for i, name in enumerate(names)
                if np.isin(slices[i], np.concatenate(slices[:i] + slices[i + 1:])).any()]
      if shared:
        lines += ["", f"Not held out: {', '.join(shared)} share slices with other runs, which "
                      "chose their rule on them too."]
  return lines


def _class_list(text):
  try:
    return tuple(int(c) for c in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"not a comma-separated list of class numbers: {text!r}")


def main(argv):
  parser = argparse.ArgumentParser(
      prog="python -m covseg_jax.threshold",
      description="Choose eval.foreground_threshold (two classes) or eval.logit_offsets "
                  "(multi-class) on the validation slices of several runs.")
  parser.add_argument("runs", nargs="+", help="run (or ensemble) directories of one task")
  parser.add_argument("--split", default="val", choices=("val", "test", "train"),
                      help="the slices to choose on (default: val; choose on val, never on test)")
  parser.add_argument("--offset_classes", type=_class_list, default=None,
                      help="multi-class: search the offsets of these classes only, e.g. 1,2 "
                           "(ground glass, consolidation); the others stay 0 (default: all)")
  options = parser.parse_args(argv)
  try:
    measured = [decision_counts(run, options.split, options.offset_classes)
                for run in options.runs]
    tasks = {task for task, *_ in measured}
    if len(tasks) > 1:
      raise InputError(f"{', '.join(options.runs)}: runs of different tasks "
                       f"({', '.join(sorted(tasks))}); choose a rule for one task at a time")
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  _, rules, _, _ = measured[0]
  counts = np.stack([run_counts for _, _, run_counts, _ in measured])
  print("\n".join(report(options.runs, rules, counts, [slices for *_, slices in measured])))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
