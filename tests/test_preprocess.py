"""Tests of resizing, normalisation, lung masking and task labels."""
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from covseg_jax.data import medseg
from covseg_jax.data import nifti
from covseg_jax.data import preprocess
from covseg_jax.data import splits
from covseg_jax.errors import InputError


def test_resize_labels_reproduces_the_paper_test_counts():
  try:
    data_dir = medseg.find_data_dir()
  except InputError:
    pytest.skip('MedSeg data not found')
  labels, _ = nifti.load_nifti(data_dir / medseg.LABELS_FILE)
  test = splits.computed_paper_split().test
  small = preprocess.resize_labels(np.moveaxis(labels, 2, 0)[test].astype(np.uint8), 256)
  # The authors' test confusion matrices total C0 1,095,247, C1 51,852, C2 30,778,
  # C3 1,771 pixels. Pixel-centre sampling (MATLAB imresize 'nearest', input pixel
  # 2i + 1) gives exactly these; top-left sampling (2i) gives 1,095,344 / 51,797 /
  # 30,736 / 1,771, and a 2x2 majority vote is off by up to 7 % (C3 1,652).
  assert np.bincount(small.ravel(), minlength=4).tolist() == [1095247, 51852, 30778, 1771]


@pytest.mark.parametrize('in_size, out_size', [(512, 256), (97, 40), (30, 64)])
def test_resize_labels_samples_pixel_centres_like_pillow(in_size, out_size):
  labels = np.random.default_rng(0).integers(0, 4, (2, in_size, in_size), dtype=np.uint8)
  resized = preprocess.resize_labels(labels, out_size)
  assert resized.shape == (2, out_size, out_size) and resized.dtype == np.uint8
  for image, small in zip(labels, resized):
    expected = Image.fromarray(image).resize((out_size, out_size), Image.NEAREST)
    assert np.array_equal(small, np.asarray(expected))


def test_resize_images_matches_matlab_bicubic():
  rng = np.random.default_rng(0)
  images = rng.random((3, 40, 40)).astype(np.float32) * 255
  resized = preprocess.resize_images(images, 20)
  assert resized.shape == (3, 20, 20) and resized.dtype == np.float32
  # Same Keys kernel (a = -0.5) with antialiasing as jax.image.resize; they differ
  # only next to the border, where MATLAB mirrors the image and JAX renormalises.
  reference = jax.image.resize(jnp.asarray(images), (3, 20, 20), 'cubic', antialias=True)
  np.testing.assert_allclose(resized[:, 2:-2, 2:-2], np.asarray(reference)[:, 2:-2, 2:-2],
                             atol=1e-3)
  # Halving a ramp gives the mean of each pixel pair, away from the mirrored border.
  ramp = np.tile(np.arange(32, dtype=np.float32), (32, 1))
  np.testing.assert_allclose(preprocess.resize_images(ramp, 16)[0, 2:-2],
                             np.arange(2, 14) * 2 + 0.5, atol=1e-4)


def test_resize_images_keeps_constants_and_the_input_range():
  assert np.allclose(preprocess.resize_images(np.full((1, 9, 7), 5.0), 4), 5.0)
  disc = np.zeros((1, 64, 64), np.float32)
  disc[0, 16:48, 16:48] = 100.0
  resized = preprocess.resize_images(disc, 24)
  assert resized.min() == 0.0 and resized.max() == 100.0  # Overshoot clipped.
  assert preprocess.resize_images(disc, 128).shape == (1, 128, 128)


def test_compute_mean_image_and_zero_center():
  images = np.stack([np.full((4, 4), 10.0), np.full((4, 4), 30.0)])
  mean = preprocess.compute_mean_image(images)
  assert mean.shape == (4, 4) and mean.dtype == np.float32 and np.all(mean == 20.0)
  centred = preprocess.normalize(images, 'zero_center', mean_image=mean)
  np.testing.assert_allclose(centred[:, 0, 0], [-10 / 255, 10 / 255])
  with pytest.raises(ValueError, match='mean_image'):
    preprocess.normalize(images, 'zero_center')


def test_minmax_and_hu_window():
  images = np.stack([np.linspace(-50, 150, 16).reshape(4, 4), np.full((4, 4), 7.0)])
  scaled = preprocess.normalize(images, 'minmax')
  assert scaled.dtype == np.float32
  assert scaled[0].min() == 0 and scaled[0].max() == 1 and not scaled[1].any()
  hu = np.array([[-2000.0, -1000.0, -300.0, 400.0, 3000.0]])
  np.testing.assert_allclose(preprocess.normalize(hu, 'hu_window'), [[0, 0, 0.5, 1, 1]])
  np.testing.assert_allclose(preprocess.normalize(hu, 'hu_window', window=(-1000, 0))[0, 2], 0.7)


def test_zscore_inside_the_lung():
  rng = np.random.default_rng(0)
  images = rng.normal(50.0, 5.0, (2, 32, 32))
  lung = np.zeros((2, 32, 32), np.uint8)
  lung[0, 8:24, 8:24] = 1  # The second image has no lung: whole-image statistics.
  images[0][lung[0] == 0] = 0.0
  result = preprocess.normalize(images, 'zscore', lung=lung)
  inside = result[0][lung[0] == 1]
  assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-4
  assert abs(result[1].mean()) < 1e-5 and abs(result[1].std() - 1) < 1e-4
  whole = preprocess.normalize(images[:1], 'zscore')
  assert abs(whole.mean()) < 1e-5 and whole[0][lung[0] == 1].mean() > 0.5
  assert not preprocess.normalize(np.full((1, 3, 3), 4.0), 'zscore').any()
  with pytest.raises(ValueError, match='unknown normalisation'):
    preprocess.normalize(images, 'percentile')


def test_tasks_and_lung_mask():
  labels = np.array([[0, 1, 2, 3]], np.uint8)
  lung = np.array([[0, 1, 2, 1]], np.uint8)
  assert preprocess.labels_for_task(labels, lung, 'binary').tolist() == [[0, 1, 1, 1]]
  assert preprocess.labels_for_task(labels, lung, 'multi').tolist() == [[0, 1, 2, 3]]
  assert preprocess.labels_for_task(labels, lung, 'lung').tolist() == [[0, 1, 1, 1]]
  for task in preprocess.TASKS:
    assert preprocess.num_classes(task) == len(preprocess.CLASS_NAMES[task])
    assert preprocess.labels_for_task(labels, lung, task).dtype == np.uint8
  assert [preprocess.num_classes(t) for t in ('binary', 'multi', 'lung')] == [2, 4, 2]
  with pytest.raises(ValueError):
    preprocess.num_classes('lobes')
  # Outside the lung, healthy lung, lesion inside the lung; a lesion outside the lung is outside.
  lung_lesion = preprocess.lesion_class_targets(np.array([[0, 0, 2, 3]]),
                                                np.array([[0, 1, 2, 0]]), 'lung')
  assert lung_lesion.dtype == np.uint8 and lung_lesion.tolist() == [[0, 1, 2, 0]]
  # Binary: the multi task's classes, whose lesion group is the binary task's infected class.
  assert preprocess.lesion_class_targets(labels, lung, 'binary').tolist() == [[0, 1, 2, 3]]
  for task, (names, groups) in preprocess.LESION_CLASSES.items():
    fine = preprocess.lesion_class_targets(labels, lung, task)
    merged = np.select([np.isin(fine, group) for group in groups], range(len(groups)))
    assert merged.tolist() == preprocess.labels_for_task(labels, lung, task).tolist()
    assert sorted(sum(groups, ())) == list(range(len(names)))
  with pytest.raises(ValueError, match="not 'multi'"):
    preprocess.lesion_class_targets(labels, lung, 'multi')
  images = np.array([[5.0, 6.0, 7.0, 8.0]], np.float32)
  masked = preprocess.apply_lung_mask(images, lung)
  assert masked.dtype == np.float32 and masked.tolist() == [[0, 6, 7, 8]]
