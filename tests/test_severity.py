"""Severity numbers against hand counts, and the split of a lung mask into right and left."""
import numpy as np
import pytest

from covseg_jax import severity
from covseg_jax.data import preprocess, synthetic

R, L = severity.RIGHT, severity.LEFT
MULTI = preprocess.CLASS_NAMES['multi']


def _hand_volume():
  """(infection, sides): right lung 12 voxels, left 20, lesions placed by hand."""
  sides = np.zeros((2, 6, 8), np.uint8)
  sides[0, 0:3, 0:4] = R  # 12 voxels.
  sides[1, 2:6, 3:8] = L  # 20 voxels.
  infection = np.zeros_like(sides)
  infection[0, 0, 0:3] = 1  # 3 ground glass, right.
  infection[0, 1, 0] = 2  # 1 consolidation, right.
  infection[1, 2, 3:7] = 2  # 4 consolidation, left.
  infection[1, 5, 7] = 3  # 1 effusion, left.
  infection[0, 5, 0] = 1  # Outside the lung: not counted.
  return infection, sides


def test_numbers_match_hand_counts():
  infection, sides = _hand_volume()
  voxel_ml = 0.7 * 0.8 * 5.0 / 1000  # 0.7 x 0.8 mm pixels, 5 mm slices.
  numbers = severity.severity(infection, sides, MULTI, voxel_ml)
  expected = {  # Region: (lung voxels, {class: lesion voxels}).
      'overall': (32, {'ground-glass opacity': 3, 'consolidation': 5, 'pleural effusion': 1,
                       'any lesion': 9}),
      'right': (12, {'ground-glass opacity': 3, 'consolidation': 1, 'pleural effusion': 0,
                     'any lesion': 4}),
      'left': (20, {'ground-glass opacity': 0, 'consolidation': 4, 'pleural effusion': 1,
                    'any lesion': 5}),
  }
  assert set(numbers) == set(expected)
  for region, (lung_voxels, lesions) in expected.items():
    got = numbers[region]
    assert got['lung_voxels'] == lung_voxels
    assert got['lung_volume_ml'] == pytest.approx(lung_voxels * 0.0028)
    assert set(got['lesions']) == set(lesions)
    for name, voxels in lesions.items():
      assert got['lesions'][name]['voxels'] == voxels
      assert got['lesions'][name]['volume_ml'] == pytest.approx(voxels * 0.0028)
      assert got['lesions'][name]['percent_of_lung'] == pytest.approx(100 * voxels / lung_voxels)
  assert numbers['overall']['lung_volume_ml'] == pytest.approx(0.0896)  # 32 x 2.8 mm^3.


def test_unknown_voxel_size_and_empty_lung():
  infection, sides = _hand_volume()
  numbers = severity.severity(infection, sides, MULTI, None)
  assert numbers['overall']['lung_volume_ml'] is None
  assert numbers['overall']['lesions']['any lesion']['volume_ml'] is None
  assert numbers['overall']['lesions']['any lesion']['percent_of_lung'] == pytest.approx(900 / 32)
  empty = severity.severity(infection, np.zeros_like(sides), MULTI, 0.001)
  assert empty['overall']['lung_voxels'] == 0 and empty['overall']['lung_volume_ml'] == 0.0
  assert empty['left']['lesions']['any lesion'] == {'voxels': 0, 'volume_ml': 0.0,
                                                    'percent_of_lung': None}


def test_binary_classes():
  infection, sides = _hand_volume()
  numbers = severity.severity((infection > 0).astype(np.uint8), sides,
                              preprocess.CLASS_NAMES['binary'], 1.0)
  assert set(numbers['overall']['lesions']) == {'infected', 'any lesion'}
  assert numbers['right']['lesions']['infected']['voxels'] == 4
  assert numbers['overall']['lesions']['infected'] == numbers['overall']['lesions']['any lesion']


def test_rejects_labels_beyond_the_classes():
  infection, sides = _hand_volume()
  with pytest.raises(ValueError, match='0..1'):
    severity.severity(infection, sides, preprocess.CLASS_NAMES['binary'], 1.0)
  with pytest.raises(ValueError, match='differ in shape'):
    severity.severity(infection[0], sides, MULTI, 1.0)


def test_otsu_separates_two_modes():
  rng = np.random.default_rng(0)
  dark, bright = rng.normal(30, 5, 5000), rng.normal(180, 10, 2000)
  threshold = severity.otsu_threshold(np.concatenate([dark, bright]))
  assert (dark < threshold).mean() > 0.99 and (bright > threshold).all()
  assert severity.otsu_threshold(np.full(10, 3.0)) == 3.0


def test_midlines_split_the_mass_in_half():
  body = np.zeros((3, 10, 60), bool)
  body[0, :, 10:50] = True  # Columns 10..49: 20 on each side of 29.5.
  body[1, 2:5, 20:23] = True  # Columns 20..22: centre 21.
  # Slice 2 has no body: it takes the whole scan's midline. Column counts 10 (10..49) plus 3
  # (20..22), 409 in all: 199 lie in columns up to 28, and 5.5 of column 29's 10 reach half.
  midlines = severity.body_midlines(body, axis=2)
  np.testing.assert_allclose(midlines, [29.5, 21.0, 28.5 + 5.5 / 10])
  np.testing.assert_allclose(severity.body_midlines(np.zeros((2, 4, 9), bool), axis=2), 4.0)
  np.testing.assert_allclose(severity.extent_midlines(body, axis=2), [29.5, 21.0, 25.25])


def test_sides_of_the_phantom_lungs():
  """The phantom's lungs are separate: each goes wholly to its side of the body midline."""
  volume, _, truth, _ = synthetic.phantom_volume((48, 56, 8), seed=3)
  volume, truth = np.moveaxis(volume, 2, 0), np.moveaxis(truth, 2, 0)  # (Z, H, W)
  body = volume > -500
  # Phantom side 1 is at low columns (image left): the patient's right in radiological display.
  sides = severity.assign_sides(truth > 0, severity.body_midlines(body, axis=2), axis=2)
  np.testing.assert_array_equal(sides, truth)
  flipped = severity.assign_sides(truth > 0, severity.body_midlines(body, axis=2), axis=2,
                                  right_is_low=False)
  np.testing.assert_array_equal(flipped, np.where(truth > 0, 3 - truth, 0))


def test_touching_lungs_are_cut_and_a_bulging_lung_stays_whole():
  lung = np.zeros((2, 20, 40), bool)
  lung[0, 5:15, 4:18] = lung[0, 5:15, 22:36] = True
  lung[0, 9:11, 18:22] = True  # A bridge: one region across the midline at 20.
  lung[1, 5:15, 4:23] = True  # 16 of 19 columns (84 %) right of 20: wholly right.
  lung[1, 5:15, 30:36] = True
  sides = severity.assign_sides(lung, np.full(2, 19.5), axis=2)
  assert set(np.unique(sides[0, :, :20][lung[0, :, :20]])) == {R}
  assert set(np.unique(sides[0, :, 20:][lung[0, :, 20:]])) == {L}
  assert (sides[1, 5:15, 4:23] == R).all() and (sides[1, 5:15, 30:36] == L).all()
  assert not sides[~lung].any()


def test_a_single_lung_keeps_its_side():
  lung = np.zeros((1, 20, 40), bool)
  lung[0, 4:16, 24:36] = True  # Only the left lung was found.
  sides = severity.assign_sides(lung, np.array([19.5]), axis=2)
  assert (sides[lung] == L).all()
