"""Checkpoints: round trip, best kept apart, damaged-latest fallback, 8 to 1 devices, runs."""
import asyncio
import functools
import gc
import glob
import json
import logging
import os
import re
import shutil
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import segnet_multi
from covseg_jax import checkpoint, models, parallel, train
from covseg_jax.errors import InputError

CLASS_NAMES = ("background and healthy lung", "ground-glass opacity", "consolidation",
               "pleural effusion")


@pytest.fixture(scope="module")
def config():
  config = segnet_multi.get_config("cpu")
  config.data.image_size = 16
  config.model.features = (4, 8, 16)
  config.checkpoint.every_steps = 10
  config.checkpoint.max_to_keep = 2
  return config


@pytest.fixture(scope="module")
def initial_state(config):
  """A TrainState of the model's structure, replicated over all 8 fake devices.

  Filled with ones rather than initialised: running the model (init compiles its forward pass)
  is what makes a CPU test slow, and checkpoints only care about shapes and values.
  """
  model = models.get_model(config.model, len(CLASS_NAMES))
  key = jax.random.key(0)
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          {"params": key, "dropout": key}, jnp.zeros((1, 16, 16, 1)))
  variables = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
  optimizer = train.create_optimizer(config.train, train.create_learning_rate_fn(config.train, 9))
  state = train.TrainState.create(apply_fn=model.apply, params=variables["params"],
                                  batch_stats=variables["batch_stats"], tx=optimizer)
  return parallel.replicate(state, parallel.create_mesh())


def state_at(state, step):
  """`state` with every array moved by `step`, so each step's checkpoint is recognisable."""
  mesh = parallel.create_mesh()
  shift = lambda tree: parallel.replicate(jax.tree.map(lambda x: np.asarray(x) + step, tree), mesh)
  return state.replace(step=parallel.replicate(np.asarray(step, state.step.dtype), mesh),
                       params=shift(state.params), batch_stats=shift(state.batch_stats),
                       opt_state=shift(state.opt_state),
                       ema=None if state.ema is None else shift(state.ema))


def assert_same(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def fake_dataset(train=(1, 2, 3, 4, 5, 6), val=(7, 8), test=(9, 10)):
  """What write_run_files reads of a pipeline.Dataset; the parts' 1-based slice numbers."""
  parts = {name: types.SimpleNamespace(slice_numbers=np.asarray(numbers))
           for name, numbers in (("train", train), ("val", val), ("test", test))}
  return types.SimpleNamespace(task="multi", class_names=CLASS_NAMES,
                               mean_image=np.full((16, 16), 0.5, np.float32),
                               split=parts.__getitem__)


def make_run(workdir, config, state, steps, best_losses=()):
  """A run directory with run files, periodic checkpoints at `steps` and best ones."""
  checkpoint.write_run_files(workdir, config, fake_dataset())
  checkpoints = checkpoint.Checkpointer(workdir, config.checkpoint, total_steps=max(steps or [1]))
  for step in steps:
    assert checkpoints.save(step, state_at(state, step))
  for step, loss in best_losses:
    checkpoints.save_if_best(step, state_at(state, step), {"val/loss": loss})
  checkpoints.close()


def step_dirs(workdir, name=checkpoint.CHECKPOINT_DIR):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, name)) if d.isdigit())


def test_round_trip_restores_every_array_and_the_step(tmp_path, config, initial_state):
  make_run(str(tmp_path), config, initial_state, [10, 20, 30])
  assert step_dirs(tmp_path) == [20, 30]  # max_to_keep latest.
  checkpoints = checkpoint.Checkpointer(str(tmp_path), config.checkpoint, total_steps=30)
  restored = checkpoints.restore(initial_state)
  checkpoints.close()
  assert int(restored.step) == 30
  expected = state_at(initial_state, 30)
  for field in ("params", "batch_stats", "opt_state"):
    assert_same(getattr(restored, field), getattr(expected, field))


def test_a_weight_average_is_the_model_and_resumes_beside_the_variables(tmp_path, config,
                                                                       initial_state):
  """With train.ema_epochs the checkpoint's model is the moving average (what restore_run and
  so evaluation and predict read), and a resumed state gets both back."""
  variables = {"params": initial_state.params, "batch_stats": initial_state.batch_stats}
  state = initial_state.replace(ema=jax.tree.map(lambda x: x * 0.5, variables))
  make_run(str(tmp_path), config, state, [10])
  checkpoints = checkpoint.Checkpointer(str(tmp_path), config.checkpoint, total_steps=10)
  restored = checkpoints.restore(state)
  checkpoints.close()
  expected = state_at(state, 10)
  for field in ("params", "batch_stats", "opt_state", "ema"):
    assert_same(getattr(restored, field), getattr(expected, field))
  assert_same(checkpoint.restore_run(str(tmp_path), "last").variables, expected.ema)


def test_saves_follow_the_interval_and_the_last_step(tmp_path, config, initial_state):
  checkpoints = checkpoint.Checkpointer(str(tmp_path), config.checkpoint, total_steps=25)
  saved = [s for s in range(1, 26) if checkpoints.save(s, initial_state)]
  checkpoints.close()
  assert saved == [10, 20, 25]


def test_best_checkpoints_are_kept_apart_from_the_latest(tmp_path, config, initial_state):
  make_run(str(tmp_path), config, initial_state, [10, 20, 30, 40],
           best_losses=[(10, 0.5), (20, 0.7), (30, 0.4), (40, 0.6)])
  assert step_dirs(tmp_path) == [30, 40]
  assert step_dirs(tmp_path, checkpoint.BEST_DIR) == [10, 30]  # Improvements only.
  run = checkpoint.restore_run(str(tmp_path), "best")
  assert run.step == 30
  assert_same(run.variables["params"], state_at(initial_state, 30).params)
  # A resumed run knows the best value so far and does not save a worse one.
  checkpoints = checkpoint.Checkpointer(str(tmp_path), config.checkpoint, total_steps=50)
  checkpoints.restore(initial_state)
  assert checkpoints.best_value == 0.4
  assert not checkpoints.save_if_best(50, initial_state, {"val/loss": 0.45})
  checkpoints.close()


def test_best_value_survives_a_kill_before_the_first_periodic_save(tmp_path, config,
                                                                  initial_state):
  make_run(str(tmp_path), config, initial_state, [], best_losses=[(5, 0.5)])
  checkpoints = checkpoint.Checkpointer(str(tmp_path), config.checkpoint, total_steps=50)
  assert checkpoints.restore(initial_state) is initial_state  # Nothing to resume from ...
  assert checkpoints.best_value == 0.5  # ... but a worse validation is no new best.
  assert not checkpoints.save_if_best(10, initial_state, {"val/loss": 0.6})
  checkpoints.close()


def truncate_files(step_dir):
  for path in glob.glob(os.path.join(step_dir, "**"), recursive=True):
    if os.path.isfile(path):
      os.truncate(path, os.path.getsize(path) // 2)


def remove_model_item(step_dir):
  shutil.rmtree(os.path.join(step_dir, "model"))  # As if the save stopped half-way.


@pytest.mark.parametrize("damage", [truncate_files, remove_model_item])
def test_damaged_latest_falls_back_to_the_previous(tmp_path, caplog, config, initial_state,
                                                   damage):
  workdir = str(tmp_path)
  make_run(workdir, config, initial_state, [10, 20])
  damage(os.path.join(workdir, checkpoint.CHECKPOINT_DIR, "20"))

  with caplog.at_level(logging.WARNING):
    run = checkpoint.restore_run(workdir, "last")
  assert run.step == 10
  assert_same(run.variables["params"], state_at(initial_state, 10).params)
  assert any("damaged" in r.getMessage() and "/20" in r.getMessage() for r in caplog.records)

  caplog.clear()
  with caplog.at_level(logging.WARNING):
    checkpoints = checkpoint.Checkpointer(workdir, config.checkpoint, total_steps=20)
    restored = checkpoints.restore(initial_state)
    checkpoints.close()
  assert int(restored.step) == 10
  assert any("fell back" in r.getMessage() for r in caplog.records)
  assert step_dirs(workdir) == [10]  # Deleted, so that the resumed run can save step 20 again.


def test_all_checkpoints_damaged_is_an_input_error(tmp_path, config, initial_state):
  workdir = str(tmp_path)
  make_run(workdir, config, initial_state, [10, 20])
  for step in (10, 20):
    truncate_files(os.path.join(workdir, checkpoint.CHECKPOINT_DIR, str(step)))
  with pytest.raises(InputError, match="damaged"):
    checkpoint.restore_run(workdir, "last")
  checkpoints = checkpoint.Checkpointer(workdir, config.checkpoint, total_steps=20)
  with pytest.raises(InputError, match="every checkpoint"):
    checkpoints.restore(initial_state)
  checkpoints.close()


async def async_deserialize():  # Named as orbax's reads of an array are.
  raise ValueError("damaged array")


async def another_coroutine():
  raise ValueError("a bug")


def test_abandoned_reads_are_not_logged_and_other_task_errors_are(caplog):
  """A read that failed after orbax gave up on a damaged checkpoint is garbage-collected with its
  error unread; asyncio would log that with a traceback after the one-line error."""
  checkpoint._drop_abandoned_reads()  # Done by every restore.
  with caplog.at_level(logging.ERROR, logger="asyncio"):
    for coroutine in (async_deserialize, another_coroutine):
      loop = asyncio.new_event_loop()
      task = loop.create_task(coroutine())
      loop.run_until_complete(asyncio.wait([task]))  # Done; its exception is never read.
      loop.close()
      del task
      gc.collect()
  messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
  assert len(messages) == 1, messages
  assert messages[0].startswith("Task exception was never retrieved")
  assert "coro=<another_coroutine" in messages[0]


class ArrayMetadataStore:  # Named as orbax's is.

  async def _get_array_metadatas(self):
    pass

  async def other_read(self):
    pass


def test_abandoned_metadata_reads_do_not_warn_and_other_coroutines_do():
  """orbax's array-metadata reads that a failed restore never started are garbage-collected
  unawaited; Python would warn about each, often after the one-line error."""
  checkpoint._drop_abandoned_reads()  # Done by every restore.
  store = ArrayMetadataStore()
  with warnings.catch_warnings(record=True) as caught:
    for make in (store._get_array_metadatas, store.other_read):
      coroutine = make()
      del coroutine
      gc.collect()
  messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
  assert messages == ["coroutine 'ArrayMetadataStore.other_read' was never awaited"], messages


def test_checkpoint_from_8_devices_restores_on_1(tmp_path, config, initial_state):
  assert len(jax.devices()) == 8
  assert len(jax.tree.leaves(initial_state.params)[0].sharding.device_set) == 8
  make_run(str(tmp_path), config, initial_state, [10])
  one = parallel.create_mesh(jax.devices()[:1])
  run = checkpoint.restore_run(str(tmp_path), 10, mesh=one)
  for leaf in jax.tree.leaves(run.variables):
    assert leaf.sharding.device_set == {jax.devices()[0]}
  assert_same(run.variables["params"], state_at(initial_state, 10).params)
  assert_same(run.variables["batch_stats"], state_at(initial_state, 10).batch_stats)


def test_restore_run_returns_the_run_description(tmp_path, config, initial_state):
  make_run(str(tmp_path), config, initial_state, [10])
  run = checkpoint.restore_run(str(tmp_path), "last")
  assert (run.task, run.num_classes, run.class_names, run.step) == ("multi", 4, CLASS_NAMES, 10)
  assert run.config.model.features == [4, 8, 16]
  assert run.normalization["method"] == "zero_center"
  assert run.normalization["image_size"] == 16
  assert run.normalization["lung_mask"] is True
  assert run.normalization["class_names"] == CLASS_NAMES
  np.testing.assert_array_equal(run.normalization["mean_image"], np.full((16, 16), 0.5))


def test_a_run_resumes_only_with_a_config_that_trains_it_the_same_way(tmp_path, config):
  workdir = str(tmp_path / "run")
  checkpoint.check_resumable(workdir, config)  # No run there yet.
  make_run(workdir, config, state=None, steps=[])
  checkpoint.check_resumable(workdir, config)
  resumable = config.copy_and_resolve_references()
  resumable.train.epochs *= 2  # Extends the run.
  resumable.data.data_dir = str(tmp_path / "moved")
  resumable.train.log_every_steps = 1
  resumable.checkpoint.every_steps = 5
  resumable.eval.tta_flip = True
  resumable.new_field = 1  # A field that runs of an older version lack.
  checkpoint.check_resumable(workdir, resumable)
  for field, value, shown in [("train.learning_rate", 0.1, "train.learning_rate=0.003, not 0.1"),
                              ("model.features", (8, 16, 32),
                               "model.features=[4, 8, 16], not [8, 16, 32]"),
                              ("seed", 1, "seed=0, not 1")]:
    other = config.copy_and_resolve_references()
    other.update_from_flattened_dict({field: value})
    with pytest.raises(InputError, match=re.escape(
        f"{workdir}: holds a run with {shown}: give a new --workdir, or resume it with its own "
        "config")):
      checkpoint.check_resumable(workdir, other)


def test_a_cosine_run_cannot_be_extended(tmp_path, config):
  workdir = str(tmp_path / "run")
  config.train.lr_schedule = "cosine"
  make_run(workdir, config, state=None, steps=[])
  longer = config.copy_and_resolve_references()
  longer.train.epochs *= 2  # Would change the learning rate of every step already taken.
  with pytest.raises(InputError, match=re.escape(
      f"{workdir}: holds a run with train.epochs={config.train.epochs}, not {longer.train.epochs}")):
    checkpoint.check_resumable(workdir, longer)


def test_a_run_from_before_a_changed_default_resumes_only_with_the_old_value(tmp_path, config):
  workdir = str(tmp_path / "run")
  make_run(workdir, config, state=None, steps=[])
  path = os.path.join(workdir, checkpoint.CONFIG_FILE)
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  del saved["train"]["center_after_augment"]  # As written before the field existed.
  with open(path, "w", encoding="utf-8") as f:
    json.dump(saved, f)
  config.train.center_after_augment = True
  with pytest.raises(InputError, match=re.escape(
      "holds a run with train.center_after_augment=False, not True")):
    checkpoint.check_resumable(workdir, config)
  config.train.center_after_augment = False
  checkpoint.check_resumable(workdir, config)


def test_a_run_resumes_and_evaluates_only_on_the_slices_it_recorded(tmp_path, config, caplog):
  workdir = str(tmp_path / "run")
  checkpoint.check_split_record(workdir, fake_dataset())  # No run there yet.
  make_run(workdir, config, state=None, steps=[])
  path = os.path.join(workdir, checkpoint.SPLIT_FILE)
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"train": [1, 2, 3, 4, 5, 6], "val": [7, 8], "test": [9, 10]}
  checkpoint.check_split_record(workdir, fake_dataset())
  with pytest.raises(InputError, match=re.escape(
      f"{path}: the run's train slices differ from those its data config gives now "
      "(slices [6, 7] differ): the split or the data changed since it trained; use the code it "
      "trained with, or a new --workdir")):
    checkpoint.check_split_record(workdir, fake_dataset(train=(1, 2, 3, 4, 5, 7),
                                                        val=(6, 8)))
  with pytest.raises(InputError, match="the run's test slices differ"):
    checkpoint.check_split_record(workdir, fake_dataset(test=(9,)))
  with open(path, "w", encoding="utf-8") as f:
    f.write('{"train": [1, 2')
  with pytest.raises(InputError, match=re.escape(f"{path}: unreadable split record")):
    checkpoint.check_split_record(workdir, fake_dataset())
  # A middle fold of a kfold run from before the record: passes, with a warning.
  os.remove(path)
  checkpoint.check_split_record(workdir, fake_dataset())
  kfold = config.copy_and_resolve_references()
  kfold.data.split, kfold.data.fold = "kfold", 2
  checkpoint.write_run_files(workdir, kfold, fake_dataset())
  os.remove(path)
  with caplog.at_level(logging.WARNING):
    checkpoint.check_split_record(workdir, fake_dataset())
  assert any("fold 2 trained and validated on other slices" in r.getMessage()
             for r in caplog.records)


def test_restore_run_input_errors(tmp_path, config, initial_state):
  with pytest.raises(InputError, match="no config.json"):
    checkpoint.restore_run(str(tmp_path / "missing"))
  make_run(str(tmp_path), config, initial_state, [10])
  with pytest.raises(InputError, match=r"no checkpoint in checkpoints_best"):
    checkpoint.restore_run(str(tmp_path), "best")
  with pytest.raises(InputError, match=r"no checkpoint at step 7 \(steps: \[10\]\)"):
    checkpoint.restore_run(str(tmp_path), 7)


def test_parse_which():
  assert checkpoint.parse_which("best") == "best"
  assert checkpoint.parse_which("last") == "last"
  assert checkpoint.parse_which("120") == 120
  with pytest.raises(ValueError, match="step number"):
    checkpoint.parse_which("newest")
