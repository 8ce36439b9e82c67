"""Tests of the paper's split and k-fold cross-validation."""
import json

import numpy as np
import pytest

from covseg_jax.data import medseg
from covseg_jax.data import splits
from covseg_jax.errors import InputError

# The authors' test slices (1-based), confirmed from their stored results.
PAPER_TEST_SLICES = [2, 4, 9, 10, 12, 13, 18, 20, 23, 24, 39, 57, 65, 66, 71, 75, 85, 95]


def _assert_partition(split, n):
  together = np.concatenate([split.train, split.val, split.test])
  assert np.array_equal(np.sort(together), np.arange(n))


def test_computed_paper_split():
  split = splits.computed_paper_split()
  assert (len(split.train), len(split.val), len(split.test)) == (72, 10, 18)
  assert (split.test + 1).tolist() == PAPER_TEST_SLICES
  assert (split.val + 1).tolist() == [1, 15, 19, 26, 36, 43, 44, 73, 82, 94]
  _assert_partition(split, 100)
  # MATLAB's documented example: rng default; randperm(6) gives [6 3 5 1 2 4].
  order = np.argsort(np.random.RandomState(5489).rand(6), kind='stable') + 1
  assert order.tolist() == [6, 3, 5, 1, 2, 4]


def test_computed_split_equals_the_json():
  try:
    data_dir = medseg.find_data_dir()
  except InputError:
    pytest.skip('MedSeg data not found')
  path = data_dir / splits.PAPER_SPLIT_FILE
  if not path.exists():
    pytest.skip(f'{path} not present')
  content = json.loads(path.read_text())
  computed = splits.paper_split_json()
  for key in ('train', 'val', 'test', 'randperm_order'):
    assert computed[key] == content[key], key
  from_file = splits.paper_split(data_dir)
  for part in ('train', 'val', 'test'):
    assert np.array_equal(getattr(from_file, part), getattr(splits.computed_paper_split(), part))


def test_paper_split_reads_and_checks_the_json(tmp_path):
  (tmp_path / splits.PAPER_SPLIT_FILE).write_text(json.dumps(
      {'train': list(range(1, 91)), 'val': list(range(91, 96)), 'test': [96, 97, 98, 99, 100]}))
  split = splits.paper_split(tmp_path)
  assert split.test.tolist() == [95, 96, 97, 98, 99] and len(split.train) == 90
  (tmp_path / splits.PAPER_SPLIT_FILE).write_text(json.dumps(
      {'train': [1, 2], 'val': [2], 'test': [3]}))
  with pytest.raises(InputError, match='partition'):
    splits.paper_split(tmp_path)
  (tmp_path / splits.PAPER_SPLIT_FILE).write_text('{"train": ')
  with pytest.raises(InputError, match='not a split file'):
    splits.paper_split(tmp_path)
  assert splits.paper_split(tmp_path / 'elsewhere').test.tolist() == [
      k - 1 for k in PAPER_TEST_SLICES]


@pytest.mark.parametrize('n', [100, 23])
def test_kfold_tests_partition_the_slices(n):
  folds = [splits.kfold_split(n, 5, fold, seed=1) for fold in range(5)]
  assert np.array_equal(np.sort(np.concatenate([f.test for f in folds])), np.arange(n))
  for fold in folds:
    _assert_partition(fold, n)
  # Each fold validates on slices of the next fold's test set, so the folds validate on
  # different slices.
  for k, fold in enumerate(folds):
    assert np.isin(fold.val, folds[(k + 1) % 5].test).all()
  assert len(np.unique(np.concatenate([f.val for f in folds]))) == sum(len(f.val) for f in folds)
  if n == 100:  # The paper's 70/10/20.
    assert {(len(f.train), len(f.val), len(f.test)) for f in folds} == {(70, 10, 20)}
  with pytest.raises(ValueError):
    splits.kfold_split(n, 5, 5, seed=1)


def test_paper_kfold_folds_the_paper_development_slices_and_keeps_its_test():
  paper = splits.computed_paper_split()
  development = np.concatenate([paper.train, paper.val])
  folds = [splits.paper_kfold_split(paper, 5, fold, seed=0) for fold in range(5)]
  for fold in folds:
    _assert_partition(fold, 100)
    assert np.array_equal(fold.test, paper.test)
  assert np.array_equal(np.sort(np.concatenate([f.val for f in folds])), np.sort(development))
  assert sorted(len(f.val) for f in folds) == [16, 16, 16, 17, 17]
  with pytest.raises(ValueError):
    splits.paper_kfold_split(paper, 5, 5, seed=0)
