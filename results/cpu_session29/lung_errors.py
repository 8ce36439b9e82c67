"""Where the lung model's validation errors are, on the twenty-ninth session's five disjoint
:cpu folds of lung_resnet_improved (results/cpu_session29/lung_improved_folds.py), and what
removing connected components of the prediction would gain.

Each fold's validation slices are predicted as the config's final evaluation does (flip TTA, hole
filling, the argmax). Per fold: the true lung pixels, the false positives (and how many of them
lie in predicted components that touch no true lung), the false negatives, the worst slice, and
the pooled lung Dice as predicted, without the worst slice, after keeping each slice's two
largest components, after dropping components under 1 % of the slice's largest, and after
dropping exactly the components that touch no true lung (an oracle: the most any component
filter could gain). Prints Markdown. A fold not yet trained is skipped.
Run from the repository root:
PYTHONPATH=. python results/cpu_session29/lung_errors.py
"""
import os

import numpy as np
from scipy import ndimage

from covseg_jax import checkpoint, evaluate, parallel
from covseg_jax.data import pipeline

ROOT = "runs/s29/lung_resnet_improved_cv_e40"


def dice(truth, predicted):
  return 2 * (truth & predicted).sum() / (truth.sum() + predicted.sum())


def components(mask):
  """Component labels of a 2D mask and each component's size (label k at index k - 1)."""
  labels, n = ndimage.label(mask)
  return labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]


def keep_largest(mask, k=2):
  labels, sizes = components(mask)
  return np.isin(labels, 1 + np.argsort(sizes)[::-1][:k])


def drop_small(mask, fraction=0.01):
  labels, sizes = components(mask)
  return np.isin(labels, 1 + np.flatnonzero(sizes >= fraction * sizes.max())) if len(sizes) else mask


def touching(mask, truth):
  labels, _ = components(mask)
  return np.isin(labels, np.unique(labels[truth & (labels > 0)]))


print("| fold | true lung px | false positives (in components touching no lung) | false negatives "
      "| worst slice: Dice | Dice | without the worst slice | two largest components | components >= 1 % | oracle |")
print("|---|---|---|---|---|---|---|---|---|---|")
mesh = parallel.create_mesh()
for fold in range(5):
  workdir = f"{ROOT}/fold{fold}"
  if not os.path.isdir(workdir):
    continue
  config = checkpoint.load_config(workdir)
  assert config.eval.tta_flip and config.eval.fill_holes, workdir
  dataset = pipeline.load_dataset(config.data)
  run = checkpoint.restore_run(workdir, config.eval.checkpoint, mesh)
  evaluator = evaluate.Evaluator(mesh, run.model.apply, config.train.loss, dataset.class_weights,
                                 config.eval.batch_size, config.eval.tta_flip, config.eval.fill_holes)
  split = dataset.split("val")
  predicted, _ = evaluator(run.variables, split)
  truth, predicted = np.asarray(split.labels) == 1, predicted == 1
  oracle = np.stack([touching(p, t) for p, t in zip(predicted, truth)])
  stray = predicted & ~oracle
  per_slice = [dice(t, p) for t, p in zip(truth, predicted)]
  worst = int(np.argmin(per_slice))
  filtered = {name: np.stack([f(p) for p in predicted])
              for name, f in (("largest", keep_largest), ("small", drop_small))}
  print(f"| {fold} | {truth.sum()} | {(predicted & ~truth).sum()} ({stray.sum()}) "
        f"| {(truth & ~predicted).sum()} | {split.slice_numbers[worst]}: {per_slice[worst]:.3f} "
        f"| {dice(truth, predicted):.4f} "
        f"| {dice(np.delete(truth, worst, 0), np.delete(predicted, worst, 0)):.4f} "
        f"| {dice(truth, filtered['largest']):.4f} "
        f"| {dice(truth, filtered['small']):.4f} | {dice(truth, oracle):.4f} |")
