"""lung_unet:cpu with train.l2 = 0 on the paper's split at the config's own length (128x128, 160
epochs), seeds 0, 1 and 2, against the config (the paper's L2 1e-4) with the same seed: R39's
runs read at their last step (results/cpu_session39/last_step.py; R39's folds show that reading
equal to the bit to lung_unet trained without the average), trained on the same CPU (an Intel
Xeon with AVX-512). Validation (the decision) and test lung Dice with the config's final
evaluation (flip TTA and hole filling), and the two test slices R29 and R30 located. Block R41,
the repetition at scale that the folds' gain (+0.0032 over three seeds, l2_val.md) asked for
before the config drops its L2.

The script checks that each run's config.json is, field by field, configs/lung_unet.py:cpu with
the recorded overrides. Run from the repository root:
PYTHONPATH=. python results/cpu_session41/lung_unet_e160_l2.py
"""
from results.cpu_session31.lung_unet_seeds import check_config, table_header, table_row
from results.cpu_session39.lung_unet_e160_ema import seeds_summary

RUNS = {  # name: (run, its overrides but the seed)
    "lung_unet": ("runs/s39/lung_unet_e160_ema{}_last_step", ["--config.train.ema_epochs=4"]),
    "L2 0": ("runs/s41/lung_unet_e160_l2_0{}", ["--config.train.l2=0"]),
}


def main():
  print("## lung_unet:cpu, paper split, 128x128, 160 epochs, L2 1e-4 (the config) and 0: lung "
        "Dice (flip TTA and hole filling, last step)\n")
  print(table_header())
  scores = {name: ([], []) for name in RUNS}
  for seed in range(3):
    for name, (pattern, overrides) in RUNS.items():
      run = pattern.format(f"_seed{seed}" if seed else "")
      check_config(run, ["--config.train.epochs=160", *overrides, f"--config.seed={seed}"])
      val, test, line = table_row(f"seed {seed}, {name}", run)
      scores[name][0].append(val)
      scores[name][1].append(test)
      print(line)
  print()
  seeds_summary(scores, "L2 0 against the config")


if __name__ == "__main__":
  main()
