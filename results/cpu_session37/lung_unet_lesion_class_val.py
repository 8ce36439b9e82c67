"""configs/lung_unet.py trained with data.lesion_class on the five disjoint :cpu lung folds
(128x128, 40 epochs): the network trains on three classes (outside the lung, lung without
lesion, lesion inside the lung) and predicts the lung as the last two merged, so that densely
consolidated lung, which the lung model misses (RESULTS.md, R29 and R30), is a class of its own
rather than lung that looks like soft tissue. Seeds 0, 1 and 2, each against lung_unet with the
same seed, trained on the same folds and the same CPU (an Intel Xeon with AVX-512) in block R35.
Each fold's validation slices (the decision), then its test slices, with the config's final
evaluation (flip TTA and hole filling, last checkpoint).

The script checks that each fold's config.json is, field by field, configs/lung_unet.py:cpu with
the sweep's overrides (the fold, the epochs, the change, the seed). Run from the repository root:
PYTHONPATH=. python results/cpu_session37/lung_unet_lesion_class_val.py
"""
from results.cpu_session35.lung_unet_levers_val import check_and_tabulate, fold_table, seeds_line

R35 = "runs/s35/lung_unet_cv_e40"
R37 = "runs/s37/lung_unet_cv_e40_lesion"
LESION = "--config.data.lesion_class=True"


def seed_runs(change, root, override, seeds=(0, 1, 2)):
  """R35's lung_unet runs and the change's (root, trained with `override`), for each of `seeds`
  ({name: (runs, the sweep's overrides)}), and the (change, lung_unet) pairs of the same seed."""
  runs = {}
  for seed in seeds:
    suffix, seed_override = (f"_seed{seed}", [f"--config.seed={seed}"]) if seed else ("", [])
    runs[f"lung_unet, seed {seed}"] = (f"{R35}{suffix}/fold{{}}", seed_override)
    runs[f"{change}, seed {seed}"] = (f"{root}{suffix}/fold{{}}", [override, *seed_override])
  return runs, tuple((f"{change}, seed {seed}", f"lung_unet, seed {seed}") for seed in seeds)


RUNS, COMPARISONS = seed_runs("lesion class", R37, LESION)


def table(split):
  dice = fold_table(split, RUNS, COMPARISONS)
  seeds_line(dice, COMPARISONS, "lesion class")


def main():
  check_and_tabulate(RUNS, table)


if __name__ == "__main__":
  main()
