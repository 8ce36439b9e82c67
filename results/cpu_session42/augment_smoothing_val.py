"""Random elastic deformation and label smoothing on the five disjoint :cpu folds (block R42).

  - train.elastic = 0.02 (a 5x5 grid of control points moved by normal draws with a standard
    deviation of 2% of the image's side, bicubically interpolated; augment.random_displacement):
    configs/segnet_binary_improved.py exp 4 (128x128, 40 epochs), seeds 0, 1 and 2, against R38's
    runs of the config with the same seeds; configs/lung_unet.py (128x128, 40 epochs), seeds 0
    and 1, against R35's runs with the same seeds (seed 2 was stopped: the first two lost).
  - train.label_smoothing = 0.1 (the cross-entropy's targets 0.95 / 0.05 instead of 1 / 0):
    segnet_binary_improved exp 4, seeds 0, 1 and 2, against R38's runs. lung_unet trains with the
    Dice loss alone, which has no cross-entropy to smooth.
All on the same folds and the same CPU (an Intel Xeon with AVX-512). Each fold's validation
slices (the decision), then its test slices, with each config's final evaluation (binary: flip
TTA, foreground threshold 0.8; lung: flip TTA and hole filling; last checkpoint).

The script checks that each fold's config.json is, field by field, the config with the sweep's
overrides (the fold, the epochs, the seed, the change). Run from the repository root:
PYTHONPATH=. python results/cpu_session42/augment_smoothing_val.py
"""
from results.cpu_session35.lung_unet_levers_val import check_and_tabulate, fold_table, seeds_line
from results.cpu_session37.lung_unet_lesion_class_val import seed_runs
from results.cpu_session38.segnet_binary_levers_val import check_and_compare, runs_and_comparisons

R42 = "runs/s42"
CHANGES = {"elastic 0.02": ("_elastic", "--config.train.elastic=0.02"),  # (suffix, override)
           "label smoothing 0.1": ("_smooth", "--config.train.label_smoothing=0.1")}


def main():
  for change, (suffix, override) in CHANGES.items():
    print(f"# segnet_binary_improved with {change}, seeds 0, 1 and 2")
    check_and_compare(*runs_and_comparisons(change, suffix, override,
                                            root=f"{R42}/segnet_binary_improved_cv"), change)
    print()
  print("# lung_unet with elastic 0.02, seeds 0 and 1")
  change, (suffix, override) = "elastic 0.02", CHANGES["elastic 0.02"]
  runs, comparisons = seed_runs(change, f"{R42}/lung_unet_cv_e40{suffix}", override, seeds=(0, 1))
  check_and_tabulate(runs, lambda split: seeds_line(fold_table(split, runs, comparisons),
                                                     comparisons, change))


if __name__ == "__main__":
  main()
