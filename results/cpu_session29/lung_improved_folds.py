"""The twenty-ninth session's lung_resnet folds as lung_resnet_improved folds, for the threshold
search (covseg_jax.threshold predicts each run as its config's final evaluation does).

lung_resnet_improved is lung_resnet with eval.tta_flip and eval.fill_holes set and nothing else,
so a lung_resnet fold run is, weight for weight, the improved config's run of that fold. Each
fold directory of runs/s29/lung_resnet_cv_e40 is copied to runs/s29/lung_resnet_improved_cv_e40
with those two fields set in config.json, and the result is checked field by field against the
config that `covseg_jax.sweep --config=configs/lung_resnet_improved.py:cpu --folds=5
--config.train.epochs=40` gives that fold. Run from the repository root:
PYTHONPATH=. python results/cpu_session29/lung_improved_folds.py
"""
import json
import os
import shutil

from covseg_jax import config_file
from results.cpu_session30.lung_unet_val import ADDED_LATER

SOURCE = "runs/s29/lung_resnet_cv_e40"
TARGET = "runs/s29/lung_resnet_improved_cv_e40"

for fold in range(5):
  source, target = f"{SOURCE}/fold{fold}", f"{TARGET}/fold{fold}"
  if not os.path.isfile(f"{source}/test_metrics.json"):
    print(f"{source}: not finished, skipped")
    continue
  if not os.path.isdir(target):
    shutil.copytree(source, target)
    os.remove(f"{target}/test_metrics.json")  # lung_resnet's final evaluation, not this config's.
    shutil.rmtree(f"{target}/report")
  with open(f"{target}/config.json", encoding="utf-8") as f:
    config = json.load(f)
  config["eval"]["tta_flip"] = config["eval"]["fill_holes"] = True
  with open(f"{target}/config.json", "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
  expected = config_file.load(
      "configs/lung_resnet_improved.py:cpu",
      ["--config.data.split=kfold", "--config.data.num_folds=5", f"--config.data.fold={fold}",
       "--config.train.epochs=40"])
  expected = json.loads(expected.to_json_best_effort())
  got, want = {**ADDED_LATER, **config_file.flatten(config)}, config_file.flatten(expected)
  differ = {k: (got.get(k), want.get(k)) for k in got.keys() | want.keys()
            if got.get(k) != want.get(k)}
  assert not differ, (target, differ)
  print(f"{target}: lung_resnet_improved's config of fold {fold}")
