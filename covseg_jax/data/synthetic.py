"""Synthetic CT phantoms (body, two lungs, lesions of each class) for tests and demos.

Geometry is drawn in normalised coordinates (-1..1), so any size works; rows grow
downwards, and the dependent (posterior) side is the bottom of the image as in CT
display. Everything is deterministic for a seed.
"""
import pathlib

import nibabel as nib
import numpy as np
from PIL import Image

from covseg_jax.data import medseg
from covseg_jax.data import nifti

# Tissue codes, mapped to intensities and labels below.
_AIR, _BODY, _LUNG, _GGO, _CONSOLIDATION, _EFFUSION = range(6)
_LABEL_OF_TISSUE = np.array([0, 0, 0, 1, 2, 3], np.uint8)
# 8-bit grey levels like the MedSeg PNGs (lung window): dark lungs, faint
# ground-glass, bright consolidation, fluid between the two.
_GREY_OF_TISSUE = np.array([0.0, 150.0, 40.0, 95.0, 175.0, 120.0])
_GREY_NOISE = 6.0
_HU_OF_TISSUE = np.array([-1000.0, 40.0, -850.0, -550.0, 30.0, 15.0])
_HU_NOISE = 20.0
# Lung centres (column) of the two sides; side 1 is on the image's left.
_LUNG_COLUMNS = (-0.42, 0.42)


def _ellipse(rows, cols, centre, radii):
  return ((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 <= 1.0


def _lung_radii(scale):
  return 0.48 * scale, 0.3 * scale


def _anatomy(rows, cols, lung_scale, lung_shift, rng, num_ggo, num_consolidation,
             effusion_thickness, z=0.0, lesion_depth=np.inf):
  """Tissue codes and lung sides on a grid of normalised coordinates.

  `lung_scale` may vary along `z` (all broadcast together); lesions are discs, or
  ellipsoids `lesion_depth` deep when z varies.
  """
  shape = np.broadcast_shapes(rows.shape, cols.shape, np.shape(z), np.shape(lung_scale))
  tissue = np.full(shape, _AIR, np.uint8)
  sides = np.zeros(shape, np.uint8)

  def paint(array, where, value):
    array[np.broadcast_to(where, shape)] = value

  paint(tissue, _ellipse(rows, cols, (0.0, 0.0), (0.72, 0.92)), _BODY)
  lung_radii = _lung_radii(lung_scale)
  lung_centres = [(lung_shift[0], column + lung_shift[1]) for column in _LUNG_COLUMNS]
  for side, centre in enumerate(lung_centres, start=1):
    paint(sides, _ellipse(rows, cols, centre, lung_radii), side)
  in_lung = sides > 0
  tissue[in_lung] = _LUNG

  # Consolidation is drawn after ground-glass so that it wins where they overlap.
  for code, count, (low, high) in ((_GGO, num_ggo, (0.06, 0.14)),
                                   (_CONSOLIDATION, num_consolidation, (0.04, 0.09))):
    for _ in range(count):
      # A centre well inside one lung (at its smallest scale), at a random depth.
      lung_row, lung_column = lung_centres[rng.integers(2)]
      angle, fraction = rng.uniform(0, 2 * np.pi), 0.7 * np.sqrt(rng.uniform())
      small_radii = _lung_radii(0.8)
      centre = (lung_row + fraction * small_radii[0] * np.sin(angle),
                lung_column + fraction * small_radii[1] * np.cos(angle))
      depth = rng.uniform(-0.6, 0.6)
      radius = rng.uniform(low, high)
      blob = (_ellipse(rows, cols, centre, (radius, radius * rng.uniform(0.7, 1.3)))
              & (((z - depth) / lesion_depth) ** 2 <= 1.0))
      paint(tissue, blob & in_lung, code)
  if effusion_thickness > 0:
    # The part of each lung that a copy lifted by the thickness does not cover is
    # a crescent along the dependent border; in a volume only its lower half.
    for centre in lung_centres:
      lifted = (centre[0] - effusion_thickness * lung_radii[0], centre[1])
      crescent = (_ellipse(rows, cols, centre, lung_radii)
                  & ~_ellipse(rows, cols, lifted, lung_radii))
      paint(tissue, crescent & (np.asarray(z) <= 0) & in_lung, _EFFUSION)
  return tissue, sides


def _slice_anatomy(size, seed, index):
  """Tissue and sides of slice `index`; every fifth slice has no lesion."""
  rng = np.random.default_rng((seed, index))
  grid = np.linspace(-1.0, 1.0, size)
  rows, cols = grid[:, None], grid[None, :]
  has_lesions = index % 5 != 4
  return _anatomy(
      rows, cols, lung_scale=rng.uniform(0.8, 1.0), lung_shift=rng.uniform(-0.05, 0.05, 2),
      rng=rng, num_ggo=int(rng.integers(1, 4)) * has_lesions,
      num_consolidation=int(rng.integers(index % 2, 3)) * has_lesions,
      effusion_thickness=rng.uniform(0.15, 0.3) * (has_lesions and index % 3 == 0))


def _phantom_slices(n, size, seed):
  """Like `phantom_slices` but returns lung sides (1, 2) instead of a binary mask."""
  rng = np.random.default_rng(seed)
  tissue, sides = map(np.stack, zip(*(_slice_anatomy(size, seed, i) for i in range(n))))
  images = _GREY_OF_TISSUE[tissue] + rng.normal(0.0, _GREY_NOISE, tissue.shape)
  return np.clip(images, 0, 255).astype(np.float32), _LABEL_OF_TISSUE[tissue], sides


def phantom_slices(n, size=64, seed=0):
  """`n` independent axial slices, like the MedSeg data at `size` x `size`.

  Returns:
    (images, labels, lung): (n, size, size) float32 grey levels in 0..255,
    uint8 labels 0..3 and uint8 binary lung masks. Slices 4, 9, ... (0-based) have
    no lesion; slices 0, 3, 6, ... with lesions also have a pleural effusion.
  """
  images, labels, sides = _phantom_slices(n, size, seed)
  return images, labels, (sides > 0).astype(np.uint8)


def phantom_volume(shape=(64, 64, 24), seed=0, spacing=(0.7, 0.7, 5.0)):
  """A chest CT volume in HU, (rows, cols, slices) like a NIfTI array.

  The lungs shrink towards both ends of the slice axis; lesions are ellipsoids
  and the effusion lies in the lower half.

  Returns:
    (volume, labels, lung, affine): float32 HU, uint8 labels 0..3, uint8 lung sides
    (0 none, 1 image-left, 2 image-right) and the 4x4 affine of display_affine.
  """
  rng = np.random.default_rng(seed)
  rows = np.linspace(-1.0, 1.0, shape[0])[:, None, None]
  cols = np.linspace(-1.0, 1.0, shape[1])[None, :, None]
  z = np.linspace(-1.0, 1.0, shape[2])[None, None, :]
  tissue, sides = _anatomy(
      rows, cols, lung_scale=np.sqrt(np.clip(1.0 - (z / 1.1) ** 2, 0.0, None)),
      lung_shift=(0.0, 0.0), rng=rng, num_ggo=4, num_consolidation=2,
      effusion_thickness=0.25, z=z, lesion_depth=0.25)
  volume = _HU_OF_TISSUE[tissue] + rng.normal(0.0, _HU_NOISE, tissue.shape)
  return (volume.astype(np.float32), _LABEL_OF_TISSUE[tissue], sides,
          display_affine(shape, spacing))


def display_affine(shape, spacing):
  """The RAS+ affine of an array in radiological display layout, as the phantoms are drawn.

  Rows run anterior to posterior, columns from the patient's right to left (image-left is the
  patient's right), slices upwards: axis codes PLS, `spacing` in mm, centred on the volume.
  """
  affine = np.zeros((4, 4))
  affine[1, 0], affine[0, 1], affine[2, 2], affine[3, 3] = -spacing[0], -spacing[1], spacing[2], 1
  affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
  return affine


def write_medseg_folder(path, n=12, size=64, seed=0, originals=False):
  """Writes phantom slices as a MedSeg-shaped folder that `medseg.load_medseg` reads.

  Writes tr_mask.nii.gz (float64 like the original), the lung-masked PNGs, the
  tr_im_png export (per-slice min-max scaled, slices 10 and 90 rotated like the real
  export) and both derived NIfTI files. With `originals`, also tr_im.nii.gz (float)
  and tr_lungmasks_updated.nii.gz (sides 1 and 2), the files MedSeg distributes.

  Returns:
    The folder as a `pathlib.Path`.
  """
  path = pathlib.Path(path)
  images, labels, sides = _phantom_slices(n, size, seed)
  lung = (sides > 0).astype(np.uint8)
  # Like the real tr_mask.nii.gz: no orientation (qform and sform codes 0), so the affine is
  # nibabel's default for the shape: x flipped, centred, 1 mm voxels.
  affine = np.diag([-1.0, 1.0, 1.0, 1.0])
  affine[:3, 3] = ((size - 1) / 2, -(size - 1) / 2, -(n - 1) / 2)
  reference = nib.Nifti1Image(np.zeros((size, size, n), np.float64), affine)
  reference.set_sform(affine, code=0)

  def save(array, name, dtype):
    nifti.save_nifti(np.moveaxis(array, 0, 2), reference, path / name, dtype)

  def save_png(array, name):
    (path / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path / name)

  grey = np.round(images).astype(np.uint8)
  # Lung pixels are at least 1 so that PNG > 0 recovers the lung mask exactly.
  masked = np.where(lung > 0, np.maximum(grey, 1), 0).astype(np.uint8)
  low = images.min(axis=(1, 2), keepdims=True)
  high = images.max(axis=(1, 2), keepdims=True)
  exported = np.round(255 * (images - low) / (high - low)).astype(np.uint8)
  for k in range(1, n + 1):
    save_png(masked[k - 1], medseg.lungmasked_png_name(k))
    # Undo medseg.align_image_png so that loading restores the aligned slice.
    stored = np.rot90(exported[k - 1]) if k in medseg.ROTATED_PNG_SLICES else exported[k - 1]
    save_png(np.ascontiguousarray(stored), medseg.image_png_name(k))
  save(labels, medseg.LABELS_FILE, np.float64)
  save(exported, medseg.DERIVED_IMAGES_FILE, np.uint8)
  save(lung, medseg.DERIVED_LUNG_FILE, np.uint8)
  if originals:
    save(images, medseg.IMAGES_FILE, np.float64)
    save(sides, medseg.LUNG_SIDES_FILE, np.float64)
  return path
