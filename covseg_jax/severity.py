"""Severity numbers from lung and lesion masks: volumes in mL and percentages of lung, per side.

The lung model gives one lung class, so the two sides are separated here (`assign_sides`):

1. The body midline of each axial slice is the median position, along the patient's
   right-left axis, of the body voxels (brighter than the Otsu threshold of the whole scan:
   soft tissue and bone, not air or lung); a slice without body voxels uses the scan's.
2. Each connected lung region of a slice (4-connected) goes wholly to the side of the midline
   that holds at least 80 % of it, so a lung that bulges past the midline stays one lung and
   a lung missing from the mask leaves the other side empty.
3. A region with less than 80 % on either side (both lungs touching at the anterior junction)
   is cut at the midline.

For lung-masked inputs, where the body is not visible, the midline of a slice is the centre of
the lungs' right-left extent instead (`extent_midlines`).

Percentages use voxel counts, so they do not depend on the voxel size; volumes are counts times
the voxel volume. A percentage of an empty lung is undefined and reported as None (null).
"""
import numpy as np
from scipy import ndimage

RIGHT, LEFT = 1, 2
SIDE_NAMES = {RIGHT: 'right', LEFT: 'left'}
ANY_LESION = 'any lesion'
# A lung region with at least this fraction on one side of the midline belongs to that side.
WHOLE_REGION_FRACTION = 0.8
_ASSIGNMENT = (f'each 4-connected lung region of an axial slice goes to the side of the midline '
               f'that holds at least {WHOLE_REGION_FRACTION:.0%} of it; other regions are cut '
               'at the midline')
BODY_METHOD = ('midline: median right-left position of the body (voxels above the Otsu '
               'threshold); ' + _ASSIGNMENT)
EXTENT_METHOD = ("midline: centre of the lungs' right-left extent (lung-masked input); "
                 + _ASSIGNMENT)


def otsu_threshold(values, bins=256):
  """The threshold between the two classes of `values` with the largest between-class variance."""
  values = np.asarray(values, np.float64).ravel()
  low, high = values.min(), values.max()
  if low == high:
    return float(low)
  counts, edges = np.histogram(values, bins=bins, range=(low, high))
  centres = (edges[:-1] + edges[1:]) / 2
  weight = np.cumsum(counts)  # Voxels at or below each bin.
  mass = np.cumsum(counts * centres)
  total, total_mass = weight[-1], mass[-1]
  upper = total - weight
  with np.errstate(divide='ignore', invalid='ignore'):
    between = (total_mass * weight - total * mass) ** 2 / (weight * upper)
  between[(weight == 0) | (upper == 0)] = -1.0
  return float(edges[np.argmax(between) + 1])


def _median_positions(counts):
  """Continuous median position of each row of `counts` (histograms over positions 0..n-1).

  Position i covers [i - 0.5, i + 0.5); the median is where half the mass lies on each side
  (NaN for an empty row).
  """
  counts = np.asarray(counts, np.float64)
  cumulative = np.cumsum(counts, axis=-1)
  half = cumulative[..., -1:] / 2
  index = np.minimum(np.sum(cumulative < half, axis=-1, keepdims=True), counts.shape[-1] - 1)
  before = np.take_along_axis(cumulative - counts, index, axis=-1)
  inside = np.take_along_axis(counts, index, axis=-1)
  with np.errstate(divide='ignore', invalid='ignore'):
    median = index - 0.5 + (half - before) / inside
  return np.where(half > 0, median, np.nan)[..., 0]


def body_midlines(body, axis):
  """Per-slice midline positions along `axis` of a (Z, H, W) body mask.

  Args:
    body: (Z, H, W) boolean body mask, axial slices first.
    axis: 1 or 2, the axis that runs between the patient's right and left.

  Returns:
    (Z,) float64 positions in voxel coordinates; slices without body take the whole
    scan's midline, and a scan without any body its geometric centre.
  """
  other = 3 - axis
  counts = np.sum(body, axis=other, dtype=np.int64)  # (Z, length along axis)
  midlines = _median_positions(counts)
  overall = _median_positions(counts.sum(axis=0))
  if np.isnan(overall):
    overall = (body.shape[axis] - 1) / 2
  return np.where(np.isnan(midlines), overall, midlines)


def extent_midlines(mask, axis):
  """Per-slice centres of the extent of a (Z, H, W) mask along `axis`, like `body_midlines`."""
  present = np.any(mask, axis=3 - axis)  # (Z, length along axis)
  length = present.shape[1]
  first = np.argmax(present, axis=1)
  last = length - 1 - np.argmax(present[:, ::-1], axis=1)
  centres = np.where(present.any(axis=1), (first + last) / 2, np.nan)
  if np.isnan(centres).all():
    return np.full(len(centres), (length - 1) / 2)
  return np.where(np.isnan(centres), np.nanmedian(centres), centres)


def assign_sides(lung, midlines, axis, right_is_low=True):
  """Splits a (Z, H, W) lung mask into RIGHT and LEFT (see the module docstring).

  Args:
    lung: (Z, H, W) lung mask (nonzero = lung).
    midlines: (Z,) midline positions along `axis`, e.g. from `body_midlines`.
    axis: 1 or 2, the axis that runs between the patient's right and left.
    right_is_low: whether the patient's right lies at low indices along `axis`.

  Returns:
    (Z, H, W) uint8: 0 outside the lung, RIGHT or LEFT inside.
  """
  lung = np.asarray(lung) > 0
  positions = np.arange(lung.shape[axis], dtype=np.float64)
  shape = [1, 1, 1]
  shape[axis] = -1
  low_side = positions.reshape(shape) < np.asarray(midlines, np.float64).reshape(-1, 1, 1)
  on_right = low_side if right_is_low else ~low_side
  # Labels regions within each slice only: no connections between slices.
  structure = np.zeros((3, 3, 3), bool)
  structure[1] = ndimage.generate_binary_structure(2, 1)
  regions, num_regions = ndimage.label(lung, structure=structure)
  flat = regions.ravel()
  size = np.bincount(flat, minlength=num_regions + 1)
  right = np.bincount(flat, weights=np.broadcast_to(on_right, lung.shape).ravel(),
                      minlength=num_regions + 1)
  fraction = right / np.maximum(size, 1)
  region_side = np.where(fraction >= WHOLE_REGION_FRACTION, RIGHT,
                         np.where(fraction <= 1 - WHOLE_REGION_FRACTION, LEFT, 0))
  region_side[0] = 0
  sides = region_side[regions].astype(np.uint8)
  cut = lung & (sides == 0)
  sides[cut] = np.where(np.broadcast_to(on_right, lung.shape)[cut], RIGHT, LEFT)
  return sides


def _volume(voxels, voxel_volume_ml):
  return None if voxel_volume_ml is None else voxels * voxel_volume_ml


def _region_numbers(lesions, lung_voxels, lesion_names, voxel_volume_ml):
  """Lung volume and each lesion class's volume and percentage of lung in one region."""
  counts = np.bincount(lesions, minlength=len(lesion_names) + 1)
  lesion_counts = list(counts[1:len(lesion_names) + 1]) + [counts[1:].sum()]
  numbers = {}
  for name, voxels in zip(list(lesion_names) + [ANY_LESION], lesion_counts):
    voxels = int(voxels)
    numbers[name] = {
        'voxels': voxels,
        'volume_ml': _volume(voxels, voxel_volume_ml),
        'percent_of_lung': 100.0 * voxels / lung_voxels if lung_voxels else None,
    }
  return {'lung_voxels': int(lung_voxels), 'lung_volume_ml': _volume(lung_voxels, voxel_volume_ml),
          'lesions': numbers}


def severity(infection, sides, class_names, voxel_volume_ml):
  """The severity numbers, overall and for each side.

  Args:
    infection: integer labels, 0 for no lesion and c for class_names[c].
    sides: same shape, 0 outside the lung, RIGHT or LEFT inside.
    class_names: names of the infection classes, class 0 first (no lesion).
    voxel_volume_ml: the volume of one voxel in mL, or None when the voxel size is
      unknown (volumes are then None; voxel counts and percentages are not affected).

  Returns:
    {'overall': ..., 'right': ..., 'left': ...}, each {'lung_voxels', 'lung_volume_ml',
    'lesions': {class name or 'any lesion': {'voxels', 'volume_ml', 'percent_of_lung'}}}.
    Lesion voxels outside the lung are not counted.
  """
  infection = np.asarray(infection)
  sides = np.asarray(sides)
  if infection.shape != sides.shape:
    raise ValueError(f'infection {infection.shape} and sides {sides.shape} differ in shape')
  lesion_names = tuple(class_names[1:])
  if infection.size and (infection.min() < 0 or infection.max() > len(lesion_names)):
    raise ValueError(f'infection labels must lie in 0..{len(lesion_names)}')
  lesions = infection.astype(np.int64)
  report = {'overall': _region_numbers(lesions[sides > 0], np.count_nonzero(sides),
                                       lesion_names, voxel_volume_ml)}
  for side, name in SIDE_NAMES.items():
    inside = sides == side
    report[name] = _region_numbers(lesions[inside], np.count_nonzero(inside), lesion_names,
                                   voxel_volume_ml)
  return report
