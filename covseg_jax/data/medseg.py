"""Finding and loading the MedSeg/SIRM COVID-19 CT segmentation data set (100 axial slices).

Volumes on disk are (rows, cols, slices); slice k (1-based) is `array[:, :, k - 1]` and
equals PNG number k as a (rows, cols) array without any transpose. `load_medseg` stacks
slices first: (slices, rows, cols).
"""
import dataclasses
import os
import pathlib

import nibabel as nib
import numpy as np

from covseg_jax.data import nifti
from covseg_jax.errors import InputError

LABELS_FILE = 'tr_mask.nii.gz'
IMAGES_FILE = 'tr_im.nii.gz'
LUNG_SIDES_FILE = 'tr_lungmasks_updated.nii.gz'
LUNGMASKED_PNG_DIR = 'adnan_lungmasked_png'
IMAGE_PNG_DIR = 'tr_im_png'
DERIVED_IMAGES_FILE = 'derived/tr_im_uint8_from_png.nii.gz'
DERIVED_LUNG_FILE = 'derived/tr_lungmask_binary_derived.nii.gz'
# The tr_im_png export has these two slices rotated; np.rot90(png, 3) aligns them.
ROTATED_PNG_SLICES = (10, 90)
IMAGE_SOURCES = ('lungmasked', 'png', 'nifti')
NUM_LABELS = 4

_ENV_VAR = 'COVSEG_DATA_DIR'
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_FETCH_COMMAND = 'python -m covseg_jax.data.fetch --dest DIR'


def lungmasked_png_name(slice_number):
  return f'{LUNGMASKED_PNG_DIR}/i{slice_number:03d}.png'


def image_png_name(slice_number):
  return f'{IMAGE_PNG_DIR}/tr_im_z{slice_number:03d}.png'


def align_image_png(png, slice_number):
  """Undoes the rotation of the slices in the tr_im_png export that need it."""
  return np.rot90(png, 3) if slice_number in ROTATED_PNG_SLICES else png


@dataclasses.dataclass(frozen=True)
class MedSeg:
  """The slices of one data folder, slice axis first.

  Attributes:
    images: (N, H, W) float32 in the source's units (0..255 for the PNG sources).
    labels: (N, H, W) uint8, 0 background, 1 ground-glass, 2 consolidation, 3 effusion.
    lung: (N, H, W) uint8 binary lung mask.
    slice_numbers: (N,) 1-based slice numbers, as in paper_split.json.
    lung_sides: (N, H, W) uint8, 0 none and 1, 2 the two lungs, when the original
      tr_lungmasks_updated.nii.gz is present; else None.
    reference_img: the nibabel image of tr_mask.nii.gz, whose affine and header
      serve for writing outputs aligned with the labels (`nifti.save_nifti`).
  """
  images: np.ndarray
  labels: np.ndarray
  lung: np.ndarray
  slice_numbers: np.ndarray
  lung_sides: np.ndarray | None
  reference_img: nib.Nifti1Image


def _qualifies(directory):
  return (directory / LABELS_FILE).is_file()


def find_data_dir(configured=None):
  """Returns the first folder holding tr_mask.nii.gz.

  Looks at `configured` (an error if it does not qualify), $COVSEG_DATA_DIR (likewise),
  ./data/medseg, <repo>/../shared/data/medseg and ~/.cache/covseg_jax/medseg.
  """
  for explicit, what in ((configured, 'configured data directory'),
                         (os.environ.get(_ENV_VAR), f'${_ENV_VAR}')):
    if explicit:
      directory = pathlib.Path(explicit).expanduser()
      if not _qualifies(directory):
        problem = 'no such directory' if not directory.is_dir() else f'no {LABELS_FILE} in it'
        raise InputError(f'{directory}: {problem} ({what}); fetch the data with '
                         f'`{_FETCH_COMMAND}`')
      return directory.absolute()
  candidates = (pathlib.Path('data/medseg'), _REPO_ROOT.parent / 'shared/data/medseg',
                pathlib.Path.home() / '.cache/covseg_jax/medseg')
  for directory in candidates:
    if _qualifies(directory):
      return directory.absolute()
  raise InputError(f'no MedSeg data ({LABELS_FILE}) found in ${_ENV_VAR} or '
                   f'{", ".join(str(c) for c in candidates)}; put the files in one of these '
                   f'folders or fetch them with `{_FETCH_COMMAND}`')


def _load_volume(path, shape):
  """Loads a NIfTI volume and checks that it has the labels' (H, W, N) shape."""
  data, _ = nifti.load_nifti(path)
  if data.shape != shape:
    raise InputError(f'{path}: shape {data.shape} does not match {LABELS_FILE} {shape}')
  return np.moveaxis(data, 2, 0)


def read_png_slices(data_dir, names, shape, align=False):
  """Stacks the PNGs `names` (slices 1, 2, ...) into (N, H, W), checking their shapes.

  `shape` is the labels' (H, W, N); `align` applies `align_image_png` (tr_im_png).
  """
  slices = []
  for slice_number, name in enumerate(names, start=1):
    png = nifti.load_png(data_dir / name)
    if align:
      png = align_image_png(png, slice_number)
    if png.shape != shape[:2]:
      raise InputError(f'{data_dir / name}: shape {png.shape} does not match '
                       f'{LABELS_FILE} slices {shape[:2]}')
    slices.append(png)
  return np.stack(slices)


def _load_labels(path):
  data, image = nifti.load_nifti(path)
  if data.ndim != 3:
    raise InputError(f'{path}: expected a (rows, cols, slices) volume, got shape {data.shape}')
  labels = data.astype(np.uint8)
  if not np.array_equal(labels, data) or labels.max() >= NUM_LABELS:
    raise InputError(f'{path}: labels must be integers 0..{NUM_LABELS - 1}')
  return np.moveaxis(labels, 2, 0), image


def _load_images(data_dir, image_source, shape):
  num_slices = shape[2]
  if image_source == 'lungmasked':
    names = [lungmasked_png_name(k) for k in range(1, num_slices + 1)]
    return read_png_slices(data_dir, names, shape)
  if image_source == 'png' and (data_dir / IMAGE_PNG_DIR).is_dir():
    names = [image_png_name(k) for k in range(1, num_slices + 1)]
    return read_png_slices(data_dir, names, shape, align=True)
  if image_source == 'nifti' and (data_dir / IMAGES_FILE).exists():
    return _load_volume(data_dir / IMAGES_FILE, shape)
  if (data_dir / DERIVED_IMAGES_FILE).exists():
    return _load_volume(data_dir / DERIVED_IMAGES_FILE, shape)
  wanted = {'png': IMAGE_PNG_DIR, 'nifti': IMAGES_FILE}[image_source]
  raise InputError(f'{data_dir}: no {wanted} or {DERIVED_IMAGES_FILE} for image_source='
                   f'{image_source!r}')


def _load_lung(data_dir, shape):
  """Returns (binary lung mask, lung sides or None) from the best source present."""
  if (data_dir / LUNG_SIDES_FILE).exists():
    data = _load_volume(data_dir / LUNG_SIDES_FILE, shape)
    lung = (data > 0).astype(np.uint8)
    # Only a 0/1/2 labelling is known to mean sides; anything else is used as a mask.
    sides = data.astype(np.uint8)
    if not np.array_equal(sides, data) or sides.max() > 2:
      sides = None
    return lung, sides
  if (data_dir / DERIVED_LUNG_FILE).exists():
    return (_load_volume(data_dir / DERIVED_LUNG_FILE, shape) > 0).astype(np.uint8), None
  if (data_dir / LUNGMASKED_PNG_DIR).is_dir():
    names = [lungmasked_png_name(k) for k in range(1, shape[2] + 1)]
    return (read_png_slices(data_dir, names, shape) > 0).astype(np.uint8), None
  raise InputError(f'{data_dir}: no lung mask ({LUNG_SIDES_FILE}, {DERIVED_LUNG_FILE} or '
                   f'{LUNGMASKED_PNG_DIR}/)')


def load_medseg(data_dir=None, image_source='lungmasked'):
  """Loads images, labels and lung masks of a MedSeg folder (see `find_data_dir`).

  Args:
    data_dir: the folder; None searches the usual places.
    image_source: 'lungmasked' for the authors' lung-masked 8-bit PNGs (the paper's
      exact inputs); 'png' for the full 8-bit slices (tr_im_png with its two rotated
      slices fixed, else the derived NIfTI); 'nifti' for the original float
      tr_im.nii.gz (not HU) when present, else the derived 8-bit NIfTI.

  Returns:
    A `MedSeg`.
  """
  if image_source not in IMAGE_SOURCES:
    raise ValueError(f'image_source must be one of {IMAGE_SOURCES}, got {image_source!r}')
  data_dir = find_data_dir(data_dir)
  labels, reference_img = _load_labels(data_dir / LABELS_FILE)
  shape = reference_img.shape[:3]
  images = _load_images(data_dir, image_source, shape)
  lung, lung_sides = _load_lung(data_dir, shape)
  return MedSeg(images=images.astype(np.float32), labels=labels, lung=lung,
                slice_numbers=np.arange(1, shape[2] + 1), lung_sides=lung_sides,
                reference_img=reference_img)
