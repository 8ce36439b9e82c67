"""lung_unet:cpu on the paper's split at the config's own length (128x128, 160 epochs), seeds 0,
1 and 2, each trained once with train.ema_epochs=4 and read two ways: at the moving average (the
run's own evaluation) and at its last step's weights (results/cpu_session39/last_step.py, the
run lung_unet trains; R39's folds show the two trainings equal to the bit). Validation (the
decision) and test lung Dice with the config's final evaluation (flip TTA and hole filling), and
the two test slices R29 and R30 located. Block R39, the repetition at scale that the folds'
gain (+0.0028) asked for before the config takes the average.

The script first checks the reading: last_step.py on R39's 15 lung fold runs gives R35's runs
of lung_unet (trained without the average) to the pixel, the same validation and test confusion
matrices. Then that each run's config.json is, field by field, configs/lung_unet.py:cpu with the
recorded overrides. Run from the repository root, after last_step.py on each run
(<run>_last_step):
PYTHONPATH=. python results/cpu_session39/lung_unet_e160_ema.py
"""
import json
import statistics

from results.cpu_session31.lung_unet_seeds import check_config, table_header, table_row
from results.cpu_session39.lung_unet_ema_val import CHANGE, RUNS

RUN = "runs/s39/lung_unet_e160_ema{}"
READINGS = {"last step": "_last_step", CHANGE: ""}


def confusion(run, split):
  with open(f"{run}/{split}_metrics.json", encoding="utf-8") as f:
    return json.load(f)["pooled_confusion_matrix"]


def check_last_step_reading():
  """Asserts that each R39 lung fold run read at its last step equals R35's run of that fold
  and seed."""
  for seed in range(3):
    base, averaged = RUNS[f"lung_unet, seed {seed}"][0], RUNS[f"{CHANGE}, seed {seed}"][0]
    for fold in range(5):
      for split in ("val", "test"):
        assert (confusion(averaged.format(fold) + "_last_step", split)
                == confusion(base.format(fold), split)), (seed, fold, split)
  print("The last-step reading of R39's 15 lung fold runs: R35's validation and test confusion "
        "matrices, every one.\n")


def main():
  check_last_step_reading()
  print("## lung_unet:cpu, paper split, 128x128, 160 epochs, read at the last step and at the "
        "moving average: lung Dice (flip TTA and hole filling)\n")
  print(table_header())
  scores = {reading: ([], []) for reading in READINGS}
  for seed in range(3):
    run = RUN.format(f"_seed{seed}" if seed else "")
    check_config(run, ["--config.train.epochs=160", "--config.train.ema_epochs=4",
                       f"--config.seed={seed}"])
    for reading, suffix in READINGS.items():
      val, test, line = table_row(f"seed {seed}, {reading}", run + suffix)
      scores[reading][0].append(val)
      scores[reading][1].append(test)
      print(line)
  print()
  seeds_summary(scores, "the average against the last step")


def seeds_summary(scores, label):
  """Prints the mean ± std over the seeds of each of `scores` ({name: ([val], [test])}, one
  entry per seed), then the second against the first seed by seed, as `label`."""
  for name, (val, test) in scores.items():
    print(f"- {name}: validation {statistics.mean(val):.4f} ± {statistics.stdev(val):.4f}, "
          f"test {statistics.mean(test):.4f} ± {statistics.stdev(test):.4f} (mean ± std over "
          "the seeds).")
  (val_base, test_base), (val_changed, test_changed) = scores.values()
  for split, base, changed in (("validation", val_base, val_changed),
                               ("test", test_base, test_changed)):
    diffs = [c - b for c, b in zip(changed, base)]
    print(f"- {label}, {split}: " + ", ".join(f"{d:+.4f}" for d in diffs)
          + f"; {statistics.mean(diffs):+.4f} on average, higher for {sum(d > 0 for d in diffs)} "
          f"of {len(diffs)} seeds.")


if __name__ == "__main__":
  main()
