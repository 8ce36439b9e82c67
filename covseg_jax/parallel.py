"""Device mesh and shardings: the batch is split over a 'data' axis, everything else replicated.

The same code runs on one CPU, N local GPUs, or many processes (jax.distributed): arrays are
global jax.Arrays built from host data with explicit shardings, and the step is one jax.jit.
"""
import os
import signal

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from covseg_jax.errors import InputError

DATA_AXIS = "data"

COORDINATOR_ADDRESS = "COVSEG_COORDINATOR_ADDRESS"
NUM_PROCESSES = "COVSEG_NUM_PROCESSES"
PROCESS_ID = "COVSEG_PROCESS_ID"
LOCAL_DEVICE_IDS = "COVSEG_LOCAL_DEVICE_IDS"


def _int_env(env, name):
  try:
    return int(env[name])
  except ValueError:
    raise InputError(f"{name}={env[name]!r} is not an integer") from None


def _local_device_ids(env):
  """COVSEG_LOCAL_DEVICE_IDS '0,1,2,3' as [0, 1, 2, 3]; None when unset."""
  value = env.get(LOCAL_DEVICE_IDS, "").strip()
  if not value:
    return None
  try:
    return [int(i) for i in value.split(",")]
  except ValueError:
    raise InputError(f"{LOCAL_DEVICE_IDS}={value!r}: use comma-separated integers, e.g. "
                     "'0,1,2,3'") from None


def initialize_distributed():
  """Joins a multi-process run when the environment describes one; returns the process count.

  Must run before any other JAX call. A run is multi-process when either

    COVSEG_COORDINATOR_ADDRESS  host:port of process 0's coordinator, the same for all processes;
    COVSEG_NUM_PROCESSES        the number of processes;
    COVSEG_PROCESS_ID           this process, 0 .. COVSEG_NUM_PROCESSES - 1

  are all set, or the process is one of several tasks of a SLURM step (srun with SLURM_NTASKS > 1),
  from which JAX reads the same three. COVSEG_LOCAL_DEVICE_IDS (optional, e.g. '0,1,2,3') lists
  the local GPUs this process drives. It defaults to all of them, except under SLURM, where JAX
  gives each task the one GPU numbered SLURM_LOCALID: with one task per node, list the node's
  GPUs (launch/slurm.sbatch does). Otherwise the run is single-process and nothing happens.
  CPU processes exchange data through gloo collectives.
  """
  env = os.environ
  explicit = [name for name in (COORDINATOR_ADDRESS, NUM_PROCESSES, PROCESS_ID) if env.get(name)]
  local_device_ids = _local_device_ids(env)
  if explicit:
    missing = sorted({COORDINATOR_ADDRESS, NUM_PROCESSES, PROCESS_ID} - set(explicit))
    if missing:
      raise InputError(f"{', '.join(explicit)} set but not {', '.join(missing)}: a multi-process "
                       f"run needs {COORDINATOR_ADDRESS}, {NUM_PROCESSES} and {PROCESS_ID}")
    address = env[COORDINATOR_ADDRESS]
    num_processes = _int_env(env, NUM_PROCESSES)
    process_id = _int_env(env, PROCESS_ID)
    if ":" not in address:
      raise InputError(f"{COORDINATOR_ADDRESS}={address!r}: use host:port, e.g. 10.0.0.1:12345")
    if num_processes < 1:
      raise InputError(f"{NUM_PROCESSES}={num_processes} must be at least 1")
    if not 0 <= process_id < num_processes:
      raise InputError(f"{PROCESS_ID}={process_id} must be in 0..{num_processes - 1} "
                       f"({NUM_PROCESSES}={num_processes})")
    if num_processes == 1:
      return 1
    kwargs = dict(coordinator_address=address, num_processes=num_processes,
                  process_id=process_id, cluster_detection_method="deactivate")
  elif "SLURM_NTASKS" in env and _int_env(env, "SLURM_NTASKS") > 1:
    num_processes = _int_env(env, "SLURM_NTASKS")
    if "SLURM_STEP_NODELIST" not in env:  # The batch script itself, not an srun step.
      logging.warning("SLURM_NTASKS=%d outside an srun step: running a single process; launch "
                      "with srun to use all tasks", num_processes)
      return 1
    kwargs = {}  # JAX reads the coordinator, count and id from SLURM.
  else:
    return 1
  # Collectives between CPU processes: gloo is JAX's default today; explicit, so it stays so.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(local_device_ids=local_device_ids, **kwargs)
  return num_processes


def create_mesh(devices=None):
  """A 1-D mesh over all (global) devices. Mesh(...) keeps the axis type Auto, so batch reshapes work."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh):
  """Leading (batch) axis split over the devices."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh):
  return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size, mesh, what="train.batch_size"):
  """The global batch must split evenly over the devices."""
  num_devices = mesh.devices.size
  if batch_size % num_devices:
    raise ValueError(f"{what}={batch_size} is not divisible by the {num_devices} devices of the "
                     f"mesh; choose a multiple of {num_devices}")


def put_global(array, sharding):
  """A global jax.Array from a host array that every process holds in full (same values)."""
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def replicate(tree, mesh):
  """Places a pytree of host arrays on every device (multi-process safe)."""
  sharding = replicated_sharding(mesh)
  return jax.tree.map(lambda x: put_global(x, sharding), tree)


def process_batch_rows(batch_size, mesh):
  """The rows of a global batch that this process's devices hold, in order: its share to load."""
  index_map = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
  starts = sorted({index[0].indices(batch_size)[0] for index in index_map.values()})
  per_device = batch_size // mesh.devices.size
  return np.concatenate([np.arange(start, start + per_device) for start in starts])


def global_batch_from_local(local, mesh, batch_size):
  """The global batch (batch_size, ...) sharded over 'data' from this process's rows `local`
  (the rows process_batch_rows names)."""
  local = np.asarray(local)
  return jax.make_array_from_process_local_data(batch_sharding(mesh), local,
                                                (batch_size,) + local.shape[1:])



_sigterm = {"received": False}


def _note_sigterm(signum, frame):
  del signum, frame
  logging.warning("SIGTERM received: saving a checkpoint after the current step, then stopping")
  _sigterm["received"] = True


def catch_sigterm():
  """Makes SIGTERM a preemption notice (SLURM sends it before a job's time limit and when it
  preempts a job) instead of the end of the process: reached_preemption then answers True and
  the training loop saves and stops. Call after initialize_distributed, from the main thread.

  Several processes need nothing here: jax.distributed's preemption service already catches
  SIGTERM on each of them (a Python handler would take its place).
  """
  if jax.process_count() == 1:
    signal.signal(signal.SIGTERM, _note_sigterm)


def reached_preemption(first_step, last_step):
  """Whether to save and stop after a call of the step function that ran first_step..last_step.

  One process: whether SIGTERM arrived (catch_sigterm). Several: whether the step JAX's
  preemption service chose, one past the furthest step any process had reported when one of
  them got SIGTERM, is among them; every step is reported, in order, as the service requires,
  so all processes stop after the same call.
  """
  if jax.process_count() == 1:
    return _sigterm["received"]
  return any(multihost_utils.reached_preemption_sync_point(step)
             for step in range(first_step, last_step + 1))
