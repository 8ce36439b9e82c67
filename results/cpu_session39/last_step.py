"""Evaluates a train.ema_epochs run at its last step's weights instead of their average: the
checkpoint's 'train' item keeps them (covseg_jax/checkpoint.py), and the average changes no
update (R39's folds: the same training losses to the bit as runs without it), so this reads the
run the config without the average would have trained, at no training cost.

  PYTHONPATH=. python results/cpu_session39/last_step.py RUN OUT [SPLIT ...]

writes OUT (a new directory) holding RUN's run files and OUT/<split>_metrics.json and reports of
the last step's weights, with RUN's final evaluation (its TTA, hole filling, threshold).
"""
import dataclasses
import os
import shutil
import sys

import orbax.checkpoint as ocp

from covseg_jax import checkpoint, evaluate, parallel


def last_step_run(workdir, mesh):
  """checkpoint.restore_run(workdir, 'last') with the last step's variables in place of the
  average."""
  run = checkpoint.restore_run(workdir, "last", mesh)
  manager = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), checkpoint.CHECKPOINT_DIR),
                                  options=ocp.CheckpointManagerOptions(create=False))
  assert manager.latest_step() == run.step, (workdir, manager.latest_step(), run.step)
  train = manager.restore(run.step, args=ocp.args.Composite(train=ocp.args.StandardRestore()))
  manager.close()
  variables = train["train"]["variables"]
  return dataclasses.replace(run, variables=parallel.replicate(
      {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}, mesh))


def main(argv):
  workdir, out, *splits = argv
  assert checkpoint.load_config(workdir).train.ema_epochs > 0, workdir
  os.makedirs(out)
  for name in (checkpoint.CONFIG_FILE, checkpoint.NORMALIZATION_FILE, checkpoint.SPLIT_FILE):
    shutil.copy(os.path.join(workdir, name), out)
  mesh = parallel.create_mesh()
  run = last_step_run(workdir, mesh)
  evaluate.evaluate_run(out, "last", splits=splits or ("val", "test"), mesh=mesh, run=run)


if __name__ == "__main__":
  main(sys.argv[1:])
