"""Shared test fixtures: the real MedSeg data when present, else a phantom MedSeg folder."""
import os

from covseg_jax.data import medseg, synthetic


def data_dir_or_phantoms(tmp_path_factory):
  """The real data directory if it can be found, else a freshly written phantom folder."""
  try:
    return str(medseg.find_data_dir(None))
  except Exception:  # No real data on this machine: fall back to phantoms.
    path = tmp_path_factory.mktemp("phantom_medseg")
    synthetic.write_medseg_folder(path, n=100, size=64, seed=0)
    return str(path)


def has_real_data():
  try:
    path = medseg.find_data_dir(None)
  except Exception:
    return False
  return os.path.exists(os.path.join(path, "adnan_lungmasked_png"))
