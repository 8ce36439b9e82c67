"""Validated reading and atomic writing of NIfTI volumes and PNG/JPEG slices.

Every bad input raises `InputError` with one line naming the file and the problem.
"""
import gzip
import io
import os
import pathlib
import uuid
import zlib

import nibabel as nib
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError
import numpy as np
from PIL import Image

from covseg_jax.errors import InputError

# Larger than any CT slice or series we expect; a header claiming more is damaged.
MAX_IN_PLANE = 2048
MAX_SLICES = 4096
MAX_VOXELS = 2 ** 30  # 4 GiB as float32; e.g. 1024 x 1024 x 1024 or 512 x 512 x 4096.

_GZIP_MAGIC = b'\x1f\x8b'
# sizeof_hdr (first 4 bytes) and the magic string tell NIfTI-1 from NIfTI-2.
_NIFTI_CLASSES = ((348, 344, b'n+1\x00', nib.Nifti1Image),
                  (540, 4, b'n+2\x00', nib.Nifti2Image))
# Pillow modes kept as they are (grayscale of various depths); others become 'L'.
_GRAY_MODES = ('L', 'I;16', 'I', 'F')


def _read_bytes(path):
  """Returns the file's bytes after checking that it is a readable, non-empty file."""
  if not path.exists():
    raise InputError(f'{path}: no such file')
  if path.is_dir():
    raise InputError(f'{path}: is a directory, expected a file')
  if not path.is_file():  # A FIFO or device would block or never end.
    raise InputError(f'{path}: not a regular file')
  try:
    blob = path.read_bytes()
  except PermissionError:
    raise InputError(f'{path}: permission denied') from None
  except OSError as e:
    raise InputError(f'{path}: cannot read ({e.strerror or e})') from None
  if not blob:
    raise InputError(f'{path}: empty file (0 bytes)')
  return blob


def _check_shape(path, shape):
  """Checks a 2D/3D shape (one trailing singleton allowed); returns it without that."""
  if len(shape) == 4 and shape[3] == 1:
    shape = shape[:3]
  if len(shape) < 2 or len(shape) > 3:
    raise InputError(f'{path}: {len(shape)}D data of shape {shape}, expected 2D or 3D')
  if 0 in shape:
    raise InputError(f'{path}: a dimension has length 0 (shape {shape})')
  if min(shape) < 0:
    raise InputError(f'{path}: invalid NIfTI header (negative dimension in shape {shape})')
  if (max(shape[:2]) > MAX_IN_PLANE or (len(shape) == 3 and shape[2] > MAX_SLICES)
      or np.prod(shape, dtype=np.int64) > MAX_VOXELS):
    raise InputError(f'{path}: implausible size {shape} (at most {MAX_IN_PLANE} in-plane, '
                     f'{MAX_SLICES} slices and {MAX_VOXELS} voxels)')
  return shape


def _check_finite(path, array):
  if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
    raise InputError(f'{path}: contains NaN or infinite values')


def load_nifti(path):
  """Loads a 2D or 3D NIfTI-1/2 file (.nii or .nii.gz).

  Returns:
    (data, image): the data with its stored dtype (scaled if the header has a slope;
    a trailing singleton 4th axis is dropped) and the nibabel image, whose affine and
    header serve as the reference for `save_nifti`.
  """
  path = pathlib.Path(path)
  blob = _read_bytes(path)
  if blob.startswith(_GZIP_MAGIC):
    # Decompressing the whole stream checks the CRC; nibabel's lazy reader stops
    # at the end of the data and would miss a corrupted file.
    try:
      blob = gzip.decompress(blob)
    except EOFError:
      raise InputError(f'{path}: truncated gzip stream') from None
    except (OSError, zlib.error) as e:
      raise InputError(f'{path}: corrupt gzip data ({e})') from None
  for sizeof_hdr, magic_offset, magic, image_class in _NIFTI_CLASSES:
    if (blob[magic_offset:magic_offset + 4] == magic
        and sizeof_hdr in (int.from_bytes(blob[:4], 'little'), int.from_bytes(blob[:4], 'big'))):
      break
  else:
    raise InputError(f'{path}: not a single-file NIfTI image')
  try:
    image = image_class.from_bytes(blob)
  except (HeaderDataError, WrapStructError, ValueError) as e:
    raise InputError(f'{path}: invalid NIfTI header ({e})') from None
  shape = _check_shape(path, image.shape)
  try:
    data = np.asanyarray(image.dataobj)
  except (OSError, ValueError) as e:
    raise InputError(f'{path}: data truncated or unreadable ({str(e).splitlines()[0]})') from None
  data = data.reshape(shape)
  _check_finite(path, data)
  return data, image


def save_nifti(array, reference_img, path, dtype=None, overwrite=False):
  """Writes `array` as NIfTI with the reference's affine and a copy of its header.

  Args:
    array: the data, stored as `dtype` (default: the array's own dtype).
    reference_img: a nibabel image, e.g. the second value returned by `load_nifti`.
    path: destination ending in .nii or .nii.gz; written to a temporary file in the
      same directory and then renamed, so a reader never sees a partial file.
    dtype: data dtype on disk; the values are cast, never rescaled.
    overwrite: whether an existing file may be replaced.

  Returns:
    The path written, as a `pathlib.Path`.
  """
  path = pathlib.Path(path)
  suffix = '.nii.gz' if path.name.endswith('.nii.gz') else path.suffix
  if suffix not in ('.nii', '.nii.gz'):
    raise InputError(f'{path}: output name must end in .nii or .nii.gz')
  if path.exists() and not overwrite:
    raise InputError(f'{path}: already exists (pass overwrite=True to replace it)')
  array = np.asarray(array)
  dtype = array.dtype if dtype is None else np.dtype(dtype)
  image = type(reference_img)(array.astype(dtype), reference_img.affine,
                              header=reference_img.header.copy())
  # The copied header may carry another dtype; without this nibabel would rescale.
  image.set_data_dtype(dtype)
  # The temporary name keeps the suffix, which tells nibabel whether to compress.
  tmp_path = path.with_name(f'.{uuid.uuid4().hex}.{path.name}')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, tmp_path)
    os.replace(tmp_path, path)
  except OSError as e:
    raise InputError(f'{path}: cannot write ({e.strerror or e})') from None
  finally:
    tmp_path.unlink(missing_ok=True)
  return path


def load_png(path):
  """Loads one image slice (PNG, JPEG or anything Pillow reads) as a 2D array.

  Grayscale files keep their dtype (uint8, uint16, int32 or float32); colour and
  palette images are converted to 8-bit luminance.
  """
  path = pathlib.Path(path)
  blob = _read_bytes(path)
  try:
    with Image.open(io.BytesIO(blob)) as image:
      width, height = image.size
      if max(width, height) > MAX_IN_PLANE or 0 in (width, height):
        raise InputError(f'{path}: implausible size {height}x{width}')
      if image.mode not in _GRAY_MODES:
        image = image.convert('L')
      array = np.asarray(image)
  except Image.UnidentifiedImageError:
    raise InputError(f'{path}: not an image file Pillow can read') from None
  except Image.DecompressionBombError:
    raise InputError(f'{path}: implausible image size') from None
  except (OSError, SyntaxError, ValueError) as e:
    raise InputError(f'{path}: damaged image file ({e})') from None
  _check_finite(path, array)
  return array
