"""segnet_multi_improved with the paper's piecewise learning-rate drops (the config) against a
cosine decay to 0 (train.lr_schedule=cosine), on the five disjoint :cpu folds of exp 7.

Pooled Dice per fold on each fold's validation and test slices, from the config's final
evaluation (flip TTA, last checkpoint): per seed, the mean over seeds 0, 1 and 2, and the
fold's ensemble of the three (covseg_jax.ensemble). The cosine runs and ensembles are read from
block R27's runs (their val/test_metrics.json). The config's are the twenty-fifth session's
(block R25), read from the table it generated, results/cpu_session25/seed_ensembles.md: its
runs are not in this checkout; this session re-ran the config's seed 0 on its folds
(runs/s27/segnet_multi_improved_cv), and the script checks that it gives R25's seed 0 to every
printed digit, on every fold, class and split. Run from the repository root:
python results/cpu_session27/lr_schedule_table.py
"""
import json
import re

CLASSES = ["ground-glass opacity", "consolidation", "pleural effusion"]
R = "runs/s27"
COSINE = [f"{R}/segnet_multi_improved_cv_cosine/exp7", f"{R}/segnet_multi_improved_cv_cosine_seed1/exp7",
          f"{R}/segnet_multi_improved_cv_cosine_seed2/exp7"]
COSINE_ENSEMBLE = f"{R}/segnet_multi_improved_cv_cosine_ensemble/exp7"
CONFIG_SEED0 = f"{R}/segnet_multi_improved_cv/exp7"
R25_TABLE = "results/cpu_session25/seed_ensembles.md"


def run_dice(sweep, fold, split):
  """{class: pooled Dice, None where the slices have none of the class} of one fold's run."""
  with open(f"{sweep}/fold{fold}/{split}_metrics.json", encoding="utf-8") as f:
    d = json.load(f)
  assert d["tta_flip"] and d["checkpoint"] == "last", (sweep, fold)
  return {c: (d["classes"][c]["dice"] if d["classes"][c]["sensitivity"] is not None else None)
          for c in CLASSES}


def r25_dice(split):
  """{(class, fold): (seed 0, seed 1, seed 2, ensemble) or None} of R25's multi-class table."""
  with open(R25_TABLE, encoding="utf-8") as f:
    text = f.read()
  section = text.split(f"## segnet_multi_improved_cv exp7, {split} slices")[1].split("\n## ")[0]
  table = {}
  for cls in CLASSES:
    block = section.split(f"### {cls}\n")[1].split("###")[0]
    for fold in range(5):
      row = re.search(rf"^\| {fold} \| (.*)$", block, re.M).group(1)
      cells = [c.strip() for c in row.split("|")]
      table[cls, fold] = (None if cells[0].startswith("(no ") else
                          tuple(float(cells[i]) for i in (0, 1, 2, 4)))
  return table


def check_config_seed0(config, split):
  """Asserts that the config's seed 0, re-run in this session, gives R25's `config` table."""
  for fold in range(5):
    rerun = run_dice(CONFIG_SEED0, fold, split)
    for cls in CLASSES:
      expected = None if config[cls, fold] is None else config[cls, fold][0]
      assert fmt(rerun[cls]) == fmt(expected), (split, fold, cls, rerun[cls], expected)


def mean(values):
  values = [v for v in values if v is not None]
  return sum(values) / len(values)


def fmt(value):
  return "—" if value is None else f"{value:.3f}"


def main():
  for split in ("val", "test"):
    config = r25_dice(split)
    check_config_seed0(config, split)
    cosine = {(seed, fold): run_dice(COSINE[seed], fold, split) for seed in range(3) for fold in range(5)}
    ensemble = {fold: run_dice(COSINE_ENSEMBLE, fold, split) for fold in range(5)}
    print(f"\n## {split} slices: pooled Dice per fold (flip TTA, last checkpoint)\n")
    print("The config's seed 0, re-run in this session, equals R25's on every fold and class.\n")
    print("| class | schedule | fold 0 | fold 1 | fold 2 | fold 3 | fold 4 | mean over folds | seeds 0 / 1 / 2 (means over folds) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows_of = {}
    for cls in CLASSES:
      present = [fold for fold in range(5) if config[cls, fold] is not None]
      rows = rows_of[cls] = {
          "piecewise, mean of seeds": [mean(config[cls, f][:3]) if f in present else None for f in range(5)],
          "cosine, mean of seeds": [mean([cosine[s, f][cls] for s in range(3)]) if f in present else None
                                    for f in range(5)],
          "piecewise, ensemble": [config[cls, f][3] if f in present else None for f in range(5)],
          "cosine, ensemble": [ensemble[f][cls] if f in present else None for f in range(5)],
      }
      seeds = {
          "piecewise, mean of seeds": [mean([config[cls, f][s] for f in present]) for s in range(3)],
          "cosine, mean of seeds": [mean([cosine[s, f][cls] for f in present]) for s in range(3)],
      }
      for name, per_fold in rows.items():
        print(f"| {cls} | {name} | " + " | ".join(fmt(v) for v in per_fold)
              + f" | {fmt(mean(per_fold))} | " + " / ".join(fmt(v) for v in seeds.get(name, [])) + " |")
    print()
    for cls, rows in rows_of.items():
      def higher(name):  # Folds (with the class) where the cosine row beats the piecewise one.
        pairs = [(a, b) for a, b in zip(rows[f"piecewise, {name}"], rows[f"cosine, {name}"])
                 if a is not None]
        return f"{sum(b > a for a, b in pairs)} of {len(pairs)}"
      print(f"- {cls}: cosine higher on {higher('mean of seeds')} folds (mean of seeds), "
            f"{higher('ensemble')} (ensembles)")


if __name__ == "__main__":
  main()
