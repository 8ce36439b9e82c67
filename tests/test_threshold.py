"""threshold: the foreground threshold chosen on validation slices, cross-fitted over runs."""
import numpy as np
import pytest

from configs import segnet_binary_improved
from covseg_jax import evaluate, threshold, train
from tests import helpers
from tests.test_evaluate import trained_run  # A multi-class run, for the refusal.  # noqa: F401
from tests.test_train import tiny_config


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
  config = tiny_config(helpers.data_dir_or_phantoms(tmp_path_factory), segnet_binary_improved)
  workdir = str(tmp_path_factory.mktemp("binary"))
  train.train_and_evaluate(config, workdir)
  return workdir


def counts_with(best):
  """Counts whose Dice peaks at threshold `best`: TP falls slowly, FP fast, from 0.05 on."""
  return {t: (int(1000 - 400 * max(0.0, t - best)), int(2000 * max(0.0, best - t) + 100), 50)
          for t in threshold.GRID}


def test_the_pooled_best_and_the_cross_fitted_thresholds():
  runs = [counts_with(0.8), counts_with(0.8), counts_with(0.3)]
  assert threshold.best_threshold(runs[:2]) == 0.8
  lines = threshold.report(["a", "b", "c"], runs)
  assert "Best pooled threshold: 0.8 " in "\n".join(lines)
  # Run c's own optimum is 0.3, but the others choose 0.8 for it: its Dice falls.
  assert [line[:11] for line in lines[-5:-2]] == ["| a | 0.8 |", "| b | 0.8 |", "| c | 0.8 |"]
  c_before, c_after = (float(x) for x in lines[-3].strip("| ").split(" | ")[2:])
  assert c_after < c_before
  assert lines[-1] == "Cross-fitted: mean change " + (
      f"{np.mean([threshold.dice(r[0.8]) - threshold.dice(r[0.5]) for r in runs]):+.4f}"
      ", up on 2 of 3 runs.")


@pytest.mark.slow
def test_counts_at_one_half_are_the_runs_own_evaluation(binary_run, capsys):
  counts = threshold.foreground_counts(binary_run, "val")
  val = evaluate.evaluate_run(binary_run, splits=["val"], foreground_threshold=0.5)["val"]
  confusion = np.asarray(val["pooled_confusion_matrix"])
  assert counts[0.5] == (confusion[1, 1], confusion[0, 1], confusion[1, 0])
  assert val["tta_flip"] is True  # As segnet_binary_improved evaluates.
  high = evaluate.evaluate_run(binary_run, splits=["val"], foreground_threshold=0.8)["val"]
  assert counts[0.8][0] + counts[0.8][1] == np.asarray(high["pooled_confusion_matrix"])[:, 1].sum()
  assert counts[0.8][0] + counts[0.8][1] <= counts[0.5][0] + counts[0.5][1]

  assert threshold.main([binary_run, binary_run]) == 0
  out = capsys.readouterr().out
  assert out.count("\n| 0.5 | ") == 1 and "Best pooled threshold: " in out
  assert "Cross-fitted: mean change" in out


def test_a_multi_class_run_is_refused_in_one_line(trained_run, capsys):  # noqa: F811
  workdir, _, _ = trained_run
  assert threshold.main([workdir]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "a 'multi' run" in err and err.count("\n") == 1
