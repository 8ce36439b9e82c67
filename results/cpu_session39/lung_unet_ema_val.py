"""configs/lung_unet.py with train.ema_epochs=4 (evaluating an exponential moving average of the
weights and BatchNorm statistics, time constant 4 epochs, instead of the last step's) on the
five disjoint :cpu lung folds (128x128, 40 epochs), seeds 0, 1 and 2, each against R35's runs of
lung_unet with the same seed, all on the same CPU (an Intel Xeon with AVX-512; block R39). The
script checks that every pair logged the same training losses, so each comparison is one
trained network read at its average and at its last step. Each fold's validation slices (the
decision), then its test slices, with the config's final evaluation (flip TTA and hole filling,
last checkpoint).

The script checks that each fold's config.json is, field by field, configs/lung_unet.py:cpu with
the sweep's overrides (the fold, 40 epochs, the average, the seed). Run from the repository root:
PYTHONPATH=. python results/cpu_session39/lung_unet_ema_val.py
"""
from results.cpu_session35.lung_unet_levers_val import check_and_tabulate, fold_table, seeds_line
from results.cpu_session37.lung_unet_lesion_class_val import seed_runs
from results.cpu_session39.segnet_binary_ema_val import CHANGE, check_same_training

RUNS, COMPARISONS = seed_runs(CHANGE, "runs/s39/lung_unet_cv_e40_ema", "--config.train.ema_epochs=4")


def table(split):
  dice = fold_table(split, RUNS, COMPARISONS)
  seeds_line(dice, COMPARISONS, CHANGE)


def main():
  check_same_training(RUNS, COMPARISONS)
  check_and_tabulate(RUNS, table)


if __name__ == "__main__":
  main()
