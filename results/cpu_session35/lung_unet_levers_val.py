"""configs/lung_unet.py with two changes it does not make, on the five disjoint :cpu lung folds
(128x128, 40 epochs): a fifth encoder level (4x4 at the bottleneck of a 128x128 slice, for more
context on consolidated lungs; seed 0) and the infection configs' weighted cross-entropy + Dice
loss in place of the Dice loss alone (seeds 0, 1 and 2, each against lung_unet with the same
seed). Each fold's validation slices (the decision), then its test slices, with the config's
final evaluation (flip TTA and hole filling, last checkpoint).

All runs are block R35's (runs/s35), on an Intel Xeon with AVX-512, not the AMD Zen 1 machine
of blocks R30-R34, so lung_unet itself was trained again on the same folds beside the changes
(float32 results differ from one CPU to another). The script checks that each fold's
config.json is, field by field, configs/lung_unet.py:cpu with the sweep's overrides (the fold, 40
epochs, the change, the seed). Run from the repository root:
PYTHONPATH=. python results/cpu_session35/lung_unet_levers_val.py
"""
from results.cpu_session30.lung_unet_val import load
from results.cpu_session31.lung_unet_seeds import check_config

R = "runs/s35/lung_unet_cv_e40"
FOLDS = ["--config.data.split=kfold", "--config.data.num_folds=5", "--config.train.epochs=40"]
CE_DICE = "--config.train.loss=weighted_ce+dice"
RUNS = {  # name: (runs, the sweep's overrides)
    "lung_unet, seed 0": (R + "/fold{}", []),
    "depth 5, seed 0": (R + "_depth5/fold{}", ["--config.model.depth=5"]),
    "CE + Dice, seed 0": (R + "_ce_dice/fold{}", [CE_DICE]),
    "lung_unet, seed 1": (R + "_seed1/fold{}", ["--config.seed=1"]),
    "CE + Dice, seed 1": (R + "_ce_dice_seed1/fold{}", [CE_DICE, "--config.seed=1"]),
    "lung_unet, seed 2": (R + "_seed2/fold{}", ["--config.seed=2"]),
    "CE + Dice, seed 2": (R + "_ce_dice_seed2/fold{}", [CE_DICE, "--config.seed=2"]),
}
COMPARISONS = (  # (change, lung_unet with the same seed)
    ("depth 5, seed 0", "lung_unet, seed 0"),
    ("CE + Dice, seed 0", "lung_unet, seed 0"),
    ("CE + Dice, seed 1", "lung_unet, seed 1"),
    ("CE + Dice, seed 2", "lung_unet, seed 2"),
)


LUNG_DICE = "lung Dice per fold (flip TTA and hole filling, last checkpoint)"


def fold_table(split, runs, comparisons, load=load, what=LUNG_DICE):
  """Prints each fold's Dice of `runs` ({name: (run pattern, overrides)}; the first is the
  reference for the worst slice) on `split`, as load(run, split) gives it (the Dice and the
  per-slice Dice), and, per (change, base) of `comparisons`, the mean difference; returns
  {name: [Dice per fold]}."""
  print(f"\n## {split} slices: {what}\n")
  names = list(runs)
  print("| fold | " + " | ".join(names) + f" | the slice {names[0]} does worst on "
        "(the same columns) |")
  print("|---" * (len(names) + 2) + "|")
  dice = {name: [] for name in names}
  for fold in range(5):
    slices = {name: load(runs[name][0].format(fold), split) for name in names}
    base_slices = slices[names[0]][1]
    worst = min(base_slices, key=base_slices.get)
    for name in names:
      assert slices[name][1].keys() == base_slices.keys()
      dice[name].append(slices[name][0])
    print(f"| {fold} | " + " | ".join(f"{slices[n][0]:.4f}" for n in names) + f" | {worst}: "
          + " / ".join(f"{slices[n][1][worst]:.3f}" for n in names) + " |")
  print("| mean | " + " | ".join(f"{sum(d) / len(d):.4f}" for d in dice.values()) + " | |")
  print()
  for change, base in comparisons:
    diffs = [c - b for c, b in zip(dice[change], dice[base])]
    print(f"- {change} against {base}: {sum(diffs) / len(diffs):+.4f} on average, higher on "
          f"{sum(d > 0 for d in diffs)} of {len(diffs)} folds.")
  return dice


def seeds_line(dice, comparisons, change_prefix):
  """Prints the mean difference of the `comparisons` whose change starts with change_prefix
  (one per seed), over all their fold-seed pairs."""
  pairs = [(change, base) for change, base in comparisons if change.startswith(change_prefix)]
  diffs = [c - b for change, base in pairs for c, b in zip(dice[change], dice[base])]
  seeds = {2: "two", 3: "three"}.get(len(pairs), len(pairs))
  print(f"- {change_prefix} over the {seeds} seeds: {sum(diffs) / len(diffs):+.4f} on average, "
        f"higher on {sum(d > 0 for d in diffs)} of {len(diffs)} fold-seed pairs.")


def table(split):
  dice = fold_table(split, RUNS, COMPARISONS)
  seeds_line(dice, COMPARISONS, "CE + Dice")


def check_and_tabulate(runs, table, config_arg="configs/lung_unet.py:cpu"):
  """Checks every fold's config.json of `runs` (config_arg with the fold's and the run's
  overrides), then prints table(split) for val and test."""
  for fold in range(5):
    for run, overrides in runs.values():
      check_config(run.format(fold), FOLDS + [f"--config.data.fold={fold}", *overrides],
                   config_arg)
  table("val")  # The decision.
  table("test")  # Read after it.


def main():
  check_and_tabulate(RUNS, table)


if __name__ == "__main__":
  main()
