"""threshold: the decision rule (foreground threshold, logit offsets) chosen on validation
slices, cross-fitted over runs."""
import numpy as np
import pytest

from configs import segnet_binary_improved
from covseg_jax import checkpoint, evaluate, threshold, train
from covseg_jax.data import pipeline
from tests import helpers
from tests.test_evaluate import trained_run  # A multi-class run.  # noqa: F401
from tests.test_train import tiny_config


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
  config = tiny_config(helpers.data_dir_or_phantoms(tmp_path_factory), segnet_binary_improved)
  workdir = str(tmp_path_factory.mktemp("binary"))
  train.train_and_evaluate(config, workdir)
  return workdir


def binary_counts_with(best):
  """Counts (rules, 3, 2) whose Dice peaks at threshold `best`: TP falls slowly, FP fast."""
  return np.array([[[0, 1000 - 400 * max(0.0, t - best)],
                    [0, 2000 * max(0.0, best - t) + 100],
                    [0, 50]] for t in threshold.candidates(2)]).astype(np.int64)


def test_the_pooled_best_and_the_cross_fitted_thresholds():
  rules = threshold.candidates(2)
  assert rules[0] == 0.5 and sorted(rules) == list(threshold.GRID)
  runs = np.stack([binary_counts_with(0.8), binary_counts_with(0.8), binary_counts_with(0.3)])
  assert rules[threshold.best_rule(runs[:2])] == 0.8
  lines = threshold.report(["a", "b", "c"], rules, runs)
  assert "Best pooled threshold: 0.8 " in "\n".join(lines)
  assert lines[2].startswith("| 0.05 | ")  # The table in the order of the thresholds.
  # Run c's own optimum is 0.3, but the others choose 0.8 for it: its Dice falls.
  assert [line[:11] for line in lines[-5:-2]] == ["| a | 0.8 |", "| b | 0.8 |", "| c | 0.8 |"]
  c_before, c_after = (float(x) for x in lines[-3].strip("| ").split(" | ")[2:])
  assert c_after < c_before
  k = rules.index(0.8)
  assert lines[-1] == "Cross-fitted: mean change " + (
      f"{np.mean([threshold.dice(r[k])[0] - threshold.dice(r[0])[0] for r in runs]):+.4f}"
      ", up on 2 of 3 runs.")


def test_runs_that_share_slices_are_named_as_not_held_out():
  rules = threshold.candidates(2)
  runs = np.stack([binary_counts_with(0.8)] * 3)
  folds = [np.array([1, 2]), np.array([3, 4]), np.array([5, 6])]
  assert not any(line.startswith("Not held out")
                 for line in threshold.report(["a", "b", "c"], rules, runs, folds))
  seeds = [np.array([1, 2]), np.array([3, 4]), np.array([4, 5])]
  assert threshold.report(["a", "b", "c"], rules, runs, seeds)[-1] == (
      "Not held out: b, c share slices with other runs, which chose their rule on them too.")


def multi_counts_with(best):
  """Counts (rules, 3, 4) whose every lesion class's Dice peaks at the offsets `best`."""
  rules = threshold.candidates(4)
  counts = np.zeros((len(rules), 3, 4), np.int64)
  for k, rule in enumerate(rules):
    distance = np.abs(np.array(rule[1:]) - np.array(best[1:]))
    counts[k, :, 1:] = [np.full(3, 1000), (100 + 300 * distance).astype(int), np.full(3, 50)]
  return counts


def test_the_pooled_best_and_the_cross_fitted_logit_offsets():
  rules = threshold.candidates(4)
  assert rules[0] == (0.0,) * 4 and len(rules) == len(threshold.OFFSET_GRID) ** 3
  assert all(rule[0] == 0 for rule in rules) and len(set(rules)) == len(rules)
  best, other = (0.0, -1.0, -0.5, -2.0), (0.0, 0.5, 0.0, 1.0)
  runs = np.stack([multi_counts_with(best)] * 3 + [multi_counts_with(other)])
  assert rules[threshold.best_rule(runs[:2])] == best
  lines = threshold.report(["a", "b", "c", "d"], rules, runs)
  text = "\n".join(lines)
  assert lines[2].startswith("| (0, 0, 0, 0) | ")  # The argmax, then the ten best.
  assert lines[3].startswith("| (0, -1, -0.5, -2) | ") and lines[13] == ""
  assert "Best pooled offsets: (0, -1, -0.5, -2) (Dice " in text
  assert "| d | (0, -1, -0.5, -2) | " in text  # Chosen by a, b and c, not by d's own optimum.
  change = lines[-1].removeprefix("Cross-fitted: mean change ").split(",")[0].split(" / ")
  assert len(change) == 3 and lines[-1].endswith(", up on 3 / 3 / 3 of 4 runs.")


def test_offsets_searched_for_some_classes_only_hold_the_others_at_zero():
  rules = threshold.candidates(4, offset_classes=(1, 2))
  assert rules[0] == (0.0,) * 4 and len(rules) == len(threshold.OFFSET_GRID) ** 2
  assert all(rule[0] == 0 and rule[3] == 0 for rule in rules) and len(set(rules)) == len(rules)
  assert set(rules) < set(threshold.candidates(4))
  assert threshold.candidates(4, offset_classes=(1, 2, 3)) == threshold.candidates(4)


@pytest.mark.parametrize("classes, problem", [
    ((0, 1), "need distinct classes from 1 to 3"), ((1, 4), "need distinct classes from 1 to 3"),
    ((2, 2), "need distinct classes from 1 to 3")])
def test_offset_classes_outside_the_task_are_refused(classes, problem):
  with pytest.raises(threshold.InputError, match=f"^run: --offset_classes=.*: {problem}"):
    threshold.check_offset_classes(classes, 4, "run")
  with pytest.raises(threshold.InputError, match="^run: --offset_classes applies to multi-class"):
    threshold.check_offset_classes((1,), 2, "run")


def test_decision_counts_of_a_multi_class_run_are_its_own_evaluation(trained_run, capsys):  # noqa: F811
  workdir, _, _ = trained_run
  task, rules, counts, slices = threshold.decision_counts(workdir, "val")
  assert task == "multi" and rules == threshold.candidates(4) and counts.shape == (len(rules), 3, 4)
  for k in (0, 1234):
    val = evaluate.evaluate_run(workdir, splits=["val"], logit_offsets=rules[k])["val"]
    confusion = np.asarray(val["pooled_confusion_matrix"])
    tp = np.diag(confusion)
    np.testing.assert_array_equal(counts[k], [tp, confusion.sum(0) - tp, confusion.sum(1) - tp])
  assert threshold.main([workdir, workdir]) == 0
  out = capsys.readouterr().out
  assert "\n| (0, 0, 0, 0) | " in out and "Best pooled offsets: (0, " in out
  assert "Cross-fitted: mean change" in out
  # The same run twice validates on the same slices: its rows are not held out.
  assert f"\nNot held out: {workdir}, {workdir} share slices with other runs" in out
  assert len(slices) == len(pipeline.load_dataset(
      checkpoint.load_config(workdir).data).split("val").images)

  _, some, some_counts, _ = threshold.decision_counts(workdir, "val", offset_classes=(1, 2))
  assert some == threshold.candidates(4, (1, 2))
  np.testing.assert_array_equal(some_counts, counts[[rules.index(rule) for rule in some]])
  assert threshold.main([workdir, "--offset_classes=1,2"]) == 0
  assert "Best pooled offsets: (0, " in capsys.readouterr().out
  assert threshold.main([workdir, "--offset_classes=1,5"]) == 2
  err = capsys.readouterr().err
  assert err == f"error: {workdir}: --offset_classes=1,5: need distinct classes from 1 to 3 " \
                "(0 is the background)\n"


@pytest.mark.slow
def test_counts_at_one_half_are_the_runs_own_evaluation(binary_run, capsys):
  task, rules, counts, _ = threshold.decision_counts(binary_run, "val")
  assert task == "binary"
  val = evaluate.evaluate_run(binary_run, splits=["val"], foreground_threshold=0.5)["val"]
  confusion = np.asarray(val["pooled_confusion_matrix"])
  assert tuple(counts[0][:, 1]) == (confusion[1, 1], confusion[0, 1], confusion[1, 0])
  assert val["tta_flip"] is True  # As segnet_binary_improved evaluates.
  high = evaluate.evaluate_run(binary_run, splits=["val"], foreground_threshold=0.8)["val"]
  k = rules.index(0.8)
  assert counts[k][0, 1] + counts[k][1, 1] == np.asarray(high["pooled_confusion_matrix"])[:, 1].sum()
  assert counts[k][0, 1] + counts[k][1, 1] <= counts[0][0, 1] + counts[0][1, 1]

  assert threshold.main([binary_run, binary_run]) == 0
  out = capsys.readouterr().out
  assert out.count("\n| 0.5 | ") == 1 and "Best pooled threshold: " in out
  assert "Cross-fitted: mean change" in out


@pytest.mark.slow
def test_runs_of_different_tasks_are_refused_in_one_line(binary_run, trained_run, capsys):  # noqa: F811
  workdir, _, _ = trained_run
  assert threshold.main([binary_run, workdir]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "runs of different tasks (binary, multi)" in err
  assert err.count("\n") == 1
