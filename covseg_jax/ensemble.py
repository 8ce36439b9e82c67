"""Ensembles: several trained runs used as one model, the mean of their softmax outputs.

  python -m covseg_jax.ensemble --members=runs/a,runs/b,runs/c --out=runs/abc \
      [--checkpoint=last] [--splits=val,test] [--tta_flip | --notta_flip]

The members must share their data config (split, fold, image size, preprocessing): the same
experiment trained with different seeds, or different networks on the same fold. Their networks
and losses may differ. The one exception is an ensemble over folds: runs of data.split=
'paper_kfold' may differ in data.fold, since every fold is tested on the paper's test slices and
centred on the same mean image; their members were trained and validated on different slices, so
such an ensemble is evaluated on the test split only. A slice's prediction is the argmax of the
mean over the members of their softmax (with test-time flips, of each member's flip-averaged
softmax), or for two classes that mean against the first member's eval.foreground_threshold
(with the first member's eval.logit_offsets, the argmax of its log plus the offsets).

The command writes an ensemble directory, which the rest of the project reads like a training
run's: ensemble.json (the members, as paths relative to it, their checkpoint, the command, device
and date), config.json (the first member's config, eval.fill_holes, eval.foreground_threshold
and eval.logit_offsets included, with `ensemble.members` and the ensemble's eval.checkpoint and
eval.tta_flip) and normalization.npz (the first member's), then evaluates each split (default:
val and test; test for an ensemble over folds) as `python -m covseg_jax.main --mode=evaluate` would (<split>_metrics.json and
report/).
`covseg_jax.main --mode=evaluate`, `covseg_jax.predict` and `covseg_jax.results` take the
directory as they take a run's. Per-image losses use the first member's loss on the log of the
mean softmax. Bad input (a missing or incomplete member, members whose data differ, an --out that
is not an ensemble directory) ends with a one-line `error: ...` and exit status 2, before anything
is written.
"""
import argparse
import dataclasses
import datetime
import json
import os
import shlex
import shutil
import sys
from typing import Tuple

import jax
import jax.numpy as jnp

from covseg_jax import checkpoint, config_file, evaluate, parallel
from covseg_jax.data import pipeline
from covseg_jax.errors import InputError
from covseg_jax.sweep import describe_device


@dataclasses.dataclass(frozen=True)
class EnsembleModel:
  """The members' flax modules as one model: apply(variables, images) with a tuple of the
  members' variables returns the log of the mean of their softmax, float32 (B, S, S, C).

  Hashable (frozen, of hashable modules), so it can be a static argument of jax.jit like a module.
  """
  members: Tuple

  def apply(self, variables, images, train=False):
    log_probs = jnp.stack([
        jax.nn.log_softmax(member.apply(v, images, train=train).astype(jnp.float32), axis=-1)
        for member, v in zip(self.members, variables)])
    return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(len(self.members))


def read_record(workdir):
  """ensemble.json as a dict; InputError if unreadable."""
  path = os.path.join(workdir, checkpoint.ENSEMBLE_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
    if not isinstance(record.get("members"), list):
      raise ValueError("no list of members")
  except (OSError, ValueError, AttributeError) as e:
    raise InputError(f"{path}: unreadable ensemble record ({e})") from None
  return record


def member_paths(workdir):
  """The members' run directories (stored relative to the ensemble directory)."""
  return [os.path.normpath(os.path.join(workdir, m)) for m in read_record(workdir)["members"]]


def _data_difference(first, other):
  """The first 'field: a vs b' where two data configs differ, or None."""
  first, other = config_file.flatten(first, "data."), config_file.flatten(other, "data.")
  for key in sorted(first.keys() | other.keys()):
    if first.get(key) != other.get(key):
      return f"{key}: {other.get(key)!r} vs {first.get(key)!r}"
  return None


def restore_members(members, which, mesh):
  """checkpoint.restore_run of each member, checked to share their data config."""
  if len(members) < 2:
    raise InputError(f"an ensemble needs at least two members, got {members}")
  real = [os.path.realpath(m) for m in members]
  for i, path in enumerate(real):
    if path in real[:i]:
      raise InputError(f"{members[i]}: listed twice as a member")
  runs = [checkpoint.restore_run(m, which, mesh) for m in members]
  first = runs[0].config.data.to_dict()
  for member, run in zip(members[1:], runs[1:]):
    data = run.config.data.to_dict()
    if first["split"] == data["split"] == "paper_kfold":
      data["fold"] = first["fold"]  # Folds of the same slices, tested on the same ones.
    difference = _data_difference(first, data)
    if difference:
      raise InputError(f"{member}: its data differ from {members[0]}'s ({difference}); an "
                       "ensemble's members must share their data config")
  return runs


def restore(workdir, which=None, mesh=None):
  """An ensemble directory restored as a checkpoint.Run: model an EnsembleModel, variables the
  tuple of the members' variables, step the first member's.

  which: the members' checkpoint ('best', 'last' or a step); None takes ensemble.json's.
  """
  record = read_record(workdir)
  which = checkpoint.parse_which(record["checkpoint"] if which is None else which)
  mesh = parallel.create_mesh() if mesh is None else mesh
  return _as_one_run(restore_members(member_paths(workdir), which, mesh),
                     checkpoint.load_config(workdir))


def _as_one_run(runs, config):
  """The members' restored runs as one checkpoint.Run with the ensemble's config."""
  return dataclasses.replace(
      runs[0], config=config, model=EnsembleModel(tuple(r.model for r in runs)),
      variables=tuple(r.variables for r in runs))


def _check_out(out, members):
  """Refuses an --out that is a member, or an existing directory other than this ensemble's."""
  if os.path.realpath(out) in {os.path.realpath(m) for m in members}:
    raise InputError(f"{out}: is one of the members; choose a new --out")
  if not os.path.exists(out):
    return
  if not os.path.isdir(out):
    raise InputError(f"{out}: exists and is not a directory")
  if checkpoint.is_ensemble(out):
    if [os.path.realpath(m) for m in member_paths(out)] != [os.path.realpath(m) for m in members]:
      raise InputError(f"{out}: an ensemble of other members ({checkpoint.ENSEMBLE_FILE}); "
                       "choose a new --out")
  elif os.listdir(out):
    raise InputError(f"{out}: exists and is not an ensemble directory; choose a new --out")


def create(members, out, which="last", tta_flip=None, command=None, splits=None):
  """Writes the ensemble directory `out` of the run directories `members` (module docstring).

  tta_flip: None takes the members' eval.tta_flip, which must then agree.
  splits: the splits the caller is to evaluate; None for the default.
  Returns (splits, run): the splits, by default val and test or test for an ensemble over folds,
  and the ensemble restored as one checkpoint.Run, to pass to evaluate.evaluate_run so that the
  members are restored once (and the steps recorded are the steps evaluated).
  Raises InputError before writing anything if a member or `out` is unusable (a member whose
  split.json names other slices than its config gives now among them), or `splits` names val
  or train for an ensemble over folds.
  """
  _check_out(out, members)
  runs = restore_members(members, which, parallel.create_mesh())
  if tta_flip is None:
    flags = {bool(r.config.eval.get("tta_flip", False)) for r in runs}
    if len(flags) > 1:
      raise InputError("the members differ in eval.tta_flip: choose with --tta_flip or "
                       "--notta_flip")
    tta_flip = flags.pop()
  relative = [os.path.relpath(m, out) for m in members]
  config = runs[0].config.copy_and_resolve_references()
  config.eval.checkpoint = str(which)
  config.eval.tta_flip = bool(tta_flip)
  config.ensemble = {"members": relative, "folds": [int(r.config.data.fold) for r in runs]}
  if splits is None:
    splits = ["test"] if checkpoint.is_fold_ensemble(config) else ["val", "test"]
  for split in splits:
    checkpoint.check_split(out, config, split)
  dataset = pipeline.load_dataset(config.data)
  member_parts = checkpoint.member_split_parts(config)
  for member in members:
    checkpoint.check_split_record(member, dataset, member_parts)
  record = {"members": relative, "checkpoint": str(which), "tta_flip": bool(tta_flip),
            "member_steps": [int(r.step) for r in runs], "command": command,
            "device": describe_device(),
            "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
  os.makedirs(out, exist_ok=True)
  shutil.copyfile(os.path.join(members[0], checkpoint.NORMALIZATION_FILE),
                  os.path.join(out, checkpoint.NORMALIZATION_FILE))
  with open(os.path.join(out, checkpoint.CONFIG_FILE), "w", encoding="utf-8") as f:
    f.write(config.to_json_best_effort(indent=2))
  with open(os.path.join(out, checkpoint.ENSEMBLE_FILE), "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2)
  return splits, _as_one_run(runs, checkpoint.load_config(out))  # As restore() reads it.


def main(argv):
  parser = argparse.ArgumentParser(
      prog="python -m covseg_jax.ensemble",
      description="Evaluate several trained runs as one model (mean of their softmax).")
  parser.add_argument("--members", required=True,
                      help="comma-separated run directories sharing their data config")
  parser.add_argument("--out", required=True, help="the ensemble directory to write")
  parser.add_argument("--checkpoint", default="last",
                      help="the members' checkpoint: best, last (default) or a step number")
  parser.add_argument("--splits", default=None,
                      help="comma-separated splits to evaluate (default: val,test; test for an "
                           "ensemble over folds)")
  parser.add_argument("--tta_flip", dest="tta_flip", action="store_true", default=None,
                      help="test-time flips (default: the members' eval.tta_flip)")
  parser.add_argument("--notta_flip", dest="tta_flip", action="store_false")
  options = parser.parse_args(argv)
  try:
    which = checkpoint.parse_which(options.checkpoint)
  except ValueError as e:
    parser.error(f"--checkpoint: {e}")
  members = [m for m in options.members.split(",") if m]
  splits = None
  if options.splits is not None:
    splits = [s for s in options.splits.split(",") if s]
    if not splits or set(splits) - {"train", "val", "test"}:
      parser.error(f"--splits must name train, val or test, got {options.splits!r}")
  try:
    splits, run = create(members, options.out, which, options.tta_flip,
                         shlex.join(["python", "-m", "covseg_jax.ensemble", *argv]), splits)
    for split, results in evaluate.evaluate_run(options.out, splits=splits, run=run).items():
      print(f"{split}: global accuracy {results['global_accuracy_mean']:.4f}; Dice "
            + ", ".join(f"{name} {m['dice']:.3f}" for name, m in results["classes"].items()))
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"written to {options.out}/", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
