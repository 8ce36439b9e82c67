"""configs/lung_unet.py with two augmentations it does not use, on the five disjoint :cpu lung
folds (128x128, 40 epochs): random rotation (±15°) and zoom (±15 %), as segnet_multi_improved
has, and random gamma (g in [1/1.5, 1.5]), which R30 measured on the multi-class config only.
Each fold's validation slices (the decision), then its test slices, with the config's final
evaluation (flip TTA and hole filling, last checkpoint).

lung_unet: block R30's folds (runs/s30/lung_unet_cv_e40), whose validation Dice the script checks
against results/cpu_session30/lung_unet_val.md to every digit. The augmented folds: block R34
(runs/s34/lung_unet_cv_e40_{rotzoom,gamma}); the script checks that each fold's config.json is,
field by field, configs/lung_unet.py:cpu with the sweep's overrides (the fold, 40 epochs, the
augmentation). Run from the repository root:
PYTHONPATH=. python results/cpu_session34/lung_unet_augment_val.py
"""
from results.cpu_session30.lung_unet_val import load
from results.cpu_session31.lung_unet_seeds import check_config

BASE = "runs/s30/lung_unet_cv_e40/fold{}"
R30 = (0.9740, 0.9734, 0.9803, 0.9732, 0.9732)  # results/cpu_session30/lung_unet_val.md
SETTINGS = {  # name: (runs, the sweep's overrides)
    "rotation ±15° and zoom ±15 %": ("runs/s34/lung_unet_cv_e40_rotzoom/fold{}",
                                      ["--config.train.rotation_degrees=15",
                                       "--config.train.scale_range=0.15"]),
    "random gamma 0.5": ("runs/s34/lung_unet_cv_e40_gamma/fold{}",
                         ["--config.train.gamma_range=0.5"]),
}


def table(split):
  names = list(SETTINGS)
  print(f"\n## {split} slices: lung Dice per fold (flip TTA and hole filling, last checkpoint)\n")
  print("| fold | lung_unet | " + " | ".join(f"+ {n} (difference)" for n in names)
        + " | lung_unet's worst slice: " + " / ".join(["lung_unet"] + names) + " |")
  print("|---" * (len(names) + 3) + "|")
  rows = []
  for fold in range(5):
    base, base_slices = load(BASE.format(fold), split)
    if split == "val":
      assert f"{base:.4f}" == f"{R30[fold]:.4f}", (fold, base)
    worst = min(base_slices, key=base_slices.get)
    row, cells, worst_cells = [base], [], [f"{base_slices[worst]:.3f}"]
    for name in names:
      dice, slices = load(SETTINGS[name][0].format(fold), split)
      assert slices.keys() == base_slices.keys()
      row.append(dice)
      cells.append(f"{dice:.4f} ({dice - base:+.4f})")
      worst_cells.append(f"{slices[worst]:.3f}")
    rows.append(row)
    print(f"| {fold} | {base:.4f} | " + " | ".join(cells)
          + f" | {worst}: " + " / ".join(worst_cells) + " |")
  means = [sum(r[i] for r in rows) / len(rows) for i in range(len(names) + 1)]
  print(f"| mean | {means[0]:.4f} | "
        + " | ".join(f"{m:.4f} ({m - means[0]:+.4f})" for m in means[1:]) + " | |")
  for i, name in enumerate(names, 1):
    print(f"\n+ {name}: higher than lung_unet on {sum(r[i] > r[0] for r in rows)} of "
          f"{len(rows)} folds.")


def main():
  for run, overrides in SETTINGS.values():
    for fold in range(5):
      check_config(run.format(fold), ["--config.data.split=kfold", "--config.data.num_folds=5",
                                      f"--config.data.fold={fold}", "--config.train.epochs=40",
                                      *overrides])
  table("val")  # The decision.
  table("test")  # Read after it.


if __name__ == "__main__":
  main()
