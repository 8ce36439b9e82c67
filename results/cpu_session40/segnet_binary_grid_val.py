"""configs/segnet_binary_improved.py at the paper's other hyperparameter experiments on the five
disjoint :cpu folds (128x128, 40 epochs; block R40). The config trains exp 4, the paper's best
binary SegNet (learning rate 1e-3, batch 4), chosen with the paper's loss; with the config's
weighted cross-entropy + Dice, flip TTA and threshold no other point of the grid was tried.
Seed 0 for exp 5, 6, 7, 8 and 9 (not exp 1-3: the learning rate 1e-4 is the grid's worst in the
paper and in this project's nine-experiment SegNet sweeps, RESULTS.md); seeds 0, 1 and 2 for
exp 7 (learning rate 3e-3, batch 4: as many steps as exp 4) and for exp 9 (3e-3, batch 12: the
one above exp 4 with seed 0), each against R38's run of exp 4 with the same seed, on the same
folds and the same CPU (an Intel Xeon with AVX-512). Last, exp 4 with the Dice loss alone
(train.loss=dice, as the lung configs train) in place of the weighted cross-entropy + Dice, seed
0. Each fold's validation slices (the decision), then its test slices, with the config's final
evaluation (flip TTA, foreground threshold 0.8, last checkpoint).

An experiment of the SegNet grid is exp 4 with its learning rate and batch size (PROTOCOL.md),
so the script checks that each fold's config.json is, field by field,
configs/segnet_binary_improved.py:cpu,exp4 with the sweep's overrides (the fold, the seed) and
those two fields (or the loss). Run from the repository root:
PYTHONPATH=. python results/cpu_session40/segnet_binary_grid_val.py
"""
from results.cpu_session38.segnet_binary_levers_val import R38, check_and_compare, load

R40 = "runs/s40/segnet_binary_improved_cv_grid"
R40_DICE = "runs/s40/segnet_binary_improved_cv_dice"
# The SegNet grid (configs/default.py): experiment -> (learning rate, batch size).
GRID = {5: (1e-3, 8), 6: (1e-3, 12), 7: (3e-3, 4), 8: (3e-3, 8), 9: (3e-3, 12)}


def experiment_overrides(exp):
  learning_rate, batch_size = GRID[exp]
  return [f"--config.train.learning_rate={learning_rate}",
          f"--config.train.batch_size={batch_size}"]


def runs_and_comparisons(experiments, seeds):
  """R38's runs of exp 4 and R40's of `experiments`, for each of `seeds` ({name: (runs, the
  sweep's overrides)}), and the (experiment, exp 4) pairs of the same seed."""
  runs, comparisons = {}, []
  for seed in seeds:
    suffix = f"_seed{seed}" if seed else ""
    seed_override = [f"--config.seed={seed}"] if seed else []
    base = f"exp 4, seed {seed}"
    runs[base] = (f"{R38}{suffix}/exp4/fold{{}}", seed_override)
    for exp in experiments:
      name = f"exp {exp}, seed {seed}"
      runs[name] = (f"{R40}{suffix}/exp{exp}/fold{{}}",
                    [*experiment_overrides(exp), *seed_override])
      comparisons.append((name, base))
  return runs, tuple(comparisons)


def main():
  print("# The grid, seed 0")
  check_and_compare(*runs_and_comparisons([5, 6, 7, 8, 9], [0]))
  for exp in 7, 9:
    print(f"\n# exp {exp}, seeds 0, 1 and 2")
    check_and_compare(*runs_and_comparisons([exp], [0, 1, 2]), f"exp {exp}")
  print("\n# exp 4 with the Dice loss alone, seed 0")
  check_and_compare({"exp 4, seed 0": (f"{R38}/exp4/fold{{}}", []),
                     "Dice loss, seed 0": (f"{R40_DICE}/exp4/fold{{}}",
                                           ["--config.train.loss=dice"])},
                    (("Dice loss, seed 0", "exp 4, seed 0"),))


if __name__ == "__main__":
  main()
