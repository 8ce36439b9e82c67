"""Training: loss goes down on real data, sharded step == single-device step, end-to-end run."""
import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from flax import traverse_util

from configs import lung_resnet, segnet_binary, segnet_multi, unet_multi
from covseg_jax import checkpoint, evaluate, models, parallel, train
from covseg_jax.data import pipeline, preprocess
from covseg_jax.errors import InputError
from tests import helpers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return helpers.data_dir_or_phantoms(tmp_path_factory)


def tiny_config(data_dir, family=segnet_multi, size=32):
  """A model small enough for a CPU test: the family's cpu variant at 32x32, 2 epochs."""
  config = family.get_config("cpu")
  config.data.data_dir = data_dir
  config.data.image_size = size
  config.train.epochs = 2
  config.train.batch_size = 8
  config.train.val_every_steps = 9
  config.train.log_every_steps = 3
  config.eval.batch_size = 8
  if config.model.name == "segnet":
    config.model.features = (4, 8, 16)
  elif config.model.name == "unet":
    config.model.base_features = 4
  return config


def make_step(config, dataset, mesh, optimizer=None, decay=0.0):
  model = models.get_model(config.model, dataset.num_classes)
  lr_fn = train.create_learning_rate_fn(config.train, 9)
  optimizer = optimizer or train.create_optimizer(config.train, lr_fn)
  state = train.create_train_state(jax.random.key(0), model, config.data.image_size, optimizer,
                                   ema=decay > 0)
  jitted = jax.jit(functools.partial(train.train_step, train_config=config.train,
                                     sharding=parallel.batch_sharding(mesh), decay=decay))
  center = parallel.replicate(train.training_center(dataset.mean_image, config.train), mesh)
  step = lambda state, images, labels, indices, key, weights: jitted(
      state, images, labels, indices, key, weights, center)
  args = [parallel.replicate(x, mesh) for x in
          (dataset.train.images, dataset.train.labels, np.arange(8, dtype=np.int32))]
  weights = parallel.replicate(dataset.class_weights, mesh)
  return parallel.replicate(state, mesh), step, args, weights


def test_learning_rate_schedules():
  config = segnet_multi.get_config()  # x0.95 every 12 epochs.
  config.train.learning_rate = 1e-3
  piecewise = train.create_learning_rate_fn(config.train, 10)
  assert [float(piecewise(step)) for step in (0, 119, 120, 240)] == pytest.approx(
      [1e-3, 1e-3, 0.95e-3, 0.95 ** 2 * 1e-3])
  config.train.lr_schedule = "cosine"
  config.train.epochs = 4
  cosine = train.create_learning_rate_fn(config.train, 10)  # 40 steps.
  assert [float(cosine(step)) for step in (0, 20, 40, 50)] == pytest.approx(
      [1e-3, 0.5e-3, 0.0, 0.0], abs=1e-9)
  config.train.epochs = 8  # The same step of a longer run has a larger rate.
  assert float(train.create_learning_rate_fn(config.train, 10)(20)) > float(cosine(20))


@pytest.mark.parametrize("batchnorm_offsets", [True, False])
@pytest.mark.parametrize("family", [segnet_multi, unet_multi])
def test_l2_decays_weights_and_optionally_batchnorm_offsets_never_conv_biases(
    family, batchnorm_offsets):
  """MATLAB's factors: weights and BN scales 1, BN offsets 1 (OffsetL2Factor), conv biases 0."""
  config = family.get_config("cpu")
  config.train.l2_batchnorm_offsets = batchnorm_offsets
  model = models.get_model(config.model, 4)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          np.zeros((1, 32, 32, 1), np.float32))["params"]
  params = jax.tree.map(lambda p: np.ones(p.shape, p.dtype), shapes)
  optimizer = train.create_optimizer(config.train, optax.constant_schedule(1.0))
  updates, _ = optimizer.update(jax.tree.map(np.zeros_like, params), optimizer.init(params),
                                params)
  moved = {path: bool(np.any(u != 0)) for path, u in traverse_util.flatten_dict(updates).items()}
  bn_offsets = [m for path, m in moved.items()
                if path[-1] == "bias" and path[:-1] + ("scale",) in moved]
  conv_biases = [m for path, m in moved.items()
                 if path[-1] == "bias" and path[:-1] + ("kernel",) in moved]
  others = [m for path, m in moved.items() if path[-1] != "bias"]
  assert others and all(others)
  assert conv_biases and not any(conv_biases)
  assert bn_offsets == [batchnorm_offsets] * len(bn_offsets)
  assert bool(bn_offsets) == (config.model.name == "segnet")


@pytest.mark.parametrize("center_after_augment", [True, False])
def test_flips_and_shears_act_before_zero_centring(data_dir, center_after_augment):
  """MATLAB's input layer centres the datastore's augmented images: the network sees
  augment(image) - mean image, not augment(image - mean image), unless the config says so."""
  config = tiny_config(data_dir)
  config.train.center_after_augment = center_after_augment
  dataset = pipeline.load_dataset(config.data)
  mean = dataset.mean_image[..., None] / preprocess.ZERO_CENTER_SCALE
  indices = np.arange(8)
  key = jax.random.key(5)
  center = train.training_center(dataset.mean_image, config.train)
  images, labels = train.augmented_batch(dataset.train.images, dataset.train.labels, indices,
                                         key, center, config.train)
  # The same flips and shears (the keys are the same) of the uncentred images.
  uncentred, expected_labels = train.augmented_batch(
      dataset.train.images + mean, dataset.train.labels, indices, key, np.zeros_like(mean),
      config.train)
  np.testing.assert_array_equal(labels, expected_labels)
  after = np.asarray(uncentred) - mean  # Centred after the augmentation, as MATLAB does.
  difference = np.abs(np.asarray(images) - after).max()
  if center_after_augment:
    assert difference < 1e-5
  else:  # Flipping the centred image flips the mean image with it.
    assert difference > 0.1


def test_a_few_steps_reduce_the_loss(data_dir):
  config = tiny_config(data_dir)
  config.model.dtype = "float32"
  config.train.learning_rate = 3e-3
  dataset = pipeline.load_dataset(config.data)
  mesh = parallel.create_mesh(jax.devices()[:1])
  state, step, (images, labels, indices), weights = make_step(config, dataset, mesh)
  losses = []
  for i in range(20):
    state, m = step(state, images, labels, indices, jax.random.key(i), weights)
    losses.append(float(m["loss"]))
  assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3]), losses


def test_weight_average_follows_the_updates_and_leaves_training_alone(data_dir):
  """With a decay, each step moves the average d * average + (1 - d) * variables and evaluation
  uses it; the updates themselves are those of the run without one."""
  config = tiny_config(data_dir)
  dataset = pipeline.load_dataset(config.data)
  mesh = parallel.create_mesh(jax.devices()[:1])
  plain, step, (images, labels, indices), weights = make_step(config, dataset, mesh)
  averaged, ema_step, _, _ = make_step(config, dataset, mesh, decay=0.75)
  assert plain.ema is None and train.model_variables(plain)["params"] is plain.params
  expected = train.model_variables(plain)
  for i in range(3):
    plain, _ = step(plain, images, labels, indices, jax.random.key(i), weights)
    averaged, _ = ema_step(averaged, images, labels, indices, jax.random.key(i), weights)
    variables = train.model_variables(plain)
    expected = jax.tree.map(lambda e, v: 0.75 * e + 0.25 * v, expected, variables)
    jax.tree.map(np.testing.assert_array_equal, (averaged.params, averaged.batch_stats),
                 (plain.params, plain.batch_stats))
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7),
               train.model_variables(averaged), expected)
  assert train.ema_decay(config.train, 9) == 0.0
  config.train.ema_epochs = 2.0
  assert train.ema_decay(config.train, 9) == pytest.approx(np.exp(-1 / 18))


def test_a_weight_averaged_run_resumes_to_the_same_result(data_dir, tmp_path):
  """train.ema_epochs: a run stopped after its first epoch and resumed ends with the test
  metrics of the uninterrupted run, and the run directory evaluates to them too (its
  checkpoints' model is the average, not the last step's variables)."""
  config = tiny_config(data_dir)
  config.train.ema_epochs = 0.5
  config.checkpoint.every_steps = 9
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  config.train.epochs = 1
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.train.epochs = 2
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  for key in ("per_image_global_accuracy", "pooled_confusion_matrix", "step"):
    assert resumed[key] == whole[key], key
  evaluated = evaluate.evaluate_run(str(tmp_path / "whole"), "last", splits=("test",))["test"]
  assert evaluated["pooled_confusion_matrix"] == whole["pooled_confusion_matrix"]
  config.train.ema_epochs = 0.0
  plain = train.train_and_evaluate(config, str(tmp_path / "plain"))
  assert plain["pooled_confusion_matrix"] != whole["pooled_confusion_matrix"]


@pytest.mark.parametrize("family", [segnet_multi, unet_multi, lung_resnet])
def test_sharded_step_equals_single_device(data_dir, family):
  """4 fake CPU devices: same loss, gradients and BatchNorm statistics as 1 device.

  Plain SGD with rate 1 makes the parameter update equal to the gradient; Adam's first step
  would amplify float-rounding noise in near-zero gradients to +-lr.
  """
  config = tiny_config(data_dir, family)
  config.model.dtype = "float32"
  # The shear warp's float rounding depends on XLA's fusion for the per-device shape (about
  # 1e-6); that is tested in test_augment. Flips stay on: they are exact.
  config.train.shear_degrees = 0.0
  dataset = pipeline.load_dataset(config.data)
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    mesh = parallel.create_mesh(devices)
    state, step, (images, labels, indices), weights = make_step(
        config, dataset, mesh, optimizer=optax.sgd(1.0))
    state, m = step(state, images, labels, indices, jax.random.key(7), weights)
    results.append((float(m["loss"]), jax.device_get(state.params),
                    jax.device_get(state.batch_stats)))
  (loss1, params1, stats1), (loss4, params4, stats4) = results
  assert loss1 == pytest.approx(loss4, rel=1e-5)
  # Sums over the batch are split differently across devices, so values differ by float32
  # rounding; in SegNet a rounding-level change can flip a near-tie in a max-pool and route one
  # gradient entry elsewhere. Compare each array by relative norm: a real sharding bug (e.g.
  # per-device BatchNorm statistics) moves them by far more than 1 %.
  def close(a, b):
    assert np.linalg.norm(a - b) <= 1e-2 * np.linalg.norm(b) + 1e-7, (a, b)
  jax.tree.map(close, params1, params4)
  jax.tree.map(close, stats1, stats4)


def test_lesion_class_trains_on_three_classes_and_predicts_the_lung(data_dir, tmp_path):
  """data.lesion_class: the network trains on outside / lung without lesion / lesion, whose
  last two merge into the lung task's labels; the run evaluates and restores as a lung run."""
  config = tiny_config(data_dir, family=lung_resnet)
  config.data.lesion_class = True
  dataset = pipeline.load_dataset(config.data)
  targets = dataset.train_targets
  assert set(np.unique(targets)) == {0, 1, 2}
  np.testing.assert_array_equal(targets > 0, dataset.train.labels == 1)
  assert dataset.train_class_weights.shape == (3,) and dataset.class_weights.shape == (2,)
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  assert set(results["classes"]) == {"background", "lung"}
  run = checkpoint.restore_run(workdir, "last")
  images = dataset.test.images[:2]
  merged = run.model.apply(run.variables, images, train=False)
  assert merged.shape == images.shape[:3] + (2,)
  fine = run.model.apply(run.variables, images, method=lambda m, x: m.network(x, train=False))
  assert fine.shape == images.shape[:3] + (3,)
  probs = jax.nn.softmax(fine.astype(np.float32), axis=-1)
  np.testing.assert_allclose(jax.nn.softmax(merged, axis=-1)[..., 1],
                             probs[..., 1] + probs[..., 2], atol=1e-5)


def test_lesion_class_binary_trains_on_the_lesion_kinds(data_dir):
  """data.lesion_class for the binary task: the network trains on the multi task's four
  classes and predicts not infected / infected, the three lesion classes merged."""
  config = tiny_config(data_dir, family=segnet_binary)
  config.data.lesion_class = True
  dataset = pipeline.load_dataset(config.data)
  np.testing.assert_array_equal(dataset.train_targets > 0, dataset.train.labels == 1)
  assert dataset.train_targets.max() == 3
  assert dataset.train_class_weights.shape == (4,) and dataset.class_weights.shape == (2,)
  model = models.for_config(config)
  images = dataset.test.images[:2]
  variables = model.init(jax.random.key(0), images, train=False)
  assert model.apply(variables, images, train=False).shape == images.shape[:3] + (2,)
  fine, _ = model.apply(variables, images, train=True, mutable=["batch_stats"])
  assert fine.shape == images.shape[:3] + (4,)


def test_batch_size_must_divide_devices():
  mesh = parallel.create_mesh(jax.devices()[:4])
  with pytest.raises(ValueError, match="not divisible by the 4 devices"):
    parallel.check_batch_size(6, mesh)


def test_train_and_evaluate_writes_results_and_is_deterministic(data_dir, tmp_path):
  config = tiny_config(data_dir)
  results = []
  for run in ("a", "b"):
    workdir = str(tmp_path / run)
    results.append(train.train_and_evaluate(config, workdir))
    for name in ("config.json", "metrics.jsonl", "test_metrics.json"):
      assert os.path.exists(os.path.join(workdir, name)), name
  with open(tmp_path / "a" / "test_metrics.json") as f:
    written = json.load(f)
  assert written["num_images"] == 18
  assert set(written["classes"]) == set(pipeline.load_dataset(config.data).class_names)
  assert 0.0 <= written["global_accuracy_mean"] <= 1.0
  assert results[0]["per_image_global_accuracy"] == results[1]["per_image_global_accuracy"]


def test_scanned_steps_equal_single_steps():
  """K steps in one lax.scan make the same updates as K one-step calls."""
  config = segnet_multi.get_config("cpu")
  config.model.features, config.model.convs_per_stage = (4,), (1,)
  config.data.image_size, config.train.batch_size = 16, 2
  mesh = parallel.create_mesh(jax.devices()[:1])
  state = train.create_train_state(
      jax.random.key(0), models.get_model(config.model, 4), 16,
      train.create_optimizer(config.train, train.create_learning_rate_fn(config.train, 3)))
  rng = np.random.default_rng(0)
  images = rng.standard_normal((6, 16, 16, 1)).astype(np.float32)
  labels = rng.integers(0, 4, (6, 16, 16)).astype(np.int32)
  weights = np.ones(4, np.float32)
  indices = np.array([[0, 1], [2, 3], [4, 5]], np.int32)
  step_rng = jax.random.key(3)
  steps = jax.jit(functools.partial(train.train_steps, train_config=config.train,
                                    sharding=parallel.batch_sharding(mesh)))
  center = rng.standard_normal((16, 16, 1)).astype(np.float32)
  single = state
  for batch in indices:
    single, single_metrics = steps(single, images, labels, batch[None], step_rng, weights, center)
  scanned, scanned_metrics = steps(state, images, labels, indices, step_rng, weights, center)
  assert int(scanned.step) == int(single.step) == 3
  assert float(scanned_metrics["loss"]) == pytest.approx(float(single_metrics["loss"]), rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               scanned.params, single.params)


def test_steps_until_host_event():
  config = segnet_multi.get_config()
  tc, cc = config.train, config.checkpoint
  tc.log_every_steps, tc.val_every_steps, tc.image_summary_every_steps = 10, 15, 180
  cc.every_steps = 200
  assert [train.steps_until_host_event(s, tc, cc, 1000) for s in (0, 9, 10, 12, 15)] == [
      10, 1, 5, 3, 5]
  assert train.steps_until_host_event(995, tc, cc, 997) == 2  # The last step is an event.
  assert train.steps_until_host_event(195, tc, cc, 1000) == 5


def test_steps_per_call_does_not_change_the_run(data_dir, tmp_path):
  """A run with 3 steps per call logs, validates and ends like one with 1 (to rounding)."""
  config = tiny_config(data_dir)
  config.train.shear_degrees = 0.0  # Its rounding depends on the compiled program's fusions.
  # The loop of 3 steps and the single step are fused differently, so they round differently.
  # At the default 1e-3, Adam's first, sign-like updates amplify that rounding into a 1% loss
  # difference within 6 steps on some CPUs (AMD EPYC); at 1e-4 the runs agree to 1e-7 while
  # the model still learns, so the comparison tests the loop and not the CPU.
  config.train.learning_rate = 1e-4
  runs = []
  for steps_per_call in (1, 3):
    config.train.steps_per_call = steps_per_call
    workdir = tmp_path / str(steps_per_call)
    results = train.train_and_evaluate(config, str(workdir))
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    runs.append((results, [r for r in records if "train/loss" in r or "val/loss" in r]))
  (results1, records1), (results3, records3) = runs
  assert [r["step"] for r in records1] == [r["step"] for r in records3]
  for r1, r3 in zip(records1, records3):
    for name in ("train/loss", "val/loss"):
      if name in r1:
        assert r3[name] == pytest.approx(r1[name], rel=1e-3), (r1["step"], name)
  np.testing.assert_allclose(results3["per_image_global_accuracy"],
                             results1["per_image_global_accuracy"], atol=1e-3)


@pytest.mark.parametrize("field, value, message", [
    ("train.steps_per_call", 0, "train.steps_per_call=0 must be at least 1"),
    ("train.epochs", 0, "train.epochs=0 must be at least 1"),
    ("train.loss", "focal", "train.loss='focal' is not one of"),
    ("train.lr_schedule", "linear", "train.lr_schedule='linear' is not one of"),
    ("train.learning_rate", 0.0, "train.learning_rate=0.0 must be above 0"),
    ("train.lr_drop_factor", 1.5, "train.lr_drop_factor=1.5 must be in .0, 1.$"),
    ("train.lr_drop_every_epochs", 0, "train.lr_drop_every_epochs=0 must be at least 1"),
    ("train.l2", -1e-4, "train.l2=-0.0001 must be at least 0"),
    ("train.gamma_range", -0.5, "train.gamma_range=-0.5 must be at least 0"),
    ("train.elastic", -0.01, "train.elastic=-0.01 must be at least 0"),
    ("train.label_smoothing", 1.0, r"train.label_smoothing=1.0 must be in \[0, 1\)"),
    ("train.ema_epochs", -1.0, "train.ema_epochs=-1.0 must be at least 0"),
    ("train.batch_size", 3, "train.batch_size=3 is not divisible by the 8 devices"),
    ("data.normalization", "hu", "data.normalization='hu' is not one of"),
    ("data.split", "folds", "data.split='folds' is not one of"),
    ("data.image_size", 36, "divisible by 8"),
    ("model.name", "resnet", "unknown model name 'resnet'"),
    ("eval.checkpoint", "first", "'best', 'last' or a step number"),
    ("eval.fill_holes", True, "eval.fill_holes is for the lung task, not data.task='multi'"),
    ("data.lesion_class", True,
     "data.lesion_class is for the tasks .'lung', 'binary'., not data.task='multi'"),
    ("eval.foreground_threshold", 0.8, "is for the two-class tasks .binary, lung., not data"),
    ("eval.foreground_threshold", 0.0, "eval.foreground_threshold=0.0 must be in"),
    ("eval.logit_offsets", (0.0, -1.0), "eval.logit_offsets=.0.0, -1.0. must be 4 finite"),
])
def test_a_bad_config_fails_before_anything_is_written(data_dir, tmp_path, field, value, message):
  config = tiny_config(data_dir)
  section, name = field.split(".")
  config[section][name] = value
  workdir = tmp_path / "run"
  with pytest.raises(InputError, match=message) as raised:
    train.train_and_evaluate(config, str(workdir))
  assert str(raised.value).startswith("config: ")
  assert not workdir.exists()


def test_label_smoothing_needs_a_cross_entropy(data_dir, tmp_path):
  config = tiny_config(data_dir)
  config.train.update(loss="dice", label_smoothing=0.1)
  with pytest.raises(InputError, match="train.loss='dice' has none"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_run_of_another_config_is_refused_before_anything_is_written(data_dir, tmp_path):
  config = tiny_config(data_dir)
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  before = (workdir / "config.json").read_bytes()
  config.model.features = (8, 16, 32)
  with pytest.raises(InputError, match="holds a run with model.features=.4, 8, 16., not"):
    train.train_and_evaluate(config, str(workdir))
  assert os.listdir(workdir) == ["config.json"]
  assert (workdir / "config.json").read_bytes() == before


def test_a_run_of_other_slices_is_refused_before_anything_is_written(data_dir, tmp_path):
  config = tiny_config(data_dir)
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  record = checkpoint.split_record(pipeline.load_dataset(config.data))
  record["train"], record["val"] = record["train"][1:], record["val"] + record["train"][:1]
  (workdir / "split.json").write_text(json.dumps(record))
  with pytest.raises(InputError, match="split.json: the run's train slices differ"):
    train.train_and_evaluate(config, str(workdir))
  assert sorted(os.listdir(workdir)) == ["config.json", "split.json"]
  assert json.loads((workdir / "split.json").read_text()) == record


def test_main_reports_a_bad_config_value_in_one_line(tmp_path):
  process = subprocess.run(
      [sys.executable, "-m", "covseg_jax.main", "--config=configs/segnet_multi.py:cpu",
       "--config.train.loss=focal", f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert process.returncode == 2
  assert process.stderr.strip().splitlines()[-1] == (
      "error: config: train.loss='focal' is not one of ('weighted_ce', 'dice', "
      "'weighted_ce+dice', 'ce+dice')")
  assert not (tmp_path / "run").exists()
