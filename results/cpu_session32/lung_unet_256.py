"""lung_unet:cpu on the paper's split at the paper's 256x256 (seed 0): the 80-epoch run of R31
carried on to 160 epochs in R32, beside the 128x128 160-epoch runs of R30 and R31; validation and
test lung Dice with the config's final evaluation (flip TTA and hole filling, last checkpoint),
the two hard test slices (and, for the 160-epoch run, its best checkpoint by validation loss,
evaluated on a copy), and the in-training validation lung Dice (plain, no TTA) at the last
evaluations of each 256x256 run.

R32 copied runs/s31/lung_unet_e80_256's state into runs/s32/lung_unet_e160_256 and resumed it
with train.epochs=160 (the piecewise schedule does not depend on the epoch count, so the first
80 epochs are the same run). The script checks each run's config.json against its recorded
command through config_file.load (the helpers of results/cpu_session31). Run from the
repository root:
PYTHONPATH=. python results/cpu_session32/lung_unet_256.py
"""
import json

from results.cpu_session31.lung_unet_seeds import check_config, table_header, table_row

RUNS = {  # name: (run directory, the overrides of its recorded command)
    "128x128, 160 epochs (R30)": ("runs/s30/lung_unet_e160", ["--config.train.epochs=160"]),
    "128x128, 160 epochs, ensemble of three seeds (R31)": ("runs/s31/lung_unet_e160_ensemble",
                                                           None),
    "256x256, 80 epochs (R31)": ("runs/s31/lung_unet_e80_256",
                                 ["--config.train.epochs=80", "--config.data.image_size=256"]),
    "256x256, 160 epochs (R32)": ("runs/s32/lung_unet_e160_256",
                                  ["--config.train.epochs=160", "--config.data.image_size=256"]),
}
BEST = "runs/s32/lung_unet_e160_256_bestckpt"  # A copy of the 160-epoch run, evaluated with
# --checkpoint=best (the lowest validation loss).
LAST_EVALS = 8
CURVES = ("256x256, 80 epochs (R31)", "256x256, 160 epochs (R32)")  # Runs whose in-training
# validation the script lists.


def in_training_val(run):
  with open(f"{run}/metrics.jsonl", encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return [(r["step"], r["val/dice/lung"]) for r in rows if "val/dice/lung" in r]


def main():
  for run, overrides in RUNS.values():
    if overrides is not None:
      check_config(run, overrides)
  print("## lung_unet:cpu, paper split, seed 0: lung Dice "
        "(flip TTA and hole filling, last checkpoint)\n")
  print(table_header())
  for name, (run, _) in RUNS.items():
    print(table_row(name, run)[2])
  check_config(BEST, RUNS["256x256, 160 epochs (R32)"][1])
  print(table_row("the same, best checkpoint (lowest validation loss)", BEST, "best")[2])
  print(f"\n## In-training validation lung Dice (no TTA), last {LAST_EVALS} evaluations\n")
  for name in CURVES:
    evals = in_training_val(RUNS[name][0])[-LAST_EVALS:]
    print(f"- {name}: " + ", ".join(f"{dice:.3f} (step {step})" for step, dice in evals))


if __name__ == "__main__":
  main()
