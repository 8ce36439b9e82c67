"""Tests of NIfTI/PNG reading and writing, above all the rejection of bad files."""
import gzip
import os
import pathlib

import nibabel as nib
import numpy as np
from PIL import Image
import pytest

from covseg_jax.data import nifti
from covseg_jax.errors import InputError

_AFFINE = np.diag([-1.0, 1.0, 1.0, 1.0])


def _write(path, data, image_class=nib.Nifti1Image):
  nib.save(image_class(data, _AFFINE), path)
  return path


@pytest.fixture
def volume():
  return np.random.default_rng(0).random((32, 24, 5))


def _assert_rejected(path, problem):
  with pytest.raises(InputError, match=problem) as info:
    nifti.load_nifti(path)
  message = str(info.value)
  assert message.startswith(str(path)) and '\n' not in message


@pytest.mark.parametrize('name', ['v.nii', 'v.nii.gz'])
@pytest.mark.parametrize('image_class', [nib.Nifti1Image, nib.Nifti2Image])
def test_load_keeps_dtype_and_values(tmp_path, volume, name, image_class):
  data, image = nifti.load_nifti(_write(tmp_path / name, volume, image_class))
  assert data.dtype == np.float64 and np.array_equal(data, volume)
  np.testing.assert_array_equal(image.affine, _AFFINE)


def test_load_keeps_integer_dtype_and_accepts_2d(tmp_path):
  labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
  data, _ = nifti.load_nifti(_write(tmp_path / 'l.nii.gz', labels))
  assert data.dtype == np.uint8 and np.array_equal(data, labels)


def test_trailing_singleton_4d_is_squeezed(tmp_path, volume):
  data, _ = nifti.load_nifti(_write(tmp_path / 'v.nii.gz', volume[..., None]))
  assert data.shape == volume.shape


def test_missing_directory_and_empty_file(tmp_path):
  _assert_rejected(tmp_path / 'absent.nii.gz', 'no such file')
  _assert_rejected(tmp_path, 'is a directory')
  (tmp_path / 'empty.nii.gz').touch()
  _assert_rejected(tmp_path / 'empty.nii.gz', 'empty file')


def test_truncated_and_corrupt_gzip(tmp_path, volume):
  blob = _write(tmp_path / 'v.nii.gz', volume).read_bytes()
  (tmp_path / 'half.nii.gz').write_bytes(blob[:len(blob) // 2])
  _assert_rejected(tmp_path / 'half.nii.gz', 'truncated gzip')
  corrupt = bytearray(blob)
  corrupt[len(blob) // 2] ^= 0xFF  # nibabel alone reads this without noticing.
  (tmp_path / 'corrupt.nii.gz').write_bytes(bytes(corrupt))
  _assert_rejected(tmp_path / 'corrupt.nii.gz', 'corrupt gzip')


def test_truncated_uncompressed_data(tmp_path, volume):
  blob = _write(tmp_path / 'v.nii', volume).read_bytes()
  (tmp_path / 'short.nii').write_bytes(blob[:600])
  _assert_rejected(tmp_path / 'short.nii', 'data truncated')


def test_not_a_nifti(tmp_path):
  (tmp_path / 'text.nii').write_text('not an image\n' * 40)
  _assert_rejected(tmp_path / 'text.nii', 'not a single-file NIfTI')
  (tmp_path / 'text.nii.gz').write_bytes(gzip.compress(b'plain text, gzipped' * 40))
  _assert_rejected(tmp_path / 'text.nii.gz', 'not a single-file NIfTI')
  nib.save(nib.MGHImage(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp_path / 'x.mgz')
  _assert_rejected(tmp_path / 'x.mgz', 'not a single-file NIfTI')


def test_unreadable_file(tmp_path, volume, monkeypatch):
  path = _write(tmp_path / 'v.nii.gz', volume)
  if os.geteuid() == 0:  # Root reads any file: simulate the refusal.
    def refuse(self):
      raise PermissionError(13, 'Permission denied', str(self))
    monkeypatch.setattr(pathlib.Path, 'read_bytes', refuse)
  else:
    path.chmod(0)
  _assert_rejected(path, 'permission denied')


@pytest.mark.parametrize('shape, problem', [
    ((7,), '1D data'),
    ((2, 2, 2, 2), '4D data'),
    ((2, 2, 2, 1, 2), '5D data'),
    ((4, 0, 3), 'length 0'),
])
def test_bad_dimensions(tmp_path, shape, problem):
  _assert_rejected(_write(tmp_path / 'v.nii', np.zeros(shape, np.float32)), problem)


def test_absurd_size_is_rejected_from_the_header(tmp_path):
  header = nib.Nifti1Header()
  header.set_data_shape((5000, 5000, 10))
  header.set_data_dtype(np.uint8)
  (tmp_path / 'huge.nii').write_bytes(header.binaryblock + bytes(4))
  _assert_rejected(tmp_path / 'huge.nii', 'implausible size')
  _assert_rejected(_write(tmp_path / 'deep.nii', np.zeros((1, 1, 4097), np.uint8)),
                   'implausible size')


@pytest.mark.parametrize('bad', [np.nan, np.inf])
def test_non_finite_voxels(tmp_path, volume, bad):
  volume[1, 2, 3] = bad
  _assert_rejected(_write(tmp_path / 'v.nii.gz', volume), 'NaN or infinite')


def test_save_round_trip_keeps_affine_header_and_dtype(tmp_path, volume):
  _, reference = nifti.load_nifti(_write(tmp_path / 'ref.nii.gz', volume))
  reference.header['descrip'] = b'reference'
  labels = (volume * 4).astype(np.int64)
  path = nifti.save_nifti(labels, reference, tmp_path / 'out' / 'labels.nii.gz', np.uint8)
  data, image = nifti.load_nifti(path)
  assert data.dtype == np.uint8 and np.array_equal(data, labels)
  np.testing.assert_array_equal(image.affine, _AFFINE)
  assert image.header['descrip'] == b'reference'
  assert image.header.get_slope_inter() == (None, None)
  assert sorted(p.name for p in path.parent.iterdir()) == ['labels.nii.gz']  # No temp files.


def test_save_refuses_to_overwrite(tmp_path, volume):
  _, reference = nifti.load_nifti(_write(tmp_path / 'ref.nii', volume))
  path = nifti.save_nifti(volume, reference, tmp_path / 'v.nii')
  with pytest.raises(InputError, match='already exists'):
    nifti.save_nifti(volume * 0, reference, path)
  assert np.array_equal(nifti.load_nifti(path)[0], volume)
  nifti.save_nifti(volume * 0, reference, path, overwrite=True)
  assert not nifti.load_nifti(path)[0].any()


def test_save_rejects_other_suffixes(tmp_path, volume):
  _, reference = nifti.load_nifti(_write(tmp_path / 'ref.nii', volume))
  with pytest.raises(InputError, match='must end in'):
    nifti.save_nifti(volume, reference, tmp_path / 'v.npy')


def test_load_png_modes(tmp_path):
  gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
  Image.fromarray(gray).save(tmp_path / 'g.png')
  Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / 'rgb.png')
  Image.fromarray(np.full((4, 5), 1000, np.uint16)).save(tmp_path / 'deep.png')
  Image.fromarray(gray).save(tmp_path / 'g.jpg', quality=100)
  assert np.array_equal(nifti.load_png(tmp_path / 'g.png'), gray)
  rgb = nifti.load_png(tmp_path / 'rgb.png')
  assert rgb.shape == (8, 8) and np.array_equal(rgb, gray)  # Grey RGB keeps its values.
  deep = nifti.load_png(tmp_path / 'deep.png')
  assert deep.dtype == np.uint16 and deep.shape == (4, 5) and (deep == 1000).all()
  assert np.abs(nifti.load_png(tmp_path / 'g.jpg').astype(int) - gray).max() <= 2


def test_load_png_rejects_bad_files(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / 'ok.png')
  blob = (tmp_path / 'ok.png').read_bytes()
  (tmp_path / 'half.png').write_bytes(blob[:len(blob) // 2])
  (tmp_path / 'text.png').write_text('hello' * 20)
  (tmp_path / 'empty.png').touch()
  Image.fromarray(np.zeros((4, 3000), np.uint8)).save(tmp_path / 'wide.png')
  for name, problem in [('half.png', 'damaged'), ('text.png', 'not an image'),
                        ('empty.png', 'empty file'), ('absent.png', 'no such file'),
                        ('wide.png', 'implausible size')]:
    with pytest.raises(InputError, match=problem) as info:
      nifti.load_png(tmp_path / name)
    assert str(info.value).startswith(str(tmp_path / name))
