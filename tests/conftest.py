"""Test setup: 8 fake CPU devices so sharding code is exercised without a GPU."""
import os

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def in_repo(monkeypatch):
  """Runs from the repository root (config paths are relative to it), with subprocesses on one
  CPU device (the 8 fake devices are for the sharding tests; a batch of 4 would not split over
  them)."""
  monkeypatch.chdir(REPO)
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
