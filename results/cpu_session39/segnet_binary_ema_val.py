"""configs/segnet_binary_improved.py exp 4 with train.ema_epochs=4 (evaluating an exponential
moving average of the weights and BatchNorm statistics, time constant 4 epochs, a tenth of the
:cpu run, instead of the last step's) on the five disjoint :cpu folds (128x128, 40 epochs),
seeds 0, 1 and 2, each against R38's runs of the config with the same seed, all on the same CPU
(an Intel Xeon with AVX-512; block R39). The average changes no update: the script checks that
every pair's logged training losses are identical, so each comparison is the same trained
network read at its average against its last step. Each fold's validation slices (the
decision), then its test slices, with the config's final evaluation (flip TTA, foreground
threshold 0.8, last checkpoint).

The script checks that each fold's config.json is, field by field,
configs/segnet_binary_improved.py:cpu,exp4 with the sweep's overrides (the fold, the average, the
seed). Run from the repository root:
PYTHONPATH=. python results/cpu_session39/segnet_binary_ema_val.py
"""
import json

from results.cpu_session38.segnet_binary_levers_val import check_and_compare, runs_and_comparisons

CHANGE = "average of 4 epochs"


def training_losses(run):
  with open(f"{run}/metrics.jsonl", encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  return [(r["step"], r["train/loss"]) for r in records if "train/loss" in r]


def check_same_training(runs, comparisons):
  """Asserts that each (average, config) pair of `comparisons` logged the same training losses
  on every fold, and says so."""
  for changed, base in comparisons:
    for fold in range(5):
      a, b = (runs[name][0].format(fold) for name in (changed, base))
      assert training_losses(a) == training_losses(b), (a, b)
  print(f"Training losses: the same at every logged step in all {5 * len(comparisons)} "
        "fold-seed pairs.")


def main():
  runs, comparisons = runs_and_comparisons(CHANGE, "_ema", "--config.train.ema_epochs=4",
                                           root="runs/s39/segnet_binary_improved_cv")
  check_same_training(runs, comparisons)
  check_and_compare(runs, comparisons, CHANGE)


if __name__ == "__main__":
  main()
