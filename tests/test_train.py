"""Training: loss goes down on real data, sharded step == single-device step, end-to-end run."""
import functools
import json
import os

import jax
import numpy as np
import optax
import pytest

from configs import lung_resnet, segnet_multi, unet_multi
from covseg_jax import models, parallel, train
from covseg_jax.data import pipeline
from tests import helpers


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


def make_step(config, dataset, mesh, optimizer=None):
  model = models.get_model(config.model, dataset.num_classes)
  lr_fn = train.create_learning_rate_fn(config.train, 9)
  optimizer = optimizer or train.create_optimizer(config.train, lr_fn)
  state = train.create_train_state(jax.random.key(0), model, config.data.image_size, optimizer)
  step = jax.jit(functools.partial(train.train_step, train_config=config.train,
                                   sharding=parallel.batch_sharding(mesh)))
  args = [parallel.replicate(x, mesh) for x in
          (dataset.train.images, dataset.train.labels, np.arange(8, dtype=np.int32))]
  weights = parallel.replicate(dataset.class_weights, mesh)
  return parallel.replicate(state, mesh), step, args, weights


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
