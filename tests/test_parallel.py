"""Parallelism: distributed start-up from the environment, batch-size check, and on 8 fake CPU
devices the same step as on 1 device."""
import jax
import numpy as np
import optax
import pytest

from configs import segnet_multi
from covseg_jax import parallel, train
from covseg_jax.data import pipeline
from tests import helpers
from tests.test_train import make_step, tiny_config

ENV = (parallel.COORDINATOR_ADDRESS, parallel.NUM_PROCESSES, parallel.PROCESS_ID,
       parallel.LOCAL_DEVICE_IDS, "SLURM_NTASKS", "SLURM_STEP_NODELIST")


@pytest.fixture
def initialize_calls(monkeypatch):
  """A clean environment; records jax.distributed.initialize's arguments instead of joining."""
  for name in ENV:
    monkeypatch.delenv(name, raising=False)
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
  return calls


def test_single_process_does_nothing(initialize_calls, monkeypatch):
  assert parallel.initialize_distributed() == 1
  monkeypatch.setenv("SLURM_NTASKS", "1")
  assert parallel.initialize_distributed() == 1
  assert not initialize_calls


def test_explicit_environment(initialize_calls, monkeypatch):
  monkeypatch.setenv(parallel.COORDINATOR_ADDRESS, "10.0.0.1:1234")
  monkeypatch.setenv(parallel.NUM_PROCESSES, "4")
  monkeypatch.setenv(parallel.PROCESS_ID, "3")
  monkeypatch.setenv(parallel.LOCAL_DEVICE_IDS, "0, 1")
  monkeypatch.setenv("SLURM_NTASKS", "2")  # Explicit settings win; SLURM detection is off.
  monkeypatch.setenv("SLURM_STEP_NODELIST", "node1")
  assert parallel.initialize_distributed() == 4
  assert initialize_calls == [dict(coordinator_address="10.0.0.1:1234", num_processes=4,
                                   process_id=3, local_device_ids=[0, 1],
                                   cluster_detection_method="deactivate")]


def test_explicit_single_process_does_nothing(initialize_calls, monkeypatch):
  monkeypatch.setenv(parallel.COORDINATOR_ADDRESS, "localhost:1234")
  monkeypatch.setenv(parallel.NUM_PROCESSES, "1")
  monkeypatch.setenv(parallel.PROCESS_ID, "0")
  assert parallel.initialize_distributed() == 1
  assert not initialize_calls


def test_slurm_step_lets_jax_detect(initialize_calls, monkeypatch):
  monkeypatch.setenv("SLURM_NTASKS", "8")
  monkeypatch.setenv("SLURM_STEP_NODELIST", "gpu[01-02]")
  assert parallel.initialize_distributed() == 8
  assert initialize_calls == [dict(local_device_ids=None)]
  monkeypatch.setenv(parallel.LOCAL_DEVICE_IDS, "0,1,2,3")
  parallel.initialize_distributed()
  assert initialize_calls[-1] == dict(local_device_ids=[0, 1, 2, 3])


def test_slurm_batch_script_outside_srun_is_single_process(initialize_calls, monkeypatch):
  monkeypatch.setenv("SLURM_NTASKS", "8")
  assert parallel.initialize_distributed() == 1
  assert not initialize_calls


@pytest.mark.parametrize("env, message", [
    ({parallel.COORDINATOR_ADDRESS: "h:1"}, "not COVSEG_NUM_PROCESSES, COVSEG_PROCESS_ID"),
    ({parallel.NUM_PROCESSES: "2", parallel.PROCESS_ID: "0"}, "not COVSEG_COORDINATOR_ADDRESS"),
    ({parallel.COORDINATOR_ADDRESS: "h:1", parallel.NUM_PROCESSES: "two",
      parallel.PROCESS_ID: "0"}, "is not an integer"),
    ({parallel.COORDINATOR_ADDRESS: "h:1", parallel.NUM_PROCESSES: "2",
      parallel.PROCESS_ID: "2"}, r"must be in 0\.\.1 \(COVSEG_NUM_PROCESSES=2\)"),
    ({parallel.COORDINATOR_ADDRESS: "h:1", parallel.NUM_PROCESSES: "0",
      parallel.PROCESS_ID: "0"}, "COVSEG_NUM_PROCESSES=0 must be at least 1"),
    ({"SLURM_NTASKS": "4x"}, "SLURM_NTASKS='4x' is not an integer"),
    ({parallel.COORDINATOR_ADDRESS: "h", parallel.NUM_PROCESSES: "2",
      parallel.PROCESS_ID: "0"}, "use host:port"),
    ({parallel.COORDINATOR_ADDRESS: "h:1", parallel.NUM_PROCESSES: "2", parallel.PROCESS_ID: "0",
      parallel.LOCAL_DEVICE_IDS: "0;1"}, "comma-separated integers"),
])
def test_bad_environment_is_a_clear_error(initialize_calls, monkeypatch, env, message):
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  with pytest.raises(ValueError, match=message):
    parallel.initialize_distributed()
  assert not initialize_calls


def test_batch_size_not_dividing_8_devices_stops_training(tmp_path):
  config = segnet_multi.get_config("cpu")
  config.train.batch_size = 12
  with pytest.raises(ValueError, match="batch_size=12 is not divisible by the 8 devices"):
    train.train_and_evaluate(config, str(tmp_path))


def test_global_batch_from_local_in_one_process():
  mesh = parallel.create_mesh()
  rows = parallel.process_batch_rows(16, mesh)
  np.testing.assert_array_equal(rows, np.arange(16))  # One process holds every row.
  local = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  batch = parallel.global_batch_from_local(local[rows], mesh, 16)
  assert batch.sharding == parallel.batch_sharding(mesh)
  assert batch.addressable_shards[1].data.shape == (2, 3)
  np.testing.assert_array_equal(np.asarray(batch), local)


def test_8_device_step_equals_single_device(tmp_path_factory):
  """Loss, gradients and BatchNorm statistics of one step on 8 devices (1 image each) and on 1.

  With plain SGD at rate 1 the parameter change is the gradient; the change of the running
  BatchNorm statistics is (1 - momentum) x the batch statistics, which per-device statistics
  would get wrong. SegNet has both BatchNorm and the pooling indices that route gradients; the
  largest relative difference is about 1e-5 for it and for HighResNet (lung_resnet).
  """
  config = tiny_config(helpers.data_dir_or_phantoms(tmp_path_factory))
  config.model.dtype = "float32"
  config.train.shear_degrees = 0.0  # Its rounding depends on the per-device shape (test_augment).
  dataset = pipeline.load_dataset(config.data)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.create_mesh(devices)
    state, step, (images, labels, indices), weights = make_step(
        config, dataset, mesh, optimizer=optax.sgd(1.0))
    before = jax.device_get((state.params, state.batch_stats))
    state, m = step(state, images, labels, indices, jax.random.key(7), weights)
    after = jax.device_get((state.params, state.batch_stats))
    results.append((float(m["loss"]), jax.tree.map(np.subtract, before, after)))
  assert len(jax.devices()) == 8
  (loss1, (grads1, stats1)), (loss8, (grads8, stats8)) = results
  assert loss8 == pytest.approx(loss1, rel=1e-5)
  assert jax.tree.leaves(stats1), "the model has no BatchNorm statistics"

  def close(a, b):  # By relative norm: float32 sums split over 8 devices round differently.
    assert np.linalg.norm(a - b) <= 1e-3 * np.linalg.norm(b) + 1e-7, (a, b)
  jax.tree.map(close, grads8, grads1)
  jax.tree.map(close, stats8, stats1)
