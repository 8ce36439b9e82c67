"""Pooled Dice per fold of seeds 0, 1, 2, their mean and their ensemble (RESULTS.md block R25).

Reads the val_metrics.json and test_metrics.json that `covseg_jax.main --mode=evaluate` and
`covseg_jax.ensemble` wrote (each with the config's final evaluation) and prints Markdown tables.
Run from the repository root: python results/cpu_session25/seed_ensembles_table.py
"""
import json, math, sys
R = {"seed 0": "runs/s23/{s}/{e}/fold{f}", "seed 1": "runs/s25/{s}_seed1/{e}/fold{f}",
     "seed 2": "runs/s25/{s}_seed2/{e}/fold{f}", "ensemble": "runs/s25/{s}_ensemble/{e}/fold{f}"}
for sweep, exp, classes in (("segnet_binary_improved_cv", "exp4", ["infected"]),
                            ("segnet_multi_improved_cv", "exp7",
                             ["ground-glass opacity", "consolidation", "pleural effusion"])):
  for split in ("val", "test"):
    print(f"\n## {sweep} {exp}, {split} slices: pooled Dice per fold (config's final evaluation)\n")
    for cls in classes:
      print(f"### {cls}\n")
      print("| fold | seed 0 | seed 1 | seed 2 | mean of seeds | ensemble | ensemble - mean |")
      print("|---|---|---|---|---|---|---|")
      sums = {k: [] for k in R}; settings = set(); diffs = []; up = n = 0
      for f in range(5):
        vals = {}
        for k, p in R.items():
          d = json.load(open(p.format(s=sweep, e=exp, f=f) + f"/{split}_metrics.json"))
          c = d["classes"].get(cls)
          # A class absent from the fold's slices has no Dice to average.
          present = c is not None and c["sensitivity"] is not None
          vals[k] = c["dice"] if present else float("nan")
          settings.add((d["tta_flip"], d["foreground_threshold"], d["checkpoint"]))
        mean = sum(vals[k] for k in ("seed 0", "seed 1", "seed 2")) / 3
        diff = vals["ensemble"] - mean
        if not math.isnan(diff):
          for k in R: sums[k].append(vals[k])
          sums.setdefault("mean", []).append(mean); diffs.append(diff); n += 1; up += diff > 0
        if math.isnan(diff):
          print(f"| {f} | (no {cls} in these slices) | | | | | |")
          continue
        print(f"| {f} | " + " | ".join(f"{vals[k]:.3f}" for k in ("seed 0", "seed 1", "seed 2"))
              + f" | {mean:.3f} | {vals['ensemble']:.3f} | {diff:+.3f} |")
      avg = lambda xs: sum(xs) / len(xs)
      print(f"| mean of {n} | " + " | ".join(f"{avg(sums[k]):.3f}" for k in ("seed 0", "seed 1", "seed 2"))
            + f" | {avg(sums['mean']):.3f} | {avg(sums['ensemble']):.3f} | {avg(diffs):+.3f} (up on {up} of {n}) |")
      (tta, threshold, which), = settings  # One evaluation rule for every file of a table.
      print(f"\nFlip TTA {tta}, foreground threshold {threshold}, {which} checkpoint.\n")
