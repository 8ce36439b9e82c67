"""HighResNet (lung_resnet_improved) against a four-level U-Net (configs/lung_unet.py) on the
five disjoint :cpu lung folds (128x128, 40 epochs), each fold's validation slices (the decision)
and then its test slices, both with their config's final evaluation (flip TTA and hole filling,
last checkpoint).

HighResNet: block R29's fold runs evaluated as lung_resnet_improved (runs/s29/
lung_resnet_improved_cv_e40, `main --mode=evaluate [--split=val]`); the script checks that they
give R24's published Dice to every digit. U-Net: block R30's folds (runs/s30/lung_unet_cv_e40),
trained with results/cpu_session30/lung_unet.py, a file of this session that configs/lung_unet.py
replaced; the script checks that each fold's config.json equals configs/lung_unet.py:cpu with 40
epochs, field by field (the fold's data.split and data.fold aside). Run from the repository root:
PYTHONPATH=. python results/cpu_session30/lung_unet_val.py
"""
import json

from covseg_jax import config_file

HIGHRESNET = "runs/s29/lung_resnet_improved_cv_e40/fold{}"
UNET = "runs/s30/lung_unet_cv_e40/fold{}"
R24 = (0.9559, 0.9577, 0.9728, 0.9712, 0.9718)  # RESULTS.md, The lung model's two changes.
# Config fields added after these runs with a default that trains as before: a config.json
# without one holds a run trained with this value.
ADDED_LATER = {"data.lesion_class": False,  # Thirty-seventh session.
               "train.ema_epochs": 0.0,  # Thirty-ninth session.
               "train.elastic": 0.0,  # Forty-second session.
               "train.label_smoothing": 0.0}  # Forty-second session.


def load(run, split):
  with open(f"{run}/{split}_metrics.json", encoding="utf-8") as f:
    d = json.load(f)
  assert d["tta_flip"] and d["fill_holes"] and d["checkpoint"] == "last", run
  per_slice = dict(zip(d["slice_numbers"], d["per_image"]["dice"]["lung"]))
  return d["classes"]["lung"]["dice"], per_slice


def check_unet_config(fold):
  config = config_file.load("configs/lung_unet.py:cpu")
  config.train.epochs = 40
  expected = config_file.flatten(json.loads(config.to_json_best_effort()))
  with open(f"{UNET.format(fold)}/config.json", encoding="utf-8") as f:
    saved = {**ADDED_LATER, **config_file.flatten(json.load(f))}
  differ = {k for k in expected.keys() | saved.keys() if expected.get(k) != saved.get(k)}
  assert differ <= {"data.split", "data.fold"}, (fold, differ)
  assert saved["data.split"] == "kfold" and saved["data.fold"] == fold, fold


def table(split):
  print(f"\n## {split} slices: lung Dice per fold (flip TTA and hole filling, last checkpoint)\n")
  print("| fold | HighResNet (lung_resnet_improved) | U-Net (lung_unet) | difference "
        "| HighResNet's worst slice: HighResNet -> U-Net | U-Net's worst slice: HighResNet -> U-Net |")
  print("|---|---|---|---|---|---|")
  rows = []
  for fold in range(5):
    old, old_slices = load(HIGHRESNET.format(fold), split)
    if split == "val":
      assert f"{old:.4f}" == f"{R24[fold]:.4f}", (fold, old)
    new, new_slices = load(UNET.format(fold), split)
    assert old_slices.keys() == new_slices.keys()
    worst_old = min(old_slices, key=old_slices.get)
    worst_new = min(new_slices, key=new_slices.get)
    rows.append((old, new))
    print(f"| {fold} | {old:.4f} | {new:.4f} | {new - old:+.4f} "
          f"| {worst_old}: {old_slices[worst_old]:.3f} -> {new_slices[worst_old]:.3f} "
          f"| {worst_new}: {old_slices[worst_new]:.3f} -> {new_slices[worst_new]:.3f} |")
  old_mean = sum(r[0] for r in rows) / len(rows)
  new_mean = sum(r[1] for r in rows) / len(rows)
  print(f"| mean | {old_mean:.4f} | {new_mean:.4f} | {new_mean - old_mean:+.4f} | | |")
  print(f"\nU-Net higher on {sum(n > o for o, n in rows)} of {len(rows)} folds.")


def main():
  for fold in range(5):
    check_unet_config(fold)
  table("val")  # The decision.
  table("test")  # Read after it.

if __name__ == "__main__":
  main()
