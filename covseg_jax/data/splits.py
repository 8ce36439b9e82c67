"""Train/validation/test splits of the slices: the paper's exact split and k-fold ones.

data.split names one of SPLITS: 'paper' (the authors' 72/10/18), 'kfold' (five folds whose test
sets partition the 100 slices: cross-validation) or 'paper_kfold' (the paper's 18 test slices
in every fold, the other 82 cut into validation folds: models to ensemble over folds).

All splits hold sorted 0-based indices into the slice axis; the paper and
paper_split.json number slices from 1.
"""
import dataclasses
import json
import pathlib

import numpy as np

from covseg_jax.errors import InputError

PAPER_NUM_SLICES = 100
PAPER_SPLIT_FILE = 'paper_split.json'
# MATLAB's rng(0) is a Mersenne Twister seeded with 5489, the same generator as
# numpy's RandomState(5489); randperm(n) is the stable argsort of rand(1, n).
_MATLAB_RNG0_SEED = 5489
_PAPER_SIZES = (72, 10, 18)
SPLITS = ('paper', 'kfold', 'paper_kfold')


@dataclasses.dataclass(frozen=True)
class Split:
  """Sorted 0-based slice indices of each subset."""
  train: np.ndarray
  val: np.ndarray
  test: np.ndarray


def _sorted_split(train, val, test):
  return Split(*(np.sort(np.asarray(part, dtype=np.int64)) for part in (train, val, test)))


def paper_randperm():
  """0-based `randperm(100)` after MATLAB's `rng(0)`, as in the authors' partitionData.m."""
  rand = np.random.RandomState(_MATLAB_RNG0_SEED).rand(PAPER_NUM_SLICES)
  return np.argsort(rand, kind='stable')


def computed_paper_split():
  """The paper's split computed from the permutation: 72 train, 10 val, 18 test."""
  order = paper_randperm()
  n_train, n_val, _ = _PAPER_SIZES
  return _sorted_split(order[:n_train], order[n_train:n_train + n_val],
                       order[n_train + n_val:])


def paper_split_json():
  """The contents of paper_split.json (1-based slice numbers) for the computed split."""
  split = computed_paper_split()
  return {
      'source': ('Saood & Hatem 2021 (BMC Med Imaging 21:19), partitionData.m: rng(0); '
                 'p = randperm(100); train = p(1:72), val = p(73:82), test = p(83:100). '
                 'Emulated as the stable argsort of numpy RandomState(5489).rand(100). '
                 'Numbers are 1-based slices on the third axis of tr_mask.nii.gz.'),
      'train': (split.train + 1).tolist(),
      'val': (split.val + 1).tolist(),
      'test': (split.test + 1).tolist(),
      'randperm_order': (paper_randperm() + 1).tolist(),
  }


def _read_split_json(path):
  """Reads and checks a split file with 1-based 'train', 'val' and 'test' lists."""
  try:
    content = json.loads(path.read_text())
    parts = [np.asarray(content[key], dtype=np.int64) - 1 for key in ('train', 'val', 'test')]
    indices = np.concatenate(parts)
  except OSError as e:
    raise InputError(f'{path}: cannot read ({e.strerror or e})') from None
  except (ValueError, TypeError, KeyError) as e:
    raise InputError(f'{path}: not a split file with train/val/test lists ({e!r})') from None
  if (indices.ndim != 1 or len(indices) != PAPER_NUM_SLICES
      or not np.array_equal(np.sort(indices), np.arange(PAPER_NUM_SLICES))):
    raise InputError(f'{path}: train/val/test must partition slices 1..{PAPER_NUM_SLICES}')
  return _sorted_split(*parts)


def paper_split(data_dir=None):
  """The authors' split: from `data_dir`/paper_split.json when present, else computed."""
  if data_dir is not None:
    path = pathlib.Path(data_dir) / PAPER_SPLIT_FILE
    if path.exists():
      return _read_split_json(path)
  return computed_paper_split()


def kfold_split(n, num_folds, fold, seed, val_fraction=0.1):
  """Fold `fold` of a seeded k-fold cross-validation (the paper's five folds: 70/10/20).

  The test sets of the folds partition range(n); validation takes the first
  round(val_fraction * n) slices of the next fold (fold + 1, cyclically; on into the fold after
  it if that is too small) and training the rest. So while a fold holds at least that many
  slices, the folds' validation sets are disjoint too, and the folds validate on different
  slices. (Before 2026-12-05 validation started at the first other fold, so folds 1 to
  num_folds - 1 all validated on the first slices of fold 0; folds 0 and num_folds - 1 are
  unchanged.)
  """
  if not 2 <= num_folds <= n or not 0 <= fold < num_folds:
    raise ValueError(f'need 2 <= num_folds <= n and 0 <= fold < num_folds: '
                     f'n={n}, num_folds={num_folds}, fold={fold}')
  order = np.random.default_rng(seed).permutation(n)
  folds = np.array_split(order, num_folds)
  rest = np.concatenate(folds[fold + 1:] + folds[:fold])
  n_val = round(val_fraction * n)
  if not 0 <= n_val < len(rest):
    raise ValueError(f'val_fraction={val_fraction} leaves no training slices')
  return _sorted_split(rest[n_val:], rest[:n_val], folds[fold])


def paper_kfold_split(paper, num_folds, fold, seed):
  """Fold `fold` of a seeded k-fold split of the `paper` split's training and validation
  slices (82 for the authors'), with the paper's test slices as every fold's test set.

  The validation sets of the folds partition those slices (about 16 each for five folds) and
  training takes the rest, so each fold's model learns from different slices and all are tested
  on the same ones: covseg_jax.ensemble combines them into an ensemble over folds.
  """
  development = np.concatenate([paper.train, paper.val])
  if not 2 <= num_folds <= len(development) or not 0 <= fold < num_folds:
    raise ValueError(f'need 2 <= num_folds <= {len(development)} and 0 <= fold < num_folds: '
                     f'num_folds={num_folds}, fold={fold}')
  folds = np.array_split(np.random.default_rng(seed).permutation(development), num_folds)
  train = np.concatenate(folds[:fold] + folds[fold + 1:])
  return _sorted_split(train, folds[fold], paper.test)
