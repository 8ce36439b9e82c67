"""segnet_multi_improved at its own scale (256x256, 160 epochs): the paper's piecewise
learning-rate drops (the config) against a cosine decay to 0 (train.lr_schedule=cosine), the same
seeds, on the paper's validation slices, then its test slices.

Pooled Dice from the config's final evaluation (flip TTA, last checkpoint), per seed, as the
mean over the seeds both schedules have, and for the ensembles of seeds 0 and 1 (and of 0, 1, 2
where the cosine seed 2 exists). The cosine runs and ensembles are read from block R28's runs
(their val/test_metrics.json). The config's are the twenty-sixth session's (block R26), read from
the table it generated, results/cpu_session26/dice_loss_256.md: its runs are not in this
checkout. Run from the repository root:
python results/cpu_session28/lr_schedule_256_table.py
"""
import json
import os
import re

CLASSES = ["ground-glass opacity", "consolidation", "pleural effusion"]
R = "runs/s28/segnet_multi_improved_cosine_e160_256"
R26_TABLE = "results/cpu_session26/dice_loss_256.md"
R26_CONFIG = "weighted CE + Dice (the config)"


def run_dice(workdir, split):
  """Pooled Dice per class from <split>_metrics.json, or None if the run has none yet."""
  path = f"{workdir}/{split}_metrics.json"
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    d = json.load(f)
  assert d["tta_flip"] and d["checkpoint"] == "last", path
  return tuple(d["classes"][c]["dice"] for c in CLASSES)


def r26_dice(split, row):
  """The three Dice of one row of R26's table for `split`, e.g. row 'seed 0'."""
  with open(R26_TABLE, encoding="utf-8") as f:
    section = f.read().split(f"## {split} slices")[1].split("\n## ")[0]
  cells = re.search(rf"^\| {re.escape(R26_CONFIG)}, {re.escape(row)} \| (.*) \|$", section, re.M).group(1)
  return tuple(float(v) for v in cells.split(" / "))


def fmt(values):
  return " / ".join(f"{v:.3f}" for v in values)


def mean(rows):
  return tuple(sum(v) / len(v) for v in zip(*rows))


for split in ("val", "test"):
  cosine = {s: run_dice(R + ("" if s == 0 else f"_seed{s}") + "/exp7", split) for s in range(3)}
  seeds = [s for s in range(3) if cosine[s]]
  piecewise = {s: r26_dice(split, f"seed {s}") for s in seeds}
  print(f"\n## {split} slices: pooled Dice, ground glass / consolidation / effusion\n")
  print("| run | piecewise (the config, R26) | cosine (R28) | cosine minus piecewise |")
  print("|---|---|---|---|")
  pairs = [(f"seed {s}", piecewise[s], cosine[s]) for s in seeds]
  pairs.append((f"mean over seeds {seeds}",  # R26's own mean, from unrounded values.
                 r26_dice(split, f"mean over seeds {seeds}"),
                 mean([cosine[s] for s in seeds])))
  for suffix, members, row in (("_ensemble_seeds01", "seeds 0 and 1", "ensemble of seeds 0 and 1"),
                               ("_ensemble", "seeds 0, 1, 2", "ensemble of seeds 0, 1, 2")):
    ensemble = run_dice(f"{R}{suffix}/exp7", split)
    if ensemble:
      pairs.append((f"ensemble of {members}", r26_dice(split, row), ensemble))
  for name, a, b in pairs:
    print(f"| {name} | {fmt(a)} | {fmt(b)} | "
          + " / ".join(f"{y - x:+.3f}" for x, y in zip(a, b)) + " |")
