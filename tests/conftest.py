"""Test setup: 8 fake CPU devices so sharding code is exercised without a GPU, and one
persistent compilation cache for the whole session."""
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests, and the training processes they start (which inherit the environment), compile
# the same small programs; on a CPU compiling is most of a tiny run's time. The cache is new
# for each session and removed after it, so no test depends on an earlier one.
_CACHE_DIR = tempfile.mkdtemp(prefix="covseg_jax_tests_xla_cache_")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE_DIR)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def in_repo(monkeypatch):
  """Runs from the repository root (config paths are relative to it), with subprocesses on one
  CPU device (the 8 fake devices are for the sharding tests; a batch of 4 would not split over
  them)."""
  monkeypatch.chdir(REPO)
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(_CACHE_DIR, ignore_errors=True)
