"""segnet_multi_improved at its own scale (256x256, 160 epochs): weighted CE + Dice (the config)
against the Dice loss alone, the same seeds on the same CPU, on the paper's validation slices.

Pooled Dice from the val_metrics.json and test_metrics.json that covseg_jax.main and
covseg_jax.ensemble wrote (flip TTA, last checkpoint), per seed, as the mean over the seeds, and
for the ensembles of seeds 0 and 1 and, where trained, of seeds 0, 1 and 2 (RESULTS.md block R26).
The comparison uses the seeds that both losses have. Run from the repository root:
python results/cpu_session26/dice_loss_256_table.py
"""
import json
import os

CLASSES = ["ground-glass opacity", "consolidation", "pleural effusion"]
ROOT = "runs/s26"
LOSSES = {"weighted CE + Dice (the config)": "segnet_multi_improved_e160_256",
          "Dice alone": "segnet_multi_improved_dice_e160_256"}


def run_dir(sweep, seed):
  return f"{ROOT}/{sweep}{'' if seed == 0 else f'_seed{seed}'}/exp7"


def dice(workdir, split):
  """Pooled Dice per class from <split>_metrics.json, or None if not there yet."""
  path = f"{workdir}/{split}_metrics.json"
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    d = json.load(f)
  assert d["tta_flip"] and d["checkpoint"] == "last", path
  return [d["classes"][c]["dice"] for c in CLASSES]


def row(name, values):
  return f"| {name} | " + " / ".join(f"{v:.3f}" for v in values) + " |"


scores = {(sweep, s, split): dice(run_dir(sweep, s), split)
          for sweep in LOSSES.values() for s in range(3) for split in ("val", "test")}
seeds = [s for s in range(3) if all(scores[sweep, s, "val"] for sweep in LOSSES.values())]
for split in ("val", "test"):
  print(f"\n## {split} slices: pooled Dice, ground glass / consolidation / effusion\n")
  print("| run | Dice |")
  print("|---|---|")
  for name, sweep in LOSSES.items():
    for s in range(3):
      if scores[sweep, s, split]:
        print(row(f"{name}, seed {s}", scores[sweep, s, split]))
    per_seed = [scores[sweep, s, split] for s in seeds]
    print(row(f"{name}, mean over seeds {seeds}", [sum(v) / len(v) for v in zip(*per_seed)]))
    for suffix, members in (("_ensemble_seeds01", "seeds 0 and 1"), ("_ensemble", "seeds 0, 1, 2")):
      ensemble = dice(f"{ROOT}/{sweep}{suffix}/exp7", split)
      if ensemble:
        print(row(f"{name}, ensemble of {members}", ensemble))
