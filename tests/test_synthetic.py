"""Tests of the phantom generators."""
import nibabel as nib
import numpy as np

from covseg_jax.data import medseg
from covseg_jax.data import synthetic


def test_phantom_slices_contents():
  images, labels, lung = synthetic.phantom_slices(12, size=48, seed=2)
  assert images.shape == labels.shape == lung.shape == (12, 48, 48)
  assert images.dtype == np.float32 and labels.dtype == lung.dtype == np.uint8
  assert 0 <= images.min() and images.max() <= 255
  assert set(np.unique(labels)) == {0, 1, 2, 3} and set(np.unique(lung)) == {0, 1}
  assert not labels[lung == 0].any()  # Lesions lie in the lungs.
  lesion_free = [i for i in range(12) if not labels[i].any()]
  assert lesion_free == [4, 9]
  # Lungs are darker than the body, consolidation brighter than ground-glass.
  body = images[(lung == 0) & (images > 100)].mean()
  means = [images[(lung == 1) & (labels == c)].mean() for c in range(3)]
  assert means[0] < means[1] < means[2] and means[0] < body / 2
  # The effusion is a dependent crescent: it sits in the lower part of each lung.
  rows = np.nonzero(labels[0] == 3)[0]
  lung_rows = np.nonzero(lung[0])[0]
  assert rows.mean() > lung_rows.mean() + 0.5 * lung_rows.std()


def test_phantom_slices_are_deterministic():
  first = synthetic.phantom_slices(5, seed=7)
  again = synthetic.phantom_slices(5, seed=7)
  other = synthetic.phantom_slices(5, seed=8)
  for a, b in zip(first, again):
    assert np.array_equal(a, b)
  assert not np.array_equal(first[1], other[1])


def test_phantom_volume():
  volume, labels, sides, affine = synthetic.phantom_volume((40, 48, 16), seed=1,
                                                           spacing=(0.8, 0.8, 3.0))
  assert volume.shape == labels.shape == sides.shape == (40, 48, 16)
  assert volume.dtype == np.float32
  assert set(np.unique(labels)) == {0, 1, 2, 3} and set(np.unique(sides)) == {0, 1, 2}
  assert not labels[sides == 0].any()
  assert nib.aff2axcodes(affine) == ('P', 'L', 'S')
  np.testing.assert_allclose(nib.affines.voxel_sizes(affine), [0.8, 0.8, 3.0])
  np.testing.assert_allclose(affine[:3, :3] @ np.array([39, 47, 15]) / 2 + affine[:3, 3], 0)
  # HU: air about -1000, lung about -850, soft tissue about 40.
  assert abs(np.median(volume[0]) + 1000) < 50
  assert abs(np.median(volume[(sides > 0) & (labels == 0)]) + 850) < 20
  # Side 1 is the image-left lung; the lungs shrink towards the ends of the volume.
  assert np.nonzero(sides == 1)[1].mean() < np.nonzero(sides == 2)[1].mean()
  lung_area = (sides > 0).sum(axis=(0, 1))
  assert lung_area[0] < lung_area[8] and lung_area[-1] < lung_area[8]


def test_write_medseg_folder_layout(tmp_path):
  path = synthetic.write_medseg_folder(tmp_path / 'medseg', n=3, size=32, originals=True)
  names = {str(p.relative_to(path)) for p in path.rglob('*') if p.is_file()}
  assert names == {
      medseg.LABELS_FILE, medseg.IMAGES_FILE, medseg.LUNG_SIDES_FILE,
      medseg.DERIVED_IMAGES_FILE, medseg.DERIVED_LUNG_FILE,
      *(medseg.lungmasked_png_name(k) for k in (1, 2, 3)),
      *(medseg.image_png_name(k) for k in (1, 2, 3))}
  # Like MedSeg's files: no orientation, so the affine is nibabel's default for the shape.
  for name in names:
    if name.endswith('.nii.gz'):
      image = nib.load(path / name)
      assert image.header['qform_code'] == image.header['sform_code'] == 0
      np.testing.assert_array_equal(image.affine, image.header.get_base_affine())
