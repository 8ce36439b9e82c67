"""Prediction: reading and reorienting scans, intensity conventions, batching, outputs aligned with
the input, severity numbers against the written masks, and one-line errors for bad input.

Most tests use small untrained models (the pipeline, not their accuracy, is under test); the
end-to-end tests at the bottom train tiny runs and go through the command line.
"""
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

from flax import linen as nn
import jax
import jax.numpy as jnp
import nibabel as nib
import numpy as np
from PIL import Image
import pytest

from configs import lung_resnet, unet_multi
from covseg_jax import evaluate, models, predict, severity, train
from covseg_jax.data import nifti, preprocess, synthetic
from covseg_jax.errors import InputError
from tests import helpers
from tests.test_train import tiny_config

SIZE = 32
_REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class FakeRun:
  """The fields of checkpoint.Run that predict uses, from an untrained model."""
  config: object
  model: object
  variables: dict
  step: int
  normalization: dict
  num_classes: int
  class_names: tuple
  task: str


def _random_variables(model, seed, channels=1):
  """He-normal kernels, unit BatchNorm statistics: shapes from eval_shape, so nothing compiles."""
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          jax.ShapeDtypeStruct((1, SIZE, SIZE, channels), np.float32))
  rng = np.random.default_rng(seed)

  def leaf(path, x):
    name = path[-1].key
    if name in ('scale', 'var'):
      return np.ones(x.shape, x.dtype)
    if name in ('bias', 'mean'):
      return np.zeros(x.shape, x.dtype)
    return rng.normal(0, np.sqrt(2 / np.prod(x.shape[:-1])), x.shape).astype(x.dtype)

  return dict(jax.tree_util.tree_map_with_path(leaf, shapes))


@functools.lru_cache(maxsize=None)
def _fake_run(family):
  config = family.get_config('cpu')
  config.model.dtype = 'float32'
  if config.model.name == 'unet':
    config.model.base_features = 4
  else:
    config.model.features, config.model.blocks_per_stage = (4, 4, 4), 1
    config.model.head_features = 8
  task = config.data.task
  model = models.get_model(config.model, preprocess.num_classes(task))
  variables = _random_variables(model, seed=0)
  mean_image = None
  if config.data.normalization == 'zero_center':
    mean_image = np.random.default_rng(0).uniform(20, 120, (SIZE, SIZE)).astype(np.float32)
  norm = {'method': config.data.normalization, 'image_size': SIZE,
          'lung_mask': config.data.lung_mask, 'task': task, 'image_source': 'lungmasked',
          'class_names': preprocess.CLASS_NAMES[task], 'mean_image': mean_image}
  return FakeRun(config=config, model=model, variables=variables, step=7, normalization=norm,
                 num_classes=preprocess.num_classes(task),
                 class_names=preprocess.CLASS_NAMES[task], task=task)


def fake_run(family, **normalization):
  """An untrained run of `family` at SIZE (built once), with normalisation fields replaced."""
  run = _fake_run(family)
  return dataclasses.replace(run, normalization={**run.normalization, **normalization})


@pytest.fixture(scope='module')
def infection():
  return predict.Model(fake_run(unet_multi), 'infection', 'runs/multi', batch_size=4)


@pytest.fixture(scope='module')
def lung():
  return predict.Model(fake_run(lung_resnet), 'lung', 'runs/lung', batch_size=4)


class ThresholdLung:
  """A stand-in lung model that finds the phantom's lungs: 8-bit scaled values 19..55 (after
  the lung window, air is about 0 to 14, lung 34 +- 5, soft tissue about 240)."""
  task, lung_mask = 'lung', False

  def segment(self, images, lung=None, progress=None):
    del lung, progress
    return ((images > 19) & (images < 55)).astype(np.uint8)

  def describe(self):
    return {'run': 'threshold'}


def write_phantom(path, shape=(40, 48, 4), seed=0, spacing=(0.7, 0.8, 5.0)):
  """A phantom HU volume as NIfTI with an affine that matches its anatomy; returns its sides."""
  volume, _, sides, affine = synthetic.phantom_volume(shape, seed=seed, spacing=spacing)
  nib.save(nib.Nifti1Image(volume, affine), path)
  return sides


def load(path):
  image = nib.load(path)
  return np.asarray(image.dataobj), image


def read_mask(path):
  return load(path)[0] if str(path).endswith('.nii.gz') else np.asarray(Image.open(path))


def check_report_against_masks(report, lung_path, infection_path, voxel_ml):
  """Recomputes every severity number from the written masks."""
  sides, lesions = read_mask(lung_path), read_mask(infection_path)
  assert not lesions[sides == 0].any()
  names = report['classes'][1:]
  for region, inside in (('overall', sides > 0), ('right', sides == severity.RIGHT),
                         ('left', sides == severity.LEFT)):
    numbers = report[region]
    lung_voxels = int(inside.sum())
    assert numbers['lung_voxels'] == lung_voxels
    if voxel_ml is None:
      assert numbers['lung_volume_ml'] is None
    else:
      assert numbers['lung_volume_ml'] == pytest.approx(lung_voxels * voxel_ml, rel=1e-6)
    for label, name in list(enumerate(names, start=1)) + [(None, severity.ANY_LESION)]:
      voxels = int(((lesions > 0) if label is None else (lesions == label))[inside].sum())
      got = numbers['lesions'][name]
      assert got['voxels'] == voxels
      if voxel_ml is not None:
        assert got['volume_ml'] == pytest.approx(voxels * voxel_ml, rel=1e-6)
      expected = 100 * voxels / lung_voxels if lung_voxels else None
      assert got['percent_of_lung'] == pytest.approx(expected)


# --- Reading, orientation and intensity -------------------------------------------------------


def test_parse_axcodes():
  assert predict.parse_axcodes('lps') == ('L', 'P', 'S')
  for bad in ('LLS', 'LP', 'XYZ', 'LPSI'):
    with pytest.raises(ValueError):
      predict.parse_axcodes(bad)


def test_reorientation_round_trip(tmp_path):
  """Any storage order of the same anatomy gives the same processing slices and maps back."""
  write_phantom(tmp_path / 'p.nii.gz')
  reference = predict.read_scan(tmp_path / 'p.nii.gz')
  assert reference.axcodes == ('P', 'L', 'S') and reference.orientation_source == 'header'
  assert reference.slices.shape == (4, 48, 40)  # Rows now run right to left: LPS.
  image = nib.load(tmp_path / 'p.nii.gz')
  for codes in ('LPS', 'RAS', 'PLI', 'SPL', 'ILA'):
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(image.affine),
                                           nib.orientations.axcodes2ornt(tuple(codes)))
    nib.save(image.as_reoriented(ornt), tmp_path / f'{codes}.nii.gz')
    scan = predict.read_scan(tmp_path / f'{codes}.nii.gz')
    assert scan.axcodes == tuple(codes)
    np.testing.assert_array_equal(scan.slices, reference.slices)
    stored = np.asarray(nib.load(tmp_path / f'{codes}.nii.gz').dataobj)
    np.testing.assert_array_equal(scan.to_stored(scan.slices), stored)
    axial = scan.axial_axis
    assert codes[axial] in 'SI'
    first = np.take(stored, scan.stored_index(0), axis=axial)
    assert np.array_equal(np.sort(first.ravel()), np.sort(reference.slices[0].ravel()))


def test_header_without_orientation_and_flag(tmp_path):
  """Codes 0 (like the MedSeg files): stored as the training data; --orientation overrides."""
  volume = np.random.default_rng(0).normal(size=(32, 40, 3)).astype(np.float32)
  image = nib.Nifti1Image(volume, np.diag([-1.0, 1.0, 1.0, 1.0]))
  image.set_sform(None, code=0)
  image.set_qform(None, code=0)
  nib.save(image, tmp_path / 'v.nii')
  scan = predict.read_scan(tmp_path / 'v.nii')
  assert scan.orientation_source == 'assumed' and scan.axcodes == predict.PROCESSING_AXCODES
  np.testing.assert_array_equal(scan.slices, np.moveaxis(volume, 2, 0))
  flagged = predict.read_scan(tmp_path / 'v.nii', orientation=('P', 'L', 'S'))
  np.testing.assert_array_equal(flagged.slices, np.moveaxis(volume, 2, 0).transpose(0, 2, 1))


def test_png_slices(tmp_path):
  array = np.random.default_rng(0).integers(0, 256, (40, 36), dtype=np.uint8)
  Image.fromarray(array).save(tmp_path / 's.png')
  Image.fromarray(np.stack([array] * 3, -1)).save(tmp_path / 'rgb.jpg', quality=100)
  scan = predict.read_scan(tmp_path / 's.png')
  assert scan.kind == 'image' and scan.voxel_volume_ml is None and scan.slices.shape == (1, 40, 36)
  np.testing.assert_array_equal(scan.slices[0], array)
  assert predict.read_scan(tmp_path / 'rgb.jpg').slices.shape == (1, 40, 36)  # Colour -> grey.


def test_voxel_geometry_units_and_spacing(tmp_path):
  volume = np.random.default_rng(0).normal(size=(20, 20, 4)).astype(np.float32)
  image = nib.Nifti1Image(volume, np.diag([0.5, 0.6, 2.0, 1.0]))
  nib.save(image, tmp_path / 'mm.nii.gz')
  scan = predict.read_scan(tmp_path / 'mm.nii.gz')
  np.testing.assert_allclose(scan.voxel_size_mm, [0.5, 0.6, 2.0], rtol=1e-6)
  assert scan.voxel_volume_ml == pytest.approx(0.5 * 0.6 * 2.0 / 1000, rel=1e-6)
  image.header.set_xyzt_units('micron')
  nib.save(image, tmp_path / 'um.nii.gz')
  assert predict.read_scan(tmp_path / 'um.nii.gz').voxel_volume_ml == pytest.approx(0.6e-12,
                                                                                   rel=1e-6)


def test_hu_detection_and_8bit_scaling():
  hu, _, _, _ = synthetic.phantom_volume((32, 32, 4))
  hu = np.moveaxis(hu, 2, 0)
  assert predict.looks_like_hu(hu)
  scaled = predict.to_8bit_scale(hu, hu=True)
  low, high = preprocess.HU_LUNG_WINDOW
  windowed = np.clip(hu, low, high)
  expected = 255 * (windowed - windowed.min(axis=(1, 2), keepdims=True)) / np.ptp(
      windowed, axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(scaled, expected, rtol=1e-5, atol=1e-3)
  assert scaled.min() == 0 and scaled.max() == pytest.approx(255)
  eight_bit = np.random.default_rng(0).integers(0, 256, (2, 16, 16)).astype(np.float32)
  assert not predict.looks_like_hu(eight_bit)
  per_slice = predict.to_8bit_scale(eight_bit * 3 + 7, hu=False)
  np.testing.assert_allclose(per_slice, predict.to_8bit_scale(eight_bit, hu=False), atol=1e-3)
  assert not predict.to_8bit_scale(np.zeros((1, 4, 4)), hu=False).any()  # Constant slice -> 0.


def test_lung_masked_inputs_keep_their_scale():
  masked = np.zeros((2, 8, 8), np.float32)
  masked[:, 2:6, 2:6] = np.arange(16).reshape(4, 4) * 12 + 1  # 1..181: not min-max scaled.
  scaled, how = predict.to_8bit(masked, 'auto', lung_masked=True)
  np.testing.assert_array_equal(scaled, masked)
  assert how == '8-bit, as given'
  for intensity, lung_masked in (('minmax', True), ('auto', False)):
    scaled, how = predict.to_8bit(masked, intensity, lung_masked)
    np.testing.assert_array_equal(scaled, predict.to_8bit_scale(masked, hu=False))
    assert how == 'min-max per slice' and scaled.max() == pytest.approx(255)
  scaled, how = predict.to_8bit(masked * 2, 'auto', lung_masked=True)  # Not 8-bit: min-max.
  assert how == 'min-max per slice' and scaled.max() == pytest.approx(255)
  hu = np.full((1, 8, 8), -1024, np.float32)
  hu[0, 2:6, 2:6] = [-900, -650, 100, 900]
  scaled, how = predict.to_8bit(hu, 'auto', lung_masked=True)
  low, high = preprocess.HU_LUNG_WINDOW
  np.testing.assert_allclose(scaled, (np.clip(hu, low, high) - low) * 255 / (high - low))
  assert how == 'HU, lung window'
  scaled, how = predict.to_8bit(hu, 'auto', lung_masked=False)
  np.testing.assert_array_equal(scaled, predict.to_8bit_scale(hu, hu=True))
  assert how == 'HU, lung window, then min-max per slice'


def test_lung_masked_input():
  scan = predict.Scan(path=pathlib.Path('m.png'), name='m', kind='image',
                      slices=np.zeros((1, 20, 20), np.float32), stored_shape=(20, 20),
                      axcodes=predict.PROCESSING_AXCODES, orientation_source='assumed', image=None,
                      voxel_size_mm=None, voxel_volume_ml=None)
  scan.slices[0, 4:9, 3:17] = np.arange(1, 71).reshape(5, 14)
  np.testing.assert_array_equal(predict.masked_lung(scan), scan.slices > 0)
  scan.slices[:] = np.random.default_rng(0).normal(size=scan.slices.shape)
  with pytest.raises(InputError, match='does not look lung-masked'):
    predict.masked_lung(scan)


# --- Models -----------------------------------------------------------------------------------


def test_model_checks_role_classes_channels_and_normalisation():
  with pytest.raises(InputError, match="a 'lung' run, but --infection_run needs"):
    predict.Model(fake_run(lung_resnet), 'infection', 'runs/l')
  with pytest.raises(InputError, match="a 'multi' run, but --lung_run needs"):
    predict.Model(fake_run(unet_multi), 'lung', 'runs/m')
  wrong_classes = fake_run(unet_multi)
  wrong_classes.num_classes = 2
  with pytest.raises(InputError, match='runs/m: 2 classes'):
    predict.Model(wrong_classes, 'infection', 'runs/m')
  two_class_head = fake_run(lung_resnet)
  two_class_head.task, two_class_head.num_classes = 'multi', 4
  two_class_head.class_names = preprocess.CLASS_NAMES['multi']
  with pytest.raises(InputError, match=r'outputs \(1, 32, 32, 2\)'):
    predict.Model(two_class_head, 'infection', 'runs/m')
  rgb = fake_run(unet_multi)
  rgb.variables = _random_variables(rgb.model, 0, channels=3)
  with pytest.raises(InputError, match='does not take single-channel 32x32 slices'):
    predict.Model(rgb, 'infection', 'runs/m')
  with pytest.raises(InputError, match='without a 32x32 training mean image'):
    predict.Model(fake_run(unet_multi, mean_image=None), 'infection', 'runs/m')
  float_mean = np.full((SIZE, SIZE), -700.0, np.float32)
  with pytest.raises(InputError, match='trained on intensities outside 0..255'):
    predict.Model(fake_run(unet_multi, mean_image=float_mean), 'infection', 'runs/m')
  with pytest.raises(InputError, match="unknown normalisation 'clahe'"):
    predict.Model(fake_run(unet_multi, method='clahe'), 'infection', 'runs/m')


def test_batches_pad_compile_once_and_match_single_slices(infection):
  images = np.random.default_rng(0).uniform(0, 255, (7, 48, 40)).astype(np.float32)
  labels = infection.segment(images[:4])  # Compiles the batch shape (4, 48, 40).
  compiled = predict.forward._cache_size()
  labels = infection.segment(images)
  assert labels.shape == (7, 48, 40) and labels.dtype == np.uint8
  assert predict.forward._cache_size() == compiled  # 4 + 3 padded to 4: the same shape.
  one_by_one = np.concatenate([infection.segment(images[i:i + 1]) for i in range(7)])
  assert (labels == one_by_one).mean() > 0.999  # Up to float rounding at argmax ties.


def test_lung_zscore_takes_statistics_inside_its_own_first_estimate(lung, monkeypatch):
  calls = []
  normalize = preprocess.normalize

  def spy(images, method, lung=None, mean_image=None):
    calls.append(None if lung is None else lung.copy())
    return normalize(images, method, lung=lung, mean_image=mean_image)

  monkeypatch.setattr(preprocess, 'normalize', spy)
  scan = predict.to_8bit_scale(np.moveaxis(synthetic.phantom_volume((32, 32, 2))[0], 2, 0), True)
  lung.segment(scan)
  assert len(calls) == 2 and calls[0] is None and calls[1].shape == (2, SIZE, SIZE)


def test_progress_bar():
  class Terminal(io.StringIO):
    def isatty(self):
      return True

  stream = Terminal()
  bar = predict.Progress('p: lungs', 4, stream, width=8)
  bar.update(1)
  bar.update(3)
  bar.close()
  assert stream.getvalue().endswith('\rp: lungs [########] 4/4 slices\n')
  assert '\rp: lungs [##......] 1/4 slices' in stream.getvalue()
  quiet = io.StringIO()
  predict.Progress('x', 4, quiet).update(4)
  predict.Progress('x', 1, Terminal()).close()  # A single slice has no bar.
  assert quiet.getvalue() == ''


# --- Outputs ----------------------------------------------------------------------------------


def test_outputs_match_the_input_grid_and_the_report_matches_the_masks(tmp_path, infection, lung):
  write_phantom(tmp_path / 'p.nii.gz')
  original = nib.load(tmp_path / 'p.nii.gz')
  digest = hashlib.sha256((tmp_path / 'p.nii.gz').read_bytes()).hexdigest()
  (report,) = predict.predict(tmp_path / 'p.nii.gz', tmp_path / 'out', infection, lung)
  out = tmp_path / 'out'
  assert sorted(p.name for p in out.iterdir()) == [
      'p_infection.nii.gz', 'p_lung.nii.gz', 'p_overlay1.png', 'p_overlay2.png',
      'p_overlay3.png', 'p_severity.json']
  for name in ('p_lung.nii.gz', 'p_infection.nii.gz'):
    data, image = load(out / name)
    assert data.shape == original.shape and data.dtype == np.uint8
    np.testing.assert_array_equal(image.affine, original.affine)
    for field in ('qform_code', 'sform_code', 'pixdim', 'srow_x', 'quatern_b'):
      np.testing.assert_array_equal(image.header[field], original.header[field])
  assert hashlib.sha256((tmp_path / 'p.nii.gz').read_bytes()).hexdigest() == digest
  assert json.loads((out / 'p_severity.json').read_text()) == report
  check_report_against_masks(report, out / 'p_lung.nii.gz', out / 'p_infection.nii.gz',
                             0.7 * 0.8 * 5.0 / 1000)
  assert report['orientation'] == {'stored': 'PLS', 'source': 'header', 'axial_axis': 2}
  assert report['intensity'] == 'HU, lung window, then min-max per slice'
  assert report['warnings'] == []
  assert report['models']['infection']['run'] == 'runs/multi'
  lesions = np.asarray(nib.load(out / 'p_infection.nii.gz').dataobj)
  per_slice = np.count_nonzero(lesions, axis=(0, 1))
  ranked = [o['lesion_voxels'] for o in report['overlays']]
  assert ranked == sorted(per_slice)[::-1][:3]
  assert [per_slice[o['slice']] for o in report['overlays']] == ranked
  assert Image.open(out / 'p_overlay1.png').size[0] > 500


def test_reoriented_input_gives_the_same_masks_mapped_back(tmp_path, infection, lung):
  write_phantom(tmp_path / 'p.nii.gz')
  image = nib.load(tmp_path / 'p.nii.gz')
  predict.predict(tmp_path / 'p.nii.gz', tmp_path / 'ref', infection, lung, overlays=1)
  reference = {kind: load(tmp_path / 'ref' / f'p_{kind}.nii.gz')[0]
               for kind in ('lung', 'infection')}
  ref_report = json.loads((tmp_path / 'ref' / 'p_severity.json').read_text())
  for codes in ('LPS', 'RAI', 'SLA'):
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(image.affine),
                                           nib.orientations.axcodes2ornt(tuple(codes)))
    reoriented = image.as_reoriented(ornt)
    nib.save(reoriented, tmp_path / f'{codes}.nii.gz')
    out = tmp_path / codes
    (report,) = predict.predict(tmp_path / f'{codes}.nii.gz', out, infection, lung, overlays=1)
    for kind in ('lung', 'infection'):
      data, written = load(out / f'{codes}_{kind}.nii.gz')
      assert data.shape == reoriented.shape
      np.testing.assert_array_equal(written.affine, nib.load(tmp_path / f'{codes}.nii.gz').affine)
      back = written.as_reoriented(nib.orientations.ornt_transform(
          nib.orientations.io_orientation(written.affine),
          nib.orientations.io_orientation(image.affine)))
      np.testing.assert_array_equal(np.asarray(back.dataobj), reference[kind])
      np.testing.assert_allclose(back.affine, image.affine, atol=1e-5)
    for region in ('overall', 'right', 'left'):
      for name, numbers in ref_report[region]['lesions'].items():
        assert report[region]['lesions'][name]['voxels'] == numbers['voxels']
        assert report[region]['lesions'][name]['volume_ml'] == pytest.approx(numbers['volume_ml'])


def test_sides_follow_the_patient_not_the_storage(tmp_path, infection):
  """The phantom's image-left lung is the patient's right (radiological display)."""
  truth = write_phantom(tmp_path / 'p.nii.gz', seed=1)
  predict.predict(tmp_path / 'p.nii.gz', tmp_path / 'out', infection, ThresholdLung(), overlays=0)
  sides = load(tmp_path / 'out' / 'p_lung.nii.gz')[0]
  found = (sides > 0) & (truth > 0)
  assert found.sum() > 0.8 * (truth > 0).sum() and ((sides > 0) & (truth == 0)).sum() < 5
  np.testing.assert_array_equal(sides[found], truth[found])  # 1 right, 2 left.
  # The same array with a header that says it is mirrored: the sides swap.
  image = nib.load(tmp_path / 'p.nii.gz')
  mirrored = image.affine.copy()
  mirrored[:, 1] *= -1
  nib.save(nib.Nifti1Image(np.asarray(image.dataobj), mirrored), tmp_path / 'm.nii.gz')
  predict.predict(tmp_path / 'm.nii.gz', tmp_path / 'out', infection, ThresholdLung(), overlays=0)
  swapped = load(tmp_path / 'out' / 'm_lung.nii.gz')[0]
  np.testing.assert_array_equal(swapped[found], 3 - truth[found])


@pytest.fixture(scope='module')
def medseg_dir(tmp_path_factory):
  if helpers.has_real_data():
    return pathlib.Path(helpers.data_dir_or_phantoms(tmp_path_factory))
  return synthetic.write_medseg_folder(tmp_path_factory.mktemp('medseg'), n=5, size=64)


def medseg_slice_as_nifti(medseg_dir, k, path):
  """Slice k (1-based) of the derived 8-bit volume as a 2D NIfTI with its header (no
  orientation: qform and sform codes 0, as in the MedSeg files)."""
  volume, image = nifti.load_nifti(medseg_dir / 'derived/tr_im_uint8_from_png.nii.gz')
  nib.save(nib.Nifti1Image(volume[:, :, k - 1], None, header=image.header), path)


def test_medseg_png_and_nifti_slices_give_the_same_masks(tmp_path, medseg_dir, infection, lung):
  png = medseg_dir / 'tr_im_png/tr_im_z005.png'
  medseg_slice_as_nifti(medseg_dir, 5, tmp_path / 's.nii.gz')
  (png_report,) = predict.predict(png, tmp_path / 'png', infection, lung, overlays=1)
  (nii_report,) = predict.predict(tmp_path / 's.nii.gz', tmp_path / 'nii', infection, lung,
                                  overlays=1)
  height, width = np.asarray(Image.open(png)).shape
  for kind in ('lung', 'infection'):
    from_png = np.asarray(Image.open(tmp_path / 'png' / f'tr_im_z005_{kind}.png'))
    from_nii, image = load(tmp_path / 'nii' / f's_{kind}.nii.gz')
    assert from_png.shape == from_nii.shape == (height, width)
    np.testing.assert_array_equal(from_png, from_nii)
  assert png_report['voxel_volume_ml'] is None and nii_report['voxel_volume_ml'] == 1 / 1000
  assert png_report['orientation']['source'] == nii_report['orientation']['source'] == 'assumed'
  assert any('no orientation' in w for w in png_report['warnings'])
  assert png_report['overall'] == {**nii_report['overall'], 'lung_volume_ml': None,
                                   'lesions': png_report['overall']['lesions']}
  check_report_against_masks(png_report, tmp_path / 'png/tr_im_z005_lung.png',
                             tmp_path / 'png/tr_im_z005_infection.png', None)
  # Saved with nibabel's default affine for these files (LAS) as a real orientation, the slice
  # reads as flipped front to back; --orientation=LPS says how it is really stored.
  image = nib.load(tmp_path / 's.nii.gz')
  nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine), tmp_path / 'las.nii.gz')
  assert predict.read_scan(tmp_path / 'las.nii.gz').axcodes == ('L', 'A', 'S')
  predict.predict(tmp_path / 'las.nii.gz', tmp_path / 'las', infection, lung, overlays=0,
                  orientation=('L', 'P', 'S'))
  np.testing.assert_array_equal(load(tmp_path / 'las/las_infection.nii.gz')[0], from_nii)


def test_lung_masked_input_needs_no_lung_model(tmp_path, medseg_dir, infection):
  masked = medseg_dir / 'adnan_lungmasked_png/i005.png'
  (report,) = predict.predict(masked, tmp_path / 'out', infection, None, overlays=1)
  sides = np.asarray(Image.open(tmp_path / 'out/i005_lung.png'))
  np.testing.assert_array_equal(sides > 0, np.asarray(Image.open(masked)) > 0)
  assert set(np.unique(sides)) == {0, severity.RIGHT, severity.LEFT}
  assert report['models']['lung'] == {'source': 'lung-masked input'}
  assert 'lung-masked' in report['sides_method']


def test_directory_overwrite_and_stale_overlays(tmp_path, infection, lung):
  scans = tmp_path / 'scans'
  scans.mkdir()
  write_phantom(scans / 'a.nii.gz')
  write_phantom(scans / 'b.nii', shape=(40, 48, 2), seed=1)
  (scans / 'notes.txt').write_text('not a scan')
  (scans / '.hidden.nii.gz').write_bytes(b'')
  reports = predict.predict(scans, tmp_path / 'out', infection, lung, overlays=3)
  assert [pathlib.Path(r['input']).name for r in reports] == ['a.nii.gz', 'b.nii']
  names = sorted(p.name for p in (tmp_path / 'out').iterdir())
  assert 'b_overlay2.png' in names and 'b_overlay3.png' not in names  # Only two slices.
  before = (tmp_path / 'out/a_severity.json').read_bytes()
  with pytest.raises(InputError, match='a_lung.nii.gz: already exists'):
    predict.predict(scans, tmp_path / 'out', infection, lung, overlays=3)
  assert (tmp_path / 'out/a_severity.json').read_bytes() == before
  predict.predict(scans / 'a.nii.gz', tmp_path / 'out', infection, lung, overlays=1,
                  overwrite=True)
  names = sorted(p.name for p in (tmp_path / 'out').iterdir())
  assert 'a_overlay1.png' in names and 'a_overlay2.png' not in names
  assert not [n for n in names if n.startswith('.')]  # No temporary files left.


def test_an_output_never_replaces_an_input(tmp_path, infection, lung):
  write_phantom(tmp_path / 'a.nii.gz', )
  write_phantom(tmp_path / 'a_lung.nii.gz', )
  with pytest.raises(InputError, match='a_lung.nii.gz: the output would replace an input'):
    predict.predict(tmp_path, tmp_path, infection, lung, overwrite=True)


def test_no_partial_output_when_a_later_scan_is_bad(tmp_path, infection, lung):
  scans = tmp_path / 'scans'
  scans.mkdir()
  write_phantom(scans / 'a.nii.gz', )
  (scans / 'b.nii.gz').write_bytes(gzip.compress(b'\0' * 400))
  with pytest.raises(InputError, match='b.nii.gz: not a single-file NIfTI'):
    predict.predict(scans, tmp_path / 'out', infection, lung)
  assert not (tmp_path / 'out').exists()
  (tmp_path / 'kept').mkdir()
  (tmp_path / 'kept/other.txt').write_text('x')
  with pytest.raises(InputError):
    predict.predict(scans, tmp_path / 'kept', infection, lung)
  assert [p.name for p in (tmp_path / 'kept').iterdir()] == ['other.txt']


# --- Bad input through the command line (in-process) ------------------------------------------


@pytest.fixture
def cli(monkeypatch, capsys, infection, lung):
  """Runs predict.main with the fake models in place of restored runs."""
  def load_model(run_dir, role, checkpoint=None, batch_size=16):
    del checkpoint, batch_size
    if not pathlib.Path(run_dir).is_dir():
      raise InputError(f'{run_dir}: no such run directory (--{role}_run)')
    return {'infection': infection, 'lung': lung}[role]

  monkeypatch.setattr(predict, 'load_model', load_model)

  def run(*args):
    try:
      status = predict.main(list(args))
    except SystemExit as e:  # Usage errors, from argparse.
      status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err

  return run


def _nifti_bytes(data, affine=None):
  return nib.Nifti1Image(data, np.eye(4) if affine is None else affine).to_bytes()


def _write(path, blob):
  path.write_bytes(blob)
  return path


def _bad_inputs(tmp_path):
  """{case: (path of the input, the problem the message must name)}."""
  good = np.random.default_rng(0).normal(size=(32, 32, 3)).astype(np.float32)
  gz = gzip.compress(_nifti_bytes(good))
  corrupt = bytearray(gz)
  corrupt[len(gz) // 2] ^= 0xFF
  nan, inf = good.copy(), good.copy()
  nan[3, 4, 1], inf[0, 0, 0] = np.nan, -np.inf
  empty_dir = tmp_path / 'empty'
  empty_dir.mkdir()
  text_dir = tmp_path / 'texts'
  text_dir.mkdir()
  (text_dir / 'a.txt').write_text('x')
  rgb = np.zeros((32, 32, 2), dtype=[('R', 'u1'), ('G', 'u1'), ('B', 'u1')])
  coronal = np.diag([1.0, 1.0, 1.0, 1.0])[:, [0, 2, 1, 3]]  # Axis 1 is superior: coronal.
  huge = nib.Nifti1Header()
  huge.set_data_shape((4000, 4000, 1))
  many = nib.Nifti1Header()
  many.set_data_shape((2048, 2048, 300))
  negative = nib.Nifti1Header()
  negative.set_data_shape((32, 32, 3))
  negative['dim'][2] = -32
  os.mkfifo(tmp_path / 'fifo.nii')
  cases = [
      ('missing file', tmp_path / 'absent.nii.gz', 'no such file or directory'),
      ('directory without scans', empty_dir, 'no scans in this directory'),
      ('directory of other files', text_dir, 'no scans in this directory'),
      ('unknown type', _write(tmp_path / 'scan.dcm', b'DICM' * 100), 'not a NIfTI or image file'),
      ('text as NIfTI', _write(tmp_path / 't.nii', b'hello\n' * 100), 'not a single-file NIfTI'),
      ('text as PNG', _write(tmp_path / 't.png', b'hello\n' * 100), 'not an image file'),
      ('truncated gzip', _write(tmp_path / 'half.nii.gz', gz[:len(gz) // 2]), 'truncated gzip'),
      ('corrupt gzip', _write(tmp_path / 'bad.nii.gz', bytes(corrupt)), 'corrupt gzip'),
      ('zero-size file', _write(tmp_path / 'zero.nii.gz', b''), 'empty file'),
      ('truncated data', _write(tmp_path / 'short.nii', _nifti_bytes(good)[:2000]),
       'data truncated'),
      ('4D', _write(tmp_path / 'v4.nii', _nifti_bytes(np.zeros((32, 32, 3, 2), np.float32))),
       '4D data'),
      ('1D', _write(tmp_path / 'v1.nii', _nifti_bytes(np.arange(50, dtype=np.float32))), '1D data'),
      ('empty dimension',
       _write(tmp_path / 'v0.nii', _nifti_bytes(np.zeros((32, 0, 3), np.float32))), 'length 0'),
      ('NaN', _write(tmp_path / 'nan.nii.gz', _nifti_bytes(nan)), 'NaN or infinite'),
      ('Inf', _write(tmp_path / 'inf.nii.gz', _nifti_bytes(inf)), 'NaN or infinite'),
      ('constant',
       _write(tmp_path / 'c.nii.gz', _nifti_bytes(np.full((32, 32, 3), -1000, np.int16))),
       'constant image'),
      ('absurd size', _write(tmp_path / 'huge.nii', huge.binaryblock + b'\0' * 4),
       'implausible size'),
      ('absurd voxel count', _write(tmp_path / 'many.nii', many.binaryblock + b'\0' * 4),
       'implausible size'),
      ('negative dimension', _write(tmp_path / 'neg.nii', negative.binaryblock + b'\0' * 4),
       'negative dimension'),
      ('not a regular file', tmp_path / 'fifo.nii', 'not a regular file'),
      ('tiny slices', _write(tmp_path / 'tiny.nii', _nifti_bytes(np.eye(4, dtype=np.float32))),
       'axial slices of 4x4'),
      ('coronal stack', _write(tmp_path / 'cor.nii', _nifti_bytes(good, coronal)),
       'axial slices of 32x3'),
      ('coronal 2D slice', _write(tmp_path / 'cor2.nii', _nifti_bytes(good[:, :, 0], coronal)),
       'not an axial slice'),
      ('colour NIfTI', _write(tmp_path / 'rgb.nii', _nifti_bytes(rgb)), 'single-channel'),
  ]
  return {case: (path, problem) for case, path, problem in cases}


BAD_INPUTS = ('missing file', 'directory without scans', 'directory of other files',
              'unknown type', 'text as NIfTI', 'text as PNG', 'truncated gzip', 'corrupt gzip',
              'zero-size file', 'truncated data', '4D', '1D', 'empty dimension', 'NaN', 'Inf',
              'constant', 'absurd size', 'absurd voxel count', 'negative dimension',
              'not a regular file', 'tiny slices', 'coronal stack', 'coronal 2D slice',
              'colour NIfTI')


@pytest.mark.parametrize('case', BAD_INPUTS)
def test_bad_input_is_one_line_with_status_2_and_no_output(tmp_path, cli, case):
  cases = _bad_inputs(tmp_path)
  assert set(cases) == set(BAD_INPUTS)
  path, problem = cases[case]
  out = tmp_path / 'out'
  status, stdout, stderr = cli(f'--input={path}', f'--output={out}',
                               f'--infection_run={tmp_path}', f'--lung_run={tmp_path}')
  assert status == 2 and stdout == ''
  assert re.fullmatch(rf'error: {re.escape(str(path))}: [^\n]*{problem}[^\n]*\n', stderr), stderr
  assert not out.exists()


def test_unreadable_input_and_unwritable_output(tmp_path, cli, monkeypatch):
  """Tests run as root, which reads anything: the permission errors are simulated."""
  write_phantom(tmp_path / 'p.nii.gz', )
  runs = f'--infection_run={tmp_path}', f'--lung_run={tmp_path}'
  read_bytes = pathlib.Path.read_bytes

  def no_permission(self):
    if self.name == 'p.nii.gz':
      raise PermissionError(13, 'Permission denied')
    return read_bytes(self)

  monkeypatch.setattr(pathlib.Path, 'read_bytes', no_permission)
  status, _, stderr = cli(f'--input={tmp_path / "p.nii.gz"}', f'--output={tmp_path / "o"}', *runs)
  assert status == 2 and stderr == f'error: {tmp_path / "p.nii.gz"}: permission denied\n'
  assert not (tmp_path / 'o').exists()
  monkeypatch.setattr(pathlib.Path, 'read_bytes', read_bytes)

  def no_mkdtemp(**kwargs):
    raise PermissionError(13, 'Permission denied')

  monkeypatch.setattr(predict.tempfile, 'mkdtemp', no_mkdtemp)
  status, _, stderr = cli(f'--input={tmp_path / "p.nii.gz"}', f'--output={tmp_path / "o"}', *runs)
  assert status == 2 and stderr == f'error: {tmp_path / "o"}: cannot write (Permission denied)\n'
  assert not (tmp_path / 'o').exists()


def test_bad_output_runs_and_flags(tmp_path, cli):
  write_phantom(tmp_path / 'p.nii.gz', )
  scan = f'--input={tmp_path / "p.nii.gz"}'
  runs = f'--infection_run={tmp_path}', f'--lung_run={tmp_path}'
  (tmp_path / 'file').write_text('x')
  cases = [
      ((scan, f'--output={tmp_path / "missing/out"}', *runs),
       f'{tmp_path / "missing/out"}: its parent directory {tmp_path / "missing"} does not exist'),
      ((scan, f'--output={tmp_path / "file"}', *runs), f'{tmp_path / "file"}: exists and is not'),
      ((scan, f'--output={tmp_path / "o"}', f'--infection_run={tmp_path / "nope"}', runs[1]),
       f'{tmp_path / "nope"}: no such run directory (--infection_run)'),
      ((scan, f'--output={tmp_path / "o"}', runs[0]), '--lung_run missing'),
      ((scan, f'--output={tmp_path / "o"}', *runs, '--lung_masked'),
       '--lung_run and --lung_masked'),
      ((scan, f'--output={tmp_path / "o"}', *runs, '--batch_size=0'), 'must be at least 1'),
      ((scan, f'--output={tmp_path / "o"}', *runs, '--orientation=LLS'), 'not three axis codes'),
      ((scan, f'--output={tmp_path / "o"}', *runs, '--checkpoint=newest'), "'best', 'last' or"),
      ((f'--output={tmp_path / "o"}', *runs), 'required: --input'),
  ]
  for args, message in cases:
    status, stdout, stderr = cli(*args)
    assert status == 2 and stdout == '', args
    assert stderr.startswith('error: ') and stderr.count('\n') == 1 and message in stderr, stderr
  assert not (tmp_path / 'o').exists()


# --- End to end: trained runs, the command line --------------------------------------------


def _tiny_config(family, data_dir):
  """test_train's tiny config at SIZE for one epoch, with a tiny HighResNet as well."""
  config = tiny_config(data_dir, family, size=SIZE)
  config.train.epochs = 1
  config.train.log_every_steps = 9
  if config.model.name == 'highresnet':
    config.model.features, config.model.blocks_per_stage = (4, 8, 8), 1
    config.model.head_features = 8
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """Workdirs of a tiny lung run and a tiny multi-class infection run."""
  data_dir = helpers.data_dir_or_phantoms(tmp_path_factory)
  root = tmp_path_factory.mktemp('runs')
  for name, family in (('lung', lung_resnet), ('multi', unet_multi)):
    train.train_and_evaluate(_tiny_config(family, data_dir), str(root / name))
  return {'lung': root / 'lung', 'multi': root / 'multi', 'data': pathlib.Path(data_dir)}


def _subprocess(*args):
  return subprocess.run([sys.executable, '-m', 'covseg_jax.predict', *args], cwd=_REPO,
                        capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_cli_predicts_a_medseg_slice(tmp_path, trained):
  png = trained['data'] / 'tr_im_png/tr_im_z005.png'
  result = _subprocess(f'--input={png}', f'--output={tmp_path / "out"}',
                       f'--infection_run={trained["multi"]}', f'--lung_run={trained["lung"]}')
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith(f'{png}: lung ')
  report = json.loads((tmp_path / 'out/tr_im_z005_severity.json').read_text())
  assert report['models']['infection']['task'] == 'multi'
  assert report['models']['infection']['tta_flip'] is False
  # By default the checkpoint the run's test metrics used (config.eval.checkpoint: 'last').
  assert report['models']['lung']['checkpoint'] == 'last' and report['models']['lung']['step'] == 9
  lung_mask = np.asarray(Image.open(tmp_path / 'out/tr_im_z005_lung.png'))
  assert lung_mask.shape == np.asarray(Image.open(png)).shape
  check_report_against_masks(report, tmp_path / 'out/tr_im_z005_lung.png',
                             tmp_path / 'out/tr_im_z005_infection.png', None)


@pytest.mark.slow
def test_cli_predicts_a_phantom_volume(tmp_path, trained, capsys):
  write_phantom(tmp_path / 'p.nii.gz', shape=(48, 40, 6))
  runs = f'--infection_run={trained["multi"]}', f'--lung_run={trained["lung"]}'
  assert predict.main([f'--input={tmp_path / "p.nii.gz"}', f'--output={tmp_path / "out"}',
                       *runs, '--batch_size=4', '--checkpoint=last']) == 0
  original = nib.load(tmp_path / 'p.nii.gz')
  for kind in ('lung', 'infection'):
    data, image = load(tmp_path / f'out/p_{kind}.nii.gz')
    assert data.shape == original.shape
    np.testing.assert_array_equal(image.affine, original.affine)
  report = json.loads((tmp_path / 'out/p_severity.json').read_text())
  check_report_against_masks(report, tmp_path / 'out/p_lung.nii.gz',
                             tmp_path / 'out/p_infection.nii.gz', 0.7 * 0.8 * 5.0 / 1000)
  # A header without orientation (spacing only): --orientation=PLS says how the arrays are
  # stored, and gives the same masks.
  volume = load(tmp_path / 'p.nii.gz')[0]
  nib.save(nib.Nifti1Image(volume, np.diag([0.7, 0.8, 5.0, 1.0])), tmp_path / 'q.nii.gz')
  assert predict.main([f'--input={tmp_path / "q.nii.gz"}', f'--output={tmp_path / "out"}',
                       *runs, '--checkpoint=last', '--orientation=PLS']) == 0
  for kind in ('lung', 'infection'):
    np.testing.assert_array_equal(load(tmp_path / f'out/q_{kind}.nii.gz')[0],
                                  load(tmp_path / f'out/p_{kind}.nii.gz')[0])
  assert capsys.readouterr().err == ''


@pytest.mark.slow
def test_cli_rejects_wrong_missing_and_damaged_runs(tmp_path, trained, capsys):
  write_phantom(tmp_path / 'p.nii.gz')
  no_checkpoint = tmp_path / 'no_checkpoint'
  no_checkpoint.mkdir()
  for name in ('config.json', 'normalization.npz'):
    (no_checkpoint / name).write_bytes((trained['lung'] / name).read_bytes())
  damaged = tmp_path / 'damaged'
  shutil.copytree(trained['lung'], damaged)
  for path in (damaged / 'checkpoints_best').rglob('*'):
    if path.is_file() and path.parent.name == 'd':  # The array data files.
      path.write_bytes(bytes(b ^ 0x5A for b in path.read_bytes()))
  cases = [
      (trained['lung'], trained['lung'], f"{trained['lung']}: a 'lung' run, but --infection_run"),
      (trained['multi'], trained['multi'], f"{trained['multi']}: a 'multi' run, but --lung_run"),
      (trained['multi'], tmp_path, f'{tmp_path}: no config.json'),
      (trained['multi'], no_checkpoint, f'{no_checkpoint}: no checkpoint'),
      (trained['multi'], damaged, f'{damaged / "checkpoints_best"}: checkpoint(s) [9] damaged'),
  ]
  for infection_run, lung_run, message in cases:
    status = predict.main([f'--input={tmp_path / "p.nii.gz"}', f'--output={tmp_path / "out"}',
                           f'--infection_run={infection_run}', f'--lung_run={lung_run}',
                           '--checkpoint=best'])
    stderr = capsys.readouterr().err
    assert status == 2 and stderr.startswith(f'error: {message}') and stderr.count('\n') == 1, (
        message, stderr)
    assert not (tmp_path / 'out').exists()
  status = predict.main([f'--input={tmp_path / "p.nii.gz"}', f'--output={tmp_path / "out"}',
                         f'--infection_run={trained["multi"]}', f'--lung_run={trained["lung"]}',
                         '--checkpoint=999'])
  assert status == 2 and 'no checkpoint at step 999' in capsys.readouterr().err
  # In a process of its own (pytest swaps sys.unraisablehook around each test), the abandoned
  # reads of the damaged checkpoint print no traceback: the error is the last line, and the
  # only one besides the warnings about the damaged checkpoint.
  result = _subprocess(f'--input={tmp_path / "p.nii.gz"}', f'--output={tmp_path / "out"}',
                       f'--infection_run={trained["multi"]}', f'--lung_run={damaged}',
                       '--checkpoint=best')
  lines = result.stderr.splitlines()
  assert result.returncode == 2 and result.stdout == '', result.stderr
  assert lines[-1] == f'error: {damaged / "checkpoints_best"}: checkpoint(s) [9] damaged', lines
  assert all('is damaged' in line for line in lines[:-1]), lines
  assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_cli_bad_input_in_a_subprocess(tmp_path, trained):
  volume = np.random.default_rng(0).normal(size=(32, 32, 3)).astype(np.float32)
  volume[1, 2, 0] = np.nan
  nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / 'nan.nii.gz')
  result = _subprocess(f'--input={tmp_path / "nan.nii.gz"}', f'--output={tmp_path / "out"}',
                       f'--infection_run={trained["multi"]}', f'--lung_run={trained["lung"]}')
  assert result.returncode == 2 and result.stdout == ''
  assert result.stderr == f'error: {tmp_path / "nan.nii.gz"}: contains NaN or infinite values\n'
  assert not (tmp_path / 'out').exists()


def models_with_and_without(run, role, field, value=True):
  """predict.Models of `run` with config.eval.<field> set to `value` and as it is (both say so
  in describe())."""
  config = run.config.copy_and_resolve_references()
  config.eval[field] = value
  model = predict.Model(dataclasses.replace(run, config=config), role, 'runs/x', batch_size=2)
  plain = predict.Model(run, role, 'runs/x', batch_size=2)
  assert model.describe()[field] == value and plain.describe()[field] == run.config.eval[field]
  return model, plain


class Brighter(nn.Module):
  """A stand-in network that labels lung where the min-max normalised input exceeds 0.5."""

  @nn.compact
  def __call__(self, x, train=False):
    return jnp.concatenate([0.5 - x, x - 0.5], axis=-1)


def test_hole_filling_from_the_run_config():
  """A lung run trained with eval.fill_holes predicts lungs with their holes filled."""
  run = dataclasses.replace(fake_run(lung_resnet, method='minmax'), model=Brighter(),
                            variables={})
  model, plain = models_with_and_without(run, 'lung', 'fill_holes')
  rings = np.full((2, 40, 40), 20, np.uint8)
  rings[:, 6:34, 6:34] = 200
  rings[:, 15:25, 15:25] = 20
  expected = (rings == 200).astype(np.uint8)
  np.testing.assert_array_equal(plain.segment(rings), expected)
  expected[:, 15:25, 15:25] = 1
  np.testing.assert_array_equal(model.segment(rings), expected)


def test_foreground_threshold_from_the_run_config():
  """A lung run with eval.foreground_threshold t labels lung where its softmax exceeds t: for
  Brighter's logits, where the min-max normalised input exceeds 0.5 + log(t / (1 - t)) / 2."""
  run = dataclasses.replace(fake_run(lung_resnet, method='minmax'), model=Brighter(),
                            variables={})
  model, plain = models_with_and_without(run, 'lung', 'foreground_threshold', 0.6)
  ramp = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (2, 40, 1))
  normalised = ramp / 255.0
  edge = 0.5 + np.log(0.6 / 0.4) / 2  # 0.70
  away = np.abs(normalised - edge) > 0.03  # Resizing blurs the edge itself.
  labels = model.segment(ramp)
  np.testing.assert_array_equal(labels[away], (normalised > edge)[away])
  np.testing.assert_array_equal(plain.segment(ramp)[np.abs(normalised - 0.5) > 0.03],
                                (normalised > 0.5)[np.abs(normalised - 0.5) > 0.03])
  assert 0 < labels.sum() < plain.segment(ramp).sum()


def test_logit_offsets_from_the_run_config():
  """A multi-class run with eval.logit_offsets labels each pixel with the argmax of its logits
  plus them: an offset of 50 on consolidation makes every pixel consolidation."""
  run = fake_run(unet_multi)
  config = run.config.copy_and_resolve_references()
  config.eval.logit_offsets = (0.0, 0.0, 50.0, 0.0)
  model = predict.Model(dataclasses.replace(run, config=config), 'infection', 'runs/x',
                        batch_size=2)
  plain = predict.Model(run, 'infection', 'runs/x', batch_size=2)
  slices = np.random.default_rng(4).integers(0, 256, (2, 40, 40)).astype(np.uint8)
  assert np.all(model.segment(slices) == 2) and not np.all(plain.segment(slices) == 2)
  assert model.describe()['logit_offsets'] == [0.0, 0.0, 50.0, 0.0]
  assert plain.describe()['logit_offsets'] == []


def test_logit_offsets_that_do_not_fit_the_run_are_refused_in_one_line():
  run = fake_run(unet_multi)
  config = run.config.copy_and_resolve_references()
  config.eval.logit_offsets = (0.0, -1.0)
  with pytest.raises(InputError, match=r"^runs/x: eval.logit_offsets=\(0.0, -1.0\) must be 4"):
    predict.Model(dataclasses.replace(run, config=config), 'infection', 'runs/x', batch_size=2)


def test_flip_tta_from_the_run_config():
  """A run trained with eval.tta_flip predicts with it: mirrored slices give mirrored masks."""
  mean_image = np.random.default_rng(0).uniform(20, 120, (SIZE, SIZE)).astype(np.float32)
  run = fake_run(unet_multi, mean_image=(mean_image + mean_image[::-1]) / 2)  # Mirror-symmetric.
  model, plain = models_with_and_without(run, 'infection', 'tta_flip')
  slices = np.random.default_rng(3).integers(0, 256, (2, 40, 40)).astype(np.uint8)
  masks = model.segment(slices)
  assert len(np.unique(masks)) > 1
  assert np.mean(model.segment(slices[:, ::-1]) != masks[:, ::-1]) < 1e-3
  assert np.mean(plain.segment(slices[:, ::-1]) != plain.segment(slices)[:, ::-1]) > 1e-2
