"""Other strengths of the L2 regularisation, on the five disjoint :cpu folds (block R41). Every
config keeps the paper's train.l2 = 1e-4 (MATLAB's L2Regularization: 1e-4 * w added to the
gradients of every weight but the convolution biases), chosen for the paper's loss and never
varied since: here none (train.l2 = 0) and ten times as much (train.l2 = 1e-3), seed 0, for
  - configs/segnet_binary_improved.py exp 4 (128x128, 40 epochs), against R38's run of the config
    with the same seed; L2 0, the one above it with seed 0, with seeds 1 and 2 as well;
  - configs/lung_unet.py (128x128, 40 epochs), against R35's run of the config with the same
    seed; L2 0, above it with seed 0, with seeds 1 and 2 as well.
All on the same folds and the same CPU (an Intel Xeon with AVX-512). Each fold's validation
slices (the decision), then its test slices, with each config's final evaluation (binary: flip
TTA, foreground threshold 0.8; lung: flip TTA and hole filling; last checkpoint).

The script checks that each fold's config.json is, field by field, the config with the sweep's
overrides (the fold, the epochs, the seed, the L2 strength). Run from the repository root:
PYTHONPATH=. python results/cpu_session41/l2_val.py
"""
from results.cpu_session35.lung_unet_levers_val import check_and_tabulate, fold_table, seeds_line
from results.cpu_session37.lung_unet_lesion_class_val import seed_runs
from results.cpu_session38.segnet_binary_levers_val import check_and_compare, runs_and_comparisons

R41 = "runs/s41"
CHANGES = {"L2 0": ("_l2_0", "--config.train.l2=0"),  # name: (the sweep's suffix, its override)
           "L2 1e-3": ("_l2_1e-3", "--config.train.l2=1e-3")}


def merged(pairs):
  """The union of (runs, comparisons) pairs."""
  runs, comparisons = {}, ()
  for change_runs, change_comparisons in pairs:
    runs.update(change_runs)
    comparisons += change_comparisons
  return runs, comparisons


def main():
  print("# segnet_binary_improved, seed 0")
  check_and_compare(*merged(
      runs_and_comparisons(change, suffix, override, root=f"{R41}/segnet_binary_improved_cv",
                           seeds=(0,))
      for change, (suffix, override) in CHANGES.items()))
  print("\n# segnet_binary_improved with L2 0, seeds 0, 1 and 2")
  check_and_compare(*runs_and_comparisons("L2 0", *CHANGES["L2 0"],
                                          root=f"{R41}/segnet_binary_improved_cv"), "L2 0")
  print("\n# lung_unet, seed 0")
  runs, comparisons = merged(
      seed_runs(change, f"{R41}/lung_unet_cv_e40{suffix}", override, seeds=(0,))
      for change, (suffix, override) in CHANGES.items())
  check_and_tabulate(runs, lambda split: fold_table(split, runs, comparisons))
  print("\n# lung_unet with L2 0, seeds 0, 1 and 2")
  runs, comparisons = seed_runs("L2 0", f"{R41}/lung_unet_cv_e40_l2_0", CHANGES["L2 0"][1])
  check_and_tabulate(runs, lambda split: seeds_line(fold_table(split, runs, comparisons),
                                                     comparisons, "L2 0"))


if __name__ == "__main__":
  main()
