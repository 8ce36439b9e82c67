"""lung_unet:cpu on the paper's split (128x128, 160 epochs): three seeds and their ensemble,
validation and test lung Dice with the config's final evaluation (flip TTA and hole filling,
last checkpoint), and the two test slices that keep the lung model below 0.98; then one run at
the paper's 256x256 with 80 epochs (seed 0).

Seed 0: block R30 (runs/s30/lung_unet_e160). Seed 1: started in R30, stopped by SIGTERM at step
207 and resumed in R31 with the same command (runs/s30/lung_unet_e160_seed1). Seed 2, the
ensemble and the 256x256 run: R31 (runs/s31). The script checks that each run's config.json is,
field by field, the config its recorded command (RESULTS.md, R30 and R31) trains, and that the
ensemble holds the three seeds. Run from the repository root:
PYTHONPATH=. python results/cpu_session31/lung_unet_seeds.py
"""
import json
import statistics

from covseg_jax import config_file, ensemble
from results.cpu_session30.lung_unet_val import ADDED_LATER

SEEDS = {0: "runs/s30/lung_unet_e160", 1: "runs/s30/lung_unet_e160_seed1",
         2: "runs/s31/lung_unet_e160_seed2"}
ENSEMBLE = "runs/s31/lung_unet_e160_ensemble"
RUN_256 = "runs/s31/lung_unet_e80_256"
HARD = (24, 75)  # The paper split's test slices that R29 and R30 located.


def load(run, split, checkpoint="last"):
  with open(f"{run}/{split}_metrics.json", encoding="utf-8") as f:
    d = json.load(f)
  assert d["tta_flip"] and d["fill_holes"] and d["checkpoint"] == checkpoint, run
  per_slice = dict(zip(d["slice_numbers"], d["lung"]["per_image"]["dsc"]))
  summary = d["lung"]["summary"]["dsc"]
  return d["classes"]["lung"]["dice"], summary["mean"], summary["std"], per_slice


def table_header():
  return ("| run | validation (pooled) | test (pooled) | test per image, mean ± std "
          + "".join(f"| test slice {s} " for s in HARD) + "|\n"
          + "|---|---|---|---" + "|---" * len(HARD) + "|")


def table_row(name, run, checkpoint="last"):
  """(validation Dice, test Dice, the table's row for `run`)."""
  val = load(run, "val", checkpoint)[0]
  test, mean, std, per_slice = load(run, "test", checkpoint)
  return val, test, (f"| {name} | {val:.4f} | {test:.4f} | {mean:.3f} ± {std:.3f} "
                     + "".join(f"| {per_slice[s]:.3f} " for s in HARD) + "|")


def check_config(run, overrides, config_arg="configs/lung_unet.py:cpu"):
  """Asserts that run's config.json is, field by field, the config its recorded command trains:
  config_arg with `overrides`."""
  config = config_file.load(config_arg, overrides)
  expected = config_file.flatten(json.loads(config.to_json_best_effort()))
  with open(f"{run}/config.json", encoding="utf-8") as f:
    saved = {**ADDED_LATER, **config_file.flatten(json.load(f))}
  differ = {k for k in expected.keys() | saved.keys() if expected.get(k) != saved.get(k)}
  assert not differ, (run, differ)


def main():
  for seed, run in SEEDS.items():
    check_config(run, ["--config.train.epochs=160", f"--config.seed={seed}"])
  check_config(RUN_256, ["--config.train.epochs=80", "--config.data.image_size=256"])
  assert ensemble.member_paths(ENSEMBLE) == list(SEEDS.values()), ENSEMBLE
  print("## lung_unet:cpu, paper split, 128x128, 160 epochs: lung Dice "
        "(flip TTA and hole filling, last checkpoint)\n")
  print(table_header())
  rows = {f"seed {seed}": run for seed, run in SEEDS.items()}
  rows["ensemble of the three"] = ENSEMBLE
  seeds_val, seeds_test = [], []
  for name, run in rows.items():
    val, test, line = table_row(name, run)
    if run in SEEDS.values():
      seeds_val.append(val)
      seeds_test.append(test)
    print(line)
  print(f"\nSeeds, mean ± std: validation {statistics.mean(seeds_val):.4f} ± "
        f"{statistics.stdev(seeds_val):.4f}, test {statistics.mean(seeds_test):.4f} ± "
        f"{statistics.stdev(seeds_test):.4f}.")
  print("\n## lung_unet:cpu, paper split, 256x256, 80 epochs, seed 0 (same columns)\n")
  print(table_row("seed 0, 256x256, 80 epochs", RUN_256)[2])


if __name__ == "__main__":
  main()
