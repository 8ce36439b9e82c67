"""configs/lung_unet.py with two changes on the five disjoint :cpu lung folds (128x128), each
against lung_unet trained with 40 epochs on the same folds, the same CPU (an Intel Xeon with
AVX-512) and the same seed in block R35: twice the :cpu width (32 base features in place of 16;
the full config has 64; seed 0), and a longer schedule, 80 epochs (R35's runs of seeds 0, 1 and
2 carried on from their 40th epoch: the schedule, the data order and the random keys depend on
the step, not on train.epochs). Each fold's validation slices (the
decision), then its test slices, with the config's final evaluation (flip TTA and hole filling,
last checkpoint).

The script checks that each fold's config.json is, field by field, configs/lung_unet.py:cpu with
the sweep's overrides (the fold, the epochs, the change, the seed). Run from the repository root:
PYTHONPATH=. python results/cpu_session36/lung_unet_levers_val.py
"""
from results.cpu_session35.lung_unet_levers_val import check_and_tabulate, fold_table, seeds_line

R35 = "runs/s35/lung_unet_cv_e40"
R36 = "runs/s36/lung_unet_cv"
WIDTH = "--config.model.base_features=32"
E80 = "--config.train.epochs=80"
RUNS = {  # name: (runs, the sweep's overrides)
    "lung_unet, seed 0": (R35 + "/fold{}", []),
    "lung_unet, seed 1": (R35 + "_seed1/fold{}", ["--config.seed=1"]),
    "lung_unet, seed 2": (R35 + "_seed2/fold{}", ["--config.seed=2"]),
    "width 32, seed 0": (R36 + "_e40_width32/fold{}", [WIDTH]),
    "80 epochs, seed 0": (R36 + "_e80/fold{}", [E80]),
    "80 epochs, seed 1": (R36 + "_e80_seed1/fold{}", [E80, "--config.seed=1"]),
    "80 epochs, seed 2": (R36 + "_e80_seed2/fold{}", [E80, "--config.seed=2"]),
}
COMPARISONS = (  # (change, lung_unet with the same seed)
    ("width 32, seed 0", "lung_unet, seed 0"),
    ("80 epochs, seed 0", "lung_unet, seed 0"),
    ("80 epochs, seed 1", "lung_unet, seed 1"),
    ("80 epochs, seed 2", "lung_unet, seed 2"),
)
SEEDS = ("lung_unet, seed 0", "lung_unet, seed 1", "lung_unet, seed 2")


def mean(values):
  return sum(values) / len(values)


def table(split):
  dice = fold_table(split, RUNS, COMPARISONS)
  seeds_line(dice, COMPARISONS, "80 epochs")
  seed_means = [mean([dice[s][fold] for s in SEEDS]) for fold in range(5)]
  diffs = [c - b for c, b in zip(dice["width 32, seed 0"], seed_means)]
  print(f"- width 32, seed 0 against the mean of lung_unet's three seeds "
        f"({mean(seed_means):.4f}): {mean(diffs):+.4f} on average, higher on "
        f"{sum(d > 0 for d in diffs)} of 5 folds; lung_unet's seeds' fold means span "
        f"{min(mean(dice[s]) for s in SEEDS):.4f}-{max(mean(dice[s]) for s in SEEDS):.4f}.")


def main():
  check_and_tabulate(RUNS, table)


if __name__ == "__main__":
  main()
