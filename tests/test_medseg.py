"""Tests of finding, loading and fetching MedSeg folders (real data when present, phantoms always).

The fetch tests use file:// URLs: there is no network here.
"""
import hashlib
import json

import nibabel as nib
import numpy as np
from PIL import Image
import pytest

from covseg_jax.data import fetch
from covseg_jax.data import medseg
from covseg_jax.data import nifti
from covseg_jax.data import synthetic
from covseg_jax.errors import InputError


@pytest.fixture(scope='module')
def real_dir():
  try:
    return medseg.find_data_dir()
  except InputError:
    pytest.skip('MedSeg data not found')


@pytest.fixture(scope='module')
def real(real_dir):
  return medseg.load_medseg(real_dir)


def test_real_data_matches_the_documented_counts(real):
  assert real.images.shape == real.labels.shape == real.lung.shape == (100, 512, 512)
  assert real.images.dtype == np.float32
  assert real.labels.dtype == real.lung.dtype == np.uint8
  assert real.slice_numbers.tolist() == list(range(1, 101))
  # Table 1 of the paper and SOURCE.md.
  assert np.bincount(real.labels.ravel()).tolist() == [24394464, 1196461, 589210, 34265]
  slices_with = [(real.labels == c).any(axis=(1, 2)).sum() for c in (1, 2, 3)]
  assert slices_with == [96, 78, 25]
  assert not real.labels[49 - 1].any()
  assert real.lung.sum() == 7466318
  assert 0 <= real.images.min() and real.images.max() <= 255
  assert not real.images[real.lung == 0].any()  # The lung-masked inputs.
  assert real.lung_sides is None


def test_real_png_export_alignment(real_dir):
  # Slices 10 and 90 of the export are rotated; the derived NIfTI holds them fixed.
  derived, _ = nifti.load_nifti(real_dir / medseg.DERIVED_IMAGES_FILE)
  for k in (9, 10, 90):
    png = nifti.load_png(real_dir / medseg.image_png_name(k))
    assert np.array_equal(medseg.align_image_png(png, k), derived[:, :, k - 1])
    assert np.array_equal(png, derived[:, :, k - 1]) == (k not in medseg.ROTATED_PNG_SLICES)


def test_find_data_dir_order(tmp_path, monkeypatch):
  first = synthetic.write_medseg_folder(tmp_path / 'first', n=2, size=16)
  second = synthetic.write_medseg_folder(tmp_path / 'second', n=2, size=16)
  monkeypatch.setenv('COVSEG_DATA_DIR', str(second))
  assert medseg.find_data_dir(first) == first
  assert medseg.find_data_dir() == second
  monkeypatch.delenv('COVSEG_DATA_DIR')
  monkeypatch.chdir(tmp_path)
  synthetic.write_medseg_folder(tmp_path / 'data' / 'medseg', n=2, size=16)
  assert medseg.find_data_dir().resolve() == (tmp_path / 'data' / 'medseg').resolve()


def test_find_data_dir_errors(tmp_path, monkeypatch):
  with pytest.raises(InputError, match='no such directory'):
    medseg.find_data_dir(tmp_path / 'absent')
  monkeypatch.setenv('COVSEG_DATA_DIR', str(tmp_path))
  with pytest.raises(InputError, match=r'no tr_mask.nii.gz in it \(\$COVSEG_DATA_DIR\)'):
    medseg.find_data_dir()
  monkeypatch.delenv('COVSEG_DATA_DIR')
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(medseg, '_REPO_ROOT', tmp_path / 'repo')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  with pytest.raises(InputError) as info:
    medseg.find_data_dir()
  message = str(info.value)
  assert '\n' not in message
  for part in ('COVSEG_DATA_DIR', 'data/medseg', str(tmp_path / 'shared/data/medseg'),
               '.cache/covseg_jax/medseg', 'python -m covseg_jax.data.fetch --dest DIR'):
    assert part in message


@pytest.fixture(scope='module')
def phantom_dir(tmp_path_factory):
  return synthetic.write_medseg_folder(tmp_path_factory.mktemp('medseg'), n=12, size=32,
                                       seed=3, originals=True)


@pytest.mark.parametrize('image_source', medseg.IMAGE_SOURCES)
def test_phantom_folder_loads(phantom_dir, image_source):
  images, labels, lung = synthetic.phantom_slices(12, size=32, seed=3)
  data = medseg.load_medseg(phantom_dir, image_source)
  assert data.images.shape == (12, 32, 32) and data.images.dtype == np.float32
  assert np.array_equal(data.labels, labels) and np.array_equal(data.lung, lung)
  assert np.array_equal(data.lung_sides > 0, lung) and set(np.unique(data.lung_sides)) == {0, 1, 2}
  np.testing.assert_array_equal(data.reference_img.affine[:3, 3], (15.5, -15.5, -5.5))
  if image_source == 'nifti':
    np.testing.assert_array_equal(data.images, images)
  elif image_source == 'lungmasked':
    assert np.abs(data.images - images * lung).max() <= 1
  else:  # The per-slice min-max scaled export, rotated slice 10 fixed.
    low = images.min(axis=(1, 2), keepdims=True)
    high = images.max(axis=(1, 2), keepdims=True)
    assert np.abs(data.images - 255 * (images - low) / (high - low)).max() <= 0.5


def test_fallbacks_without_the_original_files(tmp_path):
  path = synthetic.write_medseg_folder(tmp_path, n=12, size=32, seed=3)
  png = medseg.load_medseg(path, 'png')
  assert png.lung_sides is None
  assert np.array_equal(medseg.load_medseg(path, 'nifti').images, png.images)
  # The lung mask falls back to the derived NIfTI, then to the lung-masked PNGs.
  (path / medseg.DERIVED_LUNG_FILE).unlink()
  assert np.array_equal(medseg.load_medseg(path).lung, png.lung)
  (path / medseg.DERIVED_IMAGES_FILE).unlink()
  with pytest.raises(InputError, match='no tr_im.nii.gz or derived'):
    medseg.load_medseg(path, 'nifti')


def test_bad_folders_name_the_file(tmp_path):
  path = synthetic.write_medseg_folder(tmp_path, n=4, size=32)
  Image.fromarray(np.zeros((32, 30), np.uint8)).save(path / medseg.lungmasked_png_name(2))
  with pytest.raises(InputError, match=r'i002.png: shape \(32, 30\) does not match'):
    medseg.load_medseg(path)
  (path / medseg.lungmasked_png_name(2)).unlink()
  with pytest.raises(InputError, match='i002.png: no such file'):
    medseg.load_medseg(path)
  reference = nib.Nifti1Image(np.zeros((32, 32, 4)), np.eye(4))
  nifti.save_nifti(np.zeros((32, 32, 5)), reference, path / medseg.DERIVED_LUNG_FILE,
                   np.uint8, overwrite=True)
  with pytest.raises(InputError, match=r'tr_lungmask_binary_derived.nii.gz: shape \(32, 32, 5\)'):
    medseg.load_medseg(path, 'png')
  nifti.save_nifti(np.full((32, 32, 4), 0.5), reference, path / medseg.LABELS_FILE,
                   np.float64, overwrite=True)
  with pytest.raises(InputError, match='tr_mask.nii.gz: labels must be integers 0..3'):
    medseg.load_medseg(path, 'png')
  with pytest.raises(ValueError):
    medseg.load_medseg(path, 'jpeg')


def _file_urls(source_dir):
  return lambda relative_path: (source_dir / relative_path).as_uri()


def test_fetch_verifies_skips_and_derives(real_dir, tmp_path, capsys):
  dest = tmp_path / 'fetched'
  downloaded = fetch.fetch(dest, ('labels', 'lungmasked'), url_for=_file_urls(real_dir))
  assert len(downloaded) == 101
  assert json.loads((dest / 'paper_split.json').read_text())['test'] == json.loads(
      (real_dir / 'paper_split.json').read_text())['test']
  derived, _ = nifti.load_nifti(dest / medseg.DERIVED_LUNG_FILE)
  expected, _ = nifti.load_nifti(real_dir / medseg.DERIVED_LUNG_FILE)
  assert derived.dtype == np.uint8 and np.array_equal(derived, expected)
  assert not (dest / medseg.DERIVED_IMAGES_FILE).exists()  # tr_im_png was not fetched.
  # A second run downloads only what is missing or damaged.
  (dest / medseg.lungmasked_png_name(7)).write_bytes(b'damaged')
  (dest / medseg.lungmasked_png_name(8)).unlink()
  downloaded = fetch.fetch(dest, ('labels', 'lungmasked'), url_for=_file_urls(real_dir))
  assert sorted(p.name for p in downloaded) == ['i007.png', 'i008.png']
  assert 'lungmasked: 2 downloaded, 98 already present' in capsys.readouterr().out
  assert not list(dest.rglob('.*'))  # No temporary files left.


def test_download_verified(tmp_path):
  source = tmp_path / 'source.bin'
  source.write_bytes(b'payload')
  digest = hashlib.sha256(b'payload').hexdigest()
  target = tmp_path / 'out' / 'file.bin'
  with pytest.raises(InputError, match='SHA-256 .* is not the expected 0+; not saved'):
    fetch.download_verified(source.as_uri(), target, '0' * 64)
  assert not target.parent.exists() or not list(target.parent.iterdir())
  with pytest.raises(InputError, match='download failed'):
    fetch.download_verified((tmp_path / 'absent').as_uri(), target, digest)
  assert fetch.download_verified(source.as_uri(), target, digest)
  assert target.read_bytes() == b'payload'
  # Present with the right hash: not downloaded again (the URL would fail).
  assert not fetch.download_verified((tmp_path / 'absent').as_uri(), target, digest)


def test_fetch_tables_and_command_line(monkeypatch, capsys):
  assert len(fetch.SHA256) == 201
  assert fetch.github_url(medseg.lungmasked_png_name(7)) == (
      'https://raw.githubusercontent.com/adnan-saood/covid-19/'
      'd5debd353cd08ad27a052c5941634d67a40e0b2b/segnet_matlab/dataset/im/512/i007.png')
  assert fetch.github_url(medseg.LABELS_FILE).endswith(
      'COVID19-DL/b3d9acbb54fb8728c4b6d967bf5cf810874af4fe/dataset/raw/tr_mask.nii.gz')

  def offline(dest, what):
    raise InputError(f'{dest}: offline ({",".join(what)})')

  monkeypatch.setattr(fetch, 'fetch', offline)
  assert fetch.main(['--dest', 'somewhere', '--what', 'labels,png']) == 2
  assert capsys.readouterr().err == 'error: somewhere: offline (labels,png)\n'
  with pytest.raises(SystemExit):
    fetch.main(['--dest', 'somewhere', '--what', 'labels,masks'])


def test_write_derived_on_a_phantom_folder(tmp_path):
  path = synthetic.write_medseg_folder(tmp_path, n=12, size=32)
  expected = {name: nifti.load_nifti(path / name)[0]
              for name in (medseg.DERIVED_LUNG_FILE, medseg.DERIVED_IMAGES_FILE)}
  for name in expected:
    (path / name).unlink()
  fetch.write_derived(path)
  for name, data in expected.items():
    assert np.array_equal(nifti.load_nifti(path / name)[0], data)
