"""segnet_multi_improved's weighted CE + Dice against the Dice loss alone on the disjoint folds.

Pooled Dice per fold from the val_metrics.json and test_metrics.json that covseg_jax.main wrote
(flip TTA, last checkpoint), per seed and as the mean over the seeds run so far (RESULTS.md
block R25). Run from the repository root:
python results/cpu_session25/dice_loss_table.py
"""
import json
import os

CLASSES = ["ground-glass opacity", "consolidation", "pleural effusion"]
RUNS = {
    "weighted CE + Dice (the config)": ["runs/s23/segnet_multi_improved_cv/exp7",
                                        "runs/s25/segnet_multi_improved_cv_seed1/exp7",
                                        "runs/s25/segnet_multi_improved_cv_seed2/exp7"],
    "Dice alone": ["runs/s25/segnet_multi_improved_cv_dice/exp7",
                   "runs/s25/segnet_multi_improved_cv_dice_seed1/exp7",
                   "runs/s25/segnet_multi_improved_cv_dice_seed2/exp7"],
}


def dice(sweep, fold, split, cls):
  with open(f"{sweep}/fold{fold}/{split}_metrics.json", encoding="utf-8") as f:
    d = json.load(f)
  assert d["tta_flip"] and d["checkpoint"] == "last", (sweep, fold)
  c = d["classes"][cls]
  return c["dice"] if c["sensitivity"] is not None else None  # None: class absent


def finished(sweep):
  return all(os.path.isfile(f"{sweep}/fold{k}/val_metrics.json") for k in range(5))


seeds = min(sum(finished(s) for s in sweeps) for sweeps in RUNS.values())
for split in ("val", "test"):
  print(f"\n## {split} slices: pooled Dice per fold, mean over seeds 0 to {seeds - 1}\n")
  print("| loss | class | fold 0 | fold 1 | fold 2 | fold 3 | fold 4 | mean over folds |")
  print("|---|---|---|---|---|---|---|---|")
  table = {}
  for name, sweeps in RUNS.items():
    for cls in CLASSES:
      per_fold = []
      for fold in range(5):
        values = [dice(s, fold, split, cls) for s in sweeps[:seeds]]
        per_fold.append(None if values[0] is None else sum(values) / len(values))
      table[name, cls] = per_fold
      present = [v for v in per_fold if v is not None]
      print(f"| {name} | {cls} | "
            + " | ".join("—" if v is None else f"{v:.3f}" for v in per_fold)
            + f" | {sum(present) / len(present):.3f} |")
  base, other = RUNS
  print()
  for cls in CLASSES:
    pairs = [(a, b) for a, b in zip(table[base, cls], table[other, cls]) if a is not None]
    print(f"- {cls}: {other} higher on {sum(b > a for a, b in pairs)} of {len(pairs)} folds")
