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
RUNS = {  # name: (runs, the sweep's overrides)
    "lung_unet, seed 0": (R35 + "/fold{}", []),
    "lesion class, seed 0": (R37 + "/fold{}", [LESION]),
    "lung_unet, seed 1": (R35 + "_seed1/fold{}", ["--config.seed=1"]),
    "lesion class, seed 1": (R37 + "_seed1/fold{}", [LESION, "--config.seed=1"]),
    "lung_unet, seed 2": (R35 + "_seed2/fold{}", ["--config.seed=2"]),
    "lesion class, seed 2": (R37 + "_seed2/fold{}", [LESION, "--config.seed=2"]),
}
COMPARISONS = tuple((f"lesion class, seed {seed}", f"lung_unet, seed {seed}")  # (change, base)
                    for seed in range(3))


def table(split):
  dice = fold_table(split, RUNS, COMPARISONS)
  seeds_line(dice, COMPARISONS, "lesion class")


def main():
  check_and_tabulate(RUNS, table)


if __name__ == "__main__":
  main()
