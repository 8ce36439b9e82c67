"""configs/segnet_binary_improved.py exp 4 with three changes it does not make, on the five
disjoint :cpu folds (128x128, 40 epochs), seeds 0, 1 and 2, each against the config with the same
seed, all trained on the same folds and the same CPU (an Intel Xeon with AVX-512; block R38):
  - data.lesion_class: the network trains on the multi-class task's four classes (background
    and healthy lung, ground glass, consolidation, pleural effusion) and predicts infected as
    the three lesion classes merged (their softmax probabilities summed), so that one kind of
    lesion need not share a class with others that look nothing like it;
  - train.lr_schedule=cosine: the learning rate decays along half a cosine to 0 at the last
    step instead of the paper's x0.95 every 12 epochs (a candidate on the multi-class config's
    folds, R27, not tried on the binary one);
  - train.gamma_range=0.5: random gamma, the one intensity augmentation (tried on the
    multi-class config's folds with one seed, R30, not on the binary one).
Each fold's validation slices (the decision), then its test slices, with the config's final
evaluation (flip TTA, foreground threshold 0.8, last checkpoint).

The script checks that each fold's config.json is, field by field,
configs/segnet_binary_improved.py:cpu,exp4 with the sweep's overrides (the fold, the change, the
seed). Run from the repository root:
PYTHONPATH=. python results/cpu_session38/segnet_binary_levers_val.py
"""
import json

from results.cpu_session35.lung_unet_levers_val import check_and_tabulate, fold_table, seeds_line

R38 = "runs/s38/segnet_binary_improved_cv"
CHANGES = {  # name: (the sweep's suffix, its override)
    "lesion classes": ("_lesion", "--config.data.lesion_class=True"),
    "cosine": ("_cosine", "--config.train.lr_schedule=cosine"),
    "gamma": ("_gamma", "--config.train.gamma_range=0.5"),
}


def runs_and_comparisons(change, suffix, override, root=R38, seeds=(0, 1, 2)):
  """The config's runs (R38's) and the change's (root + suffix, trained with `override`), seed
  by seed ({name: (runs, the sweep's overrides)}), and the (change, config) pairs of the same
  seed."""
  runs, comparisons = {}, []
  for seed in seeds:
    seed_suffix = f"_seed{seed}" if seed else ""
    seed_override = [f"--config.seed={seed}"] if seed else []
    base, changed = f"segnet_binary_improved, seed {seed}", f"{change}, seed {seed}"
    runs[base] = (f"{R38}{seed_suffix}/exp4/fold{{}}", seed_override)
    runs[changed] = (f"{root}{suffix}{seed_suffix}/exp4/fold{{}}", [override, *seed_override])
    comparisons.append((changed, base))
  return runs, tuple(comparisons)


def load(run, split):
  """The pooled infected Dice of run's evaluation on split, and the per-slice Dice of the slices
  with infection (those without have no sensitivity, and a Dice only where the model finds some)."""
  with open(f"{run}/{split}_metrics.json", encoding="utf-8") as f:
    d = json.load(f)
  assert (d["tta_flip"], d["foreground_threshold"], d["checkpoint"]) == (True, 0.8, "last"), run
  per_image = d["per_image"]
  per_slice = {number: dice for number, dice, sensitivity
               in zip(d["slice_numbers"], per_image["dice"]["infected"],
                      per_image["sensitivity"]["infected"]) if sensitivity is not None}
  return d["classes"]["infected"]["dice"], per_slice


def check_and_compare(runs, comparisons, change=None):
  """Checks every fold's config.json of `runs`, then prints the val and test tables of the
  `comparisons` (change, config) with, given `change`, the mean difference over the seeds."""
  def table(split):
    dice = fold_table(split, runs, comparisons, load=load, what="pooled infected Dice per fold "
                      "(flip TTA, threshold 0.8, last checkpoint)")
    if change:
      seeds_line(dice, comparisons, change)

  check_and_tabulate(runs, table, config_arg="configs/segnet_binary_improved.py:cpu,exp4")


def main():
  for change in CHANGES:
    print(f"\n# {change}")
    check_and_compare(*runs_and_comparisons(change, *CHANGES[change]), change)


if __name__ == "__main__":
  main()
