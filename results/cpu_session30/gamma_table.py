"""segnet_multi_improved (the config) against the same with random gamma (train.gamma_range=0.5),
on the five disjoint :cpu folds of exp 7, seed 0 (seed 1 was not run: seed 0 did not gain).

Pooled Dice per fold on each fold's validation and test slices, from the config's final
evaluation (flip TTA, last checkpoint). The gamma runs are block R30's (runs/s30, their
{val,test}_metrics.json). The config's seeds are the twenty-fifth session's (block R25), read
from the table it generated, results/cpu_session25/seed_ensembles.md (its runs are not in this
checkout); the script checks that the config's seed 0, re-run in the twenty-seventh session
(runs/s27/segnet_multi_improved_cv), gives R25's seed 0 to every printed digit. Decisions use the
validation slices; the test rows are printed after them. Run from the repository root:
python results/cpu_session30/gamma_table.py
"""
import importlib.util

SPEC = importlib.util.spec_from_file_location("r27", "results/cpu_session27/lr_schedule_table.py")

GAMMA = "runs/s30/segnet_multi_improved_cv_gamma/exp7"


def load_r27():
  """The twenty-seventh session's table script as a module (its classes, Dice readers, check of
  the config's seed 0 and number formatting)."""
  module = importlib.util.module_from_spec(SPEC)
  SPEC.loader.exec_module(module)
  return module


def main():
  r27 = load_r27()
  run_dice, mean, fmt = r27.run_dice, r27.mean, r27.fmt
  for split in ("val", "test"):
    config = r27.r25_dice(split)
    r27.check_config_seed0(config, split)
    gamma = {f: run_dice(GAMMA, f, split) for f in range(5)}
    print(f"\n## {split} slices: pooled Dice per fold (flip TTA, last checkpoint)\n")
    print("| class | run | fold 0 | fold 1 | fold 2 | fold 3 | fold 4 | mean over folds |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for cls in r27.CLASSES:
      present = [f for f in range(5) if config[cls, f] is not None]
      rows = {
          "config, seed 0": [config[cls, f][0] if f in present else None for f in range(5)],
          "gamma 0.5, seed 0": [gamma[f][cls] if f in present else None for f in range(5)],
          "config, mean of seeds 0, 1, 2 (R25)": [mean(config[cls, f][:3]) if f in present else None
                                                  for f in range(5)],
      }
      for name, per_fold in rows.items():
        print(f"| {cls} | {name} | " + " | ".join(fmt(v) for v in per_fold)
              + f" | {fmt(mean(per_fold))} |")
      pairs = [(a, b) for a, b in zip(rows["config, seed 0"], rows["gamma 0.5, seed 0"])
               if a is not None]
      summary.append(f"- {cls}: {fmt(mean(rows['config, seed 0']))} -> "
                     f"{fmt(mean(rows['gamma 0.5, seed 0']))}; gamma higher on "
                     f"{sum(b > a for a, b in pairs)} of {len(pairs)} folds")
    print()
    print("\n".join(summary))

if __name__ == "__main__":
  main()
