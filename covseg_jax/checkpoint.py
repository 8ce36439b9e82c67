"""Checkpoints (orbax): periodic and best-by-validation saves, resume with fallback, restore a run.

A run directory holds everything evaluation and inference need:

  config.json              the resolved config
  normalization.npz        how images were prepared for the network (see `write_run_files`)
  split.json               the slices it trained, validated and was tested on (`check_split_record`)
  checkpoints/<step>/      the latest checkpoint.max_to_keep periodic saves (always the last step)
  checkpoints_best/<step>/ the latest checkpoint.max_to_keep improvements of checkpoint.best_metric

Each checkpoint holds the items 'model' ({'params', 'batch_stats'}: what evaluation and inference
use), 'train' ({'step', 'opt_state'}) and, in checkpoints_best, 'meta' (JSON: the validation
scalars). With train.ema_epochs, 'model' holds the moving average of the variables and 'train'
the last step's too, as 'variables'. The data order and every random key are pure functions of
(seed, step) (train.py), so nothing else needs saving for a resumed run to replay the
uninterrupted one. Two managers, because with orbax's best_fn max_to_keep keeps the best N
rather than the latest.
"""
import dataclasses
import functools
import gc
import json
import os
import sys
import warnings
from asyncio.log import logger as asyncio_logger
from typing import Any, Union

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from covseg_jax import config_file, models, parallel
from covseg_jax.data import preprocess
from covseg_jax.errors import InputError

CONFIG_FILE = "config.json"
NORMALIZATION_FILE = "normalization.npz"
SPLIT_FILE = "split.json"
SPLIT_PARTS = ("train", "val", "test")
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "checkpoints_best"
ENSEMBLE_FILE = "ensemble.json"  # Marks an ensemble directory (covseg_jax.ensemble).

# What orbax raises for a finished checkpoint whose files are truncated, corrupted or missing:
# JSON and tensorstore errors are ValueErrors, a missing item directory a KeyError.
DAMAGED_CHECKPOINT_ERRORS = (OSError, ValueError, KeyError)


def parse_which(text):
  """'best' or 'last' as they are; a step number as an int. Raises ValueError otherwise."""
  text = str(text).strip()
  if text in ("best", "last"):
    return text
  if text.isdigit():
    return int(text)
  raise ValueError(f"checkpoint must be 'best', 'last' or a step number, got {text!r}")


# Config fields a resumed run may change, since none changes what it learns: the data's location,
# the length (a larger train.epochs extends a finished run: the piecewise learning-rate schedule
# depends on the step alone; the cosine one on the length too, so check_resumable holds its
# train.epochs), how often it logs, validates and saves, and the final evaluation.
RESUMABLE_FIELDS = ("data.data_dir", "train.epochs", "train.steps_per_call",
                    "train.log_every_steps", "train.val_every_steps",
                    "train.image_summary_every_steps", "train.image_summary_slices")
RESUMABLE_SECTIONS = ("checkpoint", "eval")
# Fields added with a default that trains differently from the code before them: a config.json
# without one was trained with the value here. Fields added with a default that trains as before
# need no entry.
TRAINED_BEFORE_FIELD = {"train.center_after_augment": False,  # 061e764, MATLAB's order.
                        "train.l2_batchnorm_offsets": False}  # 36c6a07, MATLAB's OffsetL2Factor.


def check_resumable(workdir, config):
  """InputError if `workdir` holds a run whose config.json differs from `config` in a field that
  shapes training (any but RESUMABLE_FIELDS and RESUMABLE_SECTIONS): resuming would mix two
  experiments under one record. A field the saved config lacks (a run from an older version)
  counts as its TRAINED_BEFORE_FIELD value where it has one, and passes otherwise.
  """
  if not os.path.isfile(os.path.join(workdir, CONFIG_FILE)):
    return
  saved = {**TRAINED_BEFORE_FIELD, **config_file.flatten(load_config(workdir))}
  given = config_file.flatten(json.loads(config.to_json_best_effort()))  # Tuples as lists.
  resumable = set(RESUMABLE_FIELDS)
  if saved.get("train.lr_schedule") == "cosine":  # Its learning rate at a step depends on the length.
    resumable.discard("train.epochs")
  for key in sorted(saved.keys() & given.keys()):
    if (saved[key] != given[key] and key not in resumable
        and key.split(".")[0] not in RESUMABLE_SECTIONS):
      raise InputError(f"{workdir}: holds a run with {key}={saved[key]!r}, not {given[key]!r}: "
                       "give a new --workdir, or resume it with its own config")


def _write_atomically(path, text):
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(path + ".tmp", path)  # Other processes may be reading it (check_resumable).


def split_record(dataset):
  """{part: the 1-based slice numbers of `dataset`'s part} for each of SPLIT_PARTS."""
  return {part: [int(s) for s in dataset.split(part).slice_numbers] for part in SPLIT_PARTS}


def write_run_files(workdir, config, dataset):
  """Writes config.json, split.json and normalization.npz (process 0 only).

  split.json holds split_record(dataset). normalization.npz holds what inference needs to
  prepare a new slice like the training ones: 'method' (data.normalization), 'image_size',
  'lung_mask' (zero outside the lungs first), 'image_source', 'task', 'class_names' and, for
  'zero_center', the training 'mean_image'.
  """
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  _write_atomically(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2))
  _write_atomically(os.path.join(workdir, SPLIT_FILE), json.dumps(split_record(dataset)))
  arrays = {
      "method": np.array(config.data.normalization),
      "image_size": np.array(config.data.image_size),
      "lung_mask": np.array(bool(config.data.lung_mask)),
      "image_source": np.array(config.data.image_source),
      "task": np.array(dataset.task),
      "class_names": np.array(dataset.class_names),
  }
  if dataset.mean_image is not None:
    arrays["mean_image"] = np.asarray(dataset.mean_image, np.float32)
  np.savez(os.path.join(workdir, NORMALIZATION_FILE), **arrays)


def member_split_parts(config):
  """The parts of split.json an ensemble's members must share with its data: the test slices
  alone for an ensemble over folds (`is_fold_ensemble`), else all."""
  return ("test",) if is_fold_ensemble(config) else SPLIT_PARTS


def check_split_record(workdir, dataset, parts=SPLIT_PARTS):
  """InputError if the run in `workdir` recorded other slices in `parts` of its split.json than
  `dataset`, loaded from its config now, holds: its split's code or its data changed since it
  trained, and resuming or evaluating it would mix or misname slices. (kfold_split changed on
  2026-12-05.)

  A run without split.json (trained before it was recorded, or not yet started) passes. For an
  ensemble directory each member is checked: on the test slices alone for an ensemble over folds,
  whose members trained and validated on different slices.
  """
  if is_ensemble(workdir):
    from covseg_jax import ensemble  # Imported here: ensemble builds on this module.
    member_parts = member_split_parts(load_config(workdir))
    for member in ensemble.member_paths(workdir):
      check_split_record(member, dataset, member_parts)
    return
  path = os.path.join(workdir, SPLIT_FILE)
  if not os.path.isfile(path):
    if os.path.isfile(os.path.join(workdir, CONFIG_FILE)):
      data = load_config(workdir).data
      if data.split == "kfold" and 0 < data.fold < data.num_folds - 1:
        logging.warning("%s: no %s; if it trained before 2026-12-05, fold %d trained and "
                        "validated on other slices than kfold_split gives now (its test slices "
                        "are the same)", workdir, SPLIT_FILE, data.fold)
    return
  try:
    with open(path, encoding="utf-8") as f:
      recorded = json.load(f)
    recorded = {part: [int(s) for s in recorded[part]] for part in parts}
  except (OSError, ValueError, TypeError, KeyError) as e:
    raise InputError(f"{path}: unreadable split record ({e!r})") from None
  now = split_record(dataset)
  for part in parts:
    if recorded[part] != now[part]:
      changed = sorted(set(recorded[part]) ^ set(now[part]))
      raise InputError(
          f"{path}: the run's {part} slices differ from those its data config gives now "
          f"(slices {changed[:6]}{' ...' if len(changed) > 6 else ''} differ): the split or "
          "the data changed since it trained; use the code it trained with, or a new --workdir")


def is_ensemble(workdir):
  """Whether `workdir` is an ensemble directory (covseg_jax.ensemble) rather than a run's."""
  return os.path.isfile(os.path.join(workdir, ENSEMBLE_FILE))


def is_fold_ensemble(config):
  """Whether a run's config is that of an ensemble over folds (members of different data.fold),
  whose members were trained and validated on different slices: only its test split is fair."""
  return len(set(config.get("ensemble", {}).get("folds", []))) > 1


def check_split(workdir, config, split_name):
  """InputError if the run in `workdir` cannot be evaluated on `split_name` (an ensemble over
  folds on anything but its test split)."""
  if split_name != "test" and is_fold_ensemble(config):
    raise InputError(f"{workdir}: an ensemble over folds, whose members were trained and "
                     f"validated on different slices: only its test split can be evaluated, "
                     f"not {split_name}")


def load_config(workdir):
  """The run's resolved config; InputError if config.json is missing or unreadable."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise InputError(f"{workdir}: no {CONFIG_FILE}, not a training run directory")
  try:
    with open(path, encoding="utf-8") as f:
      return ml_collections.ConfigDict(json.load(f))
  except (OSError, ValueError) as e:
    raise InputError(f"{path}: unreadable config ({e})") from e


def load_normalization(workdir):
  """normalization.npz as a dict of Python values (mean_image an array, or None)."""
  path = os.path.join(workdir, NORMALIZATION_FILE)
  if not os.path.isfile(path):
    raise InputError(f"{workdir}: no {NORMALIZATION_FILE}, not a complete training run")
  try:
    with np.load(path, allow_pickle=False) as f:
      return {
          "method": str(f["method"]),
          "image_size": int(f["image_size"]),
          "lung_mask": bool(f["lung_mask"]),
          "image_source": str(f["image_source"]),
          "task": str(f["task"]),
          "class_names": tuple(str(name) for name in f["class_names"]),
          "mean_image": np.asarray(f["mean_image"]) if "mean_image" in f else None,
      }
  except (OSError, ValueError, KeyError) as e:
    raise InputError(f"{path}: unreadable normalization file ({e})") from e


def _abstract(tree, sharding=None):
  """ShapeDtypeStructs to restore into: each leaf's own sharding, or `sharding` for all."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=x.sharding if sharding is None else sharding), tree)


def _state_items(state):
  train = {"step": state.step, "opt_state": state.opt_state}
  if state.ema is None:
    return {"model": state.variables(), "train": train}
  return {"model": state.ema, "train": {**train, "variables": state.variables()}}


# The warning for an unawaited coroutine of orbax's array-metadata reads (`_drop_abandoned_reads`).
ABANDONED_METADATA_READ = r"coroutine '[\w.]*_get_array_metadatas' was never awaited"


def _is_not_an_abandoned_read(record):
  """False for asyncio's report of a read task garbage-collected with its error unread."""
  message = record.getMessage()
  return not (message.startswith("Task exception was never retrieved")
              and "coro=<async_deserialize" in message)


def _drop_abandoned_reads():
  """Silences the aftermath of a failed restore: once orbax has given up on a damaged
  checkpoint and closed its asyncio loop, tensorstore still finishes the other arrays' reads and
  hands each result to that closed loop; each hand-over ends as an unraisable
  RuntimeError('Event loop is closed'), which Python prints as a traceback, some before orbax's
  error reaches us, some after the restore has returned. The reads of the other arrays that
  failed too are garbage-collected with their errors unread, which asyncio logs with a
  traceback ('Task exception was never retrieved'), when the collection happens to come before
  the process ends. And the array-metadata reads orbax created but never started are
  garbage-collected unawaited, which Python reports as a RuntimeWarning ("coroutine
  'ArrayMetadataStore._get_array_metadatas' was never awaited"), often only as the process
  exits. From the first restore on, those three (and only those) are dropped for the rest of
  the process; every other unraisable exception still reaches the hook that was there before,
  every other asyncio message its logger, every other warning its filters.
  """
  asyncio_logger.addFilter(_is_not_an_abandoned_read)  # Added once, however often called.
  warnings.filterwarnings("ignore", message=ABANDONED_METADATA_READ, category=RuntimeWarning)
  previous = sys.unraisablehook
  if getattr(previous, "drops_abandoned_reads", False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed"):
      previous(unraisable)

  hook.drops_abandoned_reads = True
  sys.unraisablehook = hook


def _restore_newest_good(manager, steps, args):
  """Restores the newest of `steps` that orbax can read; returns (restored, step, damaged steps).

  A damaged checkpoint makes orbax raise rather than fall back, so each is tried in turn from
  the newest; `restored` is None when every one is damaged.
  """
  _drop_abandoned_reads()
  damaged = []
  for step in sorted(steps, reverse=True):
    try:
      return manager.restore(step, args=args), step, damaged
    except DAMAGED_CHECKPOINT_ERRORS as e:
      logging.warning("%s/%d is damaged (%s: %s); trying the previous checkpoint",
                      manager.directory, step, type(e).__name__, str(e).splitlines()[0][:300])
      damaged.append(step)
  return None, None, damaged


class Checkpointer:
  """Saves a TrainState periodically and when validation improves; resumes from the latest.

  Saves are asynchronous: the arrays are copied off the device before `save` returns and
  written in the background; `wait` blocks until they are on disk.
  """

  def __init__(self, workdir, checkpoint_config, total_steps):
    if checkpoint_config.best_mode not in ("min", "max"):
      raise InputError(f"config: checkpoint.best_mode must be 'min' or 'max', got "
                       f"{checkpoint_config.best_mode!r}")
    self.best_metric = checkpoint_config.best_metric
    self.best_mode = checkpoint_config.best_mode
    self.best_value = None
    policies = ocp.checkpoint_managers
    self.latest = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR),
        options=ocp.CheckpointManagerOptions(
            save_decision_policy=policies.AnySavePolicy([
                policies.FixedIntervalPolicy(checkpoint_config.every_steps),
                policies.SpecificStepsPolicy((total_steps,)),
            ]),
            preservation_policy=policies.LatestN(checkpoint_config.max_to_keep),
            cleanup_tmp_directories=True))  # Leftovers of a save cut short by a kill.
    # Saved only on improvement, so the latest N here are the best N in order.
    # Its own barrier names: orbax names a save's cross-process barriers by the step alone, so
    # two managers saving the same step (a best checkpoint at a periodic step) on several
    # processes would meet at one barrier twice ("Barrier _async_write_complete.9 is already
    # ongoing") and the job would hang.
    self.best = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), BEST_DIR),
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policies.LatestN(checkpoint_config.max_to_keep),
            cleanup_tmp_directories=True,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix=BEST_DIR)))

  def restore(self, state):
    """`state` with the arrays and step of the latest good checkpoint (unchanged if none).

    Damaged checkpoints newer than the one restored are logged and deleted, so the resumed run
    can save those steps again. Raises InputError if every checkpoint is damaged. The best value
    so far is read back too, also when a run was killed before its first periodic save.
    """
    self.best_value = self._read_best_value()
    steps = self.latest.all_steps()
    if not steps:
      return state
    args = ocp.args.Composite(**{name: ocp.args.StandardRestore(_abstract(item))
                                 for name, item in _state_items(state).items()})
    restored, step, damaged = _restore_newest_good(self.latest, steps, args)
    if restored is None:
      raise InputError(f"{self.latest.directory}: every checkpoint (steps {sorted(steps)}) is "
                       "damaged; move the directory away to train from scratch")
    if damaged:
      logging.warning("resuming from step %d: fell back past damaged checkpoint(s) %s, "
                      "now deleted", step, sorted(damaged))
      for bad in damaged:
        self.latest.delete(bad)
    logging.info("resumed from %s/%d (best %s so far: %s)", self.latest.directory, step,
                 self.best_metric, self.best_value)
    train = restored["train"]
    variables = restored["model"] if state.ema is None else train["variables"]
    return state.replace(step=train["step"], opt_state=train["opt_state"],
                         params=variables["params"], batch_stats=variables["batch_stats"],
                         ema=None if state.ema is None else restored["model"])

  def _read_best_value(self):
    """best_metric's value in the newest readable best checkpoint (None if none, or if it was
    chosen by another metric); damaged ones are deleted."""
    args = ocp.args.Composite(meta=ocp.args.JsonRestore())
    restored, _, damaged = _restore_newest_good(self.best, self.best.all_steps(), args)
    for bad in damaged:
      self.best.delete(bad)
    if restored is None or restored["meta"]["metric"] != self.best_metric:
      return None
    return restored["meta"]["value"]

  def save(self, step, state, before_save=None, force=False):
    """Saves at every checkpoint.every_steps-th step, the last step, and any step when `force`
    (a preemption); returns whether it did. before_save() runs first when it does (the loop
    flushes its logs there, so that a resumed run finds the logs of every step its checkpoint
    holds)."""
    if not (force or self.latest.should_save(step)):
      return False
    if before_save is not None:
      before_save()
    args = ocp.args.Composite(**{name: ocp.args.StandardSave(item)
                                 for name, item in _state_items(state).items()})
    return self.latest.save(step, args=args, force=True)

  def save_if_best(self, step, state, scalars):
    """Saves to checkpoints_best when scalars[best_metric] beats every earlier validation."""
    value = float(scalars[self.best_metric])
    if not np.isfinite(value):
      return False
    if self.best_value is not None and not (
        value < self.best_value if self.best_mode == "min" else value > self.best_value):
      return False
    # A run resumed from before its newest best checkpoint replays those steps; on another
    # device count rounding can make a replayed value beat the stored one at the same step.
    if step in self.best.all_steps():
      return False
    args = ocp.args.Composite(
        meta=ocp.args.JsonSave({"metric": self.best_metric, "value": value,
                                "scalars": {k: float(v) for k, v in scalars.items()}}),
        **{name: ocp.args.StandardSave(item) for name, item in _state_items(state).items()})
    self.best.save(step, args=args, force=True)
    self.best_value = value
    return True

  def wait(self):
    """Blocks until every started save is on disk."""
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self):
    self.wait()
    self.latest.close()
    self.best.close()


@dataclasses.dataclass
class Run:
  """A trained run restored for evaluation or inference."""
  config: ml_collections.ConfigDict
  model: Any  # The flax module; apply with model.apply(variables, images, train=False).
  variables: dict  # {'params', 'batch_stats'}, replicated over the mesh.
  step: int
  normalization: dict  # load_normalization's dict.
  num_classes: int
  class_names: tuple
  task: str


def _abstract_variables(model, image_size, sharding):
  dummy = jax.ShapeDtypeStruct((1, image_size, image_size, 1), jnp.float32)
  key = jax.random.key(0)
  variables = jax.eval_shape(functools.partial(model.init, train=False),
                             {"params": key, "dropout": key}, dummy)
  return _abstract({"params": variables["params"],
                    "batch_stats": variables.get("batch_stats", {})}, sharding)


def restore_run(workdir, which: Union[str, int] = "best", mesh=None) -> Run:
  """Restores a trained run from `workdir` alone.

  Args:
    workdir: the training run's directory.
    which: 'best' (by validation), 'last' (the latest periodic save) or a step number. For
      'best' and 'last' a damaged checkpoint falls back to the previous one, with a warning.
    mesh: the mesh to place the (replicated) variables on; all devices by default. The
      checkpoint may come from any number of devices.

  Raises:
    InputError: no config.json or normalization.npz, no such checkpoint, or all are damaged.

  An ensemble directory (covseg_jax.ensemble) is restored as one run: `which` applies to each
  member.
  """
  if is_ensemble(workdir):
    from covseg_jax import ensemble  # Imported here: ensemble builds on this module.
    return ensemble.restore(workdir, which, mesh)
  config = load_config(workdir)
  normalization = load_normalization(workdir)
  which = parse_which(which)
  mesh = parallel.create_mesh() if mesh is None else mesh
  task = config.data.task
  num_classes = preprocess.num_classes(task)
  model = models.for_config(config)
  abstract = _abstract_variables(model, config.data.image_size, parallel.replicated_sharding(mesh))

  directories = {name: os.path.join(os.path.abspath(workdir), name)
                 for name in (CHECKPOINT_DIR, BEST_DIR)}
  managers = {name: ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(create=False))
              for name, path in directories.items() if os.path.isdir(path)}
  try:
    if which == "best" or which == "last":
      name = BEST_DIR if which == "best" else CHECKPOINT_DIR
      manager = managers.get(name)
      steps = manager.all_steps() if manager else []
      if not steps:
        raise InputError(f"{workdir}: no checkpoint in {name}/")
    else:
      manager = next((m for m in managers.values() if which in m.all_steps()), None)
      if manager is None:
        available = sorted({s for m in managers.values() for s in m.all_steps()})
        raise InputError(f"{workdir}: no checkpoint at step {which} (steps: {available or 'none'})")
      steps = [which]
    args = ocp.args.Composite(model=ocp.args.StandardRestore(abstract))
    restored, step, damaged = _restore_newest_good(manager, steps, args)
  finally:
    for manager in managers.values():
      manager.close()
  if damaged:
    # The failed restores' abandoned reads are garbage in reference cycles: collected now, while
    # _drop_abandoned_reads' filters apply, not as the process exits, when warning filters no
    # longer do and "coroutine ... was never awaited" could follow the one-line error.
    gc.collect()
  if restored is None:
    raise InputError(f"{manager.directory}: checkpoint(s) {sorted(damaged)} damaged")
  if damaged:
    logging.warning("restored %s/%d: the newer checkpoint(s) %s are damaged",
                    manager.directory, step, sorted(damaged))
  return Run(config=config, model=model, variables=restored["model"], step=int(step),
             normalization=normalization, num_classes=num_classes,
             class_names=tuple(preprocess.CLASS_NAMES[task]), task=task)
