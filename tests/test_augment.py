"""Tests of the augmentation: flip and shear (the paper's), rotation, zoom, elastic deformation
and gamma."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from covseg_jax.data import augment
from covseg_jax.data import synthetic

# Compiled once per static configuration and shape, shared by the tests.
_augment = jax.jit(augment.augment, static_argnames=('flip', 'shear_degrees', 'rotation_degrees',
                                                    'scale_range', 'elastic', 'gamma_range'))
_params = jax.jit(jax.vmap(augment.sample_params, in_axes=(0, None, None, None, None)),
                  static_argnums=(1, 2, 3, 4))
_warp = jax.jit(jax.vmap(augment.warp, in_axes=(0, 0, 0, 0, 0, 0, None)), static_argnums=6)


@pytest.fixture(scope='module')
def batch():
  _, labels, _ = synthetic.phantom_slices(6, size=32, seed=1)
  images = np.random.default_rng(0).random((6, 32, 32, 1), np.float32)
  return jnp.asarray(images), jnp.asarray(labels)


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


def test_identity_without_flip_or_shear(batch):
  images, labels = batch
  out_images, out_labels = _augment(_keys(6), images, labels, flip=False, shear_degrees=0.0)
  assert out_images.dtype == images.dtype and out_labels.dtype == labels.dtype
  np.testing.assert_array_equal(out_images, images)
  np.testing.assert_array_equal(out_labels, labels)


def test_flip_is_an_exact_top_bottom_reflection(batch):
  images, labels = batch
  keys = _keys(6)
  out_images, out_labels = _augment(keys, images, labels, flip=True, shear_degrees=0.0)
  flipped = np.asarray(_params(keys, True, 0.0, 0.0, 0.0)[0])
  assert 0 < flipped.sum() < 6  # Both cases occur with these keys.
  for i, flip in enumerate(flipped):
    np.testing.assert_array_equal(out_images[i], images[i, ::-1] if flip else images[i])
    np.testing.assert_array_equal(out_labels[i], labels[i, ::-1] if flip else labels[i])


def test_shear_geometry():
  # A 45-degree shear in x moves each row sideways by its distance from the
  # centre row, which stays; pixels coming from outside the input are 0.
  image = jnp.zeros((9, 9)).at[:, 4].set(1.0)
  sheared = augment.warp(image, False, jnp.deg2rad(45.0), 0.0, None, None, order=0)
  assert [int(np.argmax(row)) for row in np.asarray(sheared)] == list(range(9))
  ones = np.asarray(augment.warp(jnp.ones((9, 9)), False, 0.0, jnp.deg2rad(30.0), None, None,
                                 order=1))
  assert ones[0, 8] == ones[8, 0] == 0.0
  np.testing.assert_allclose(ones[[0, 4, 8], [0, 4, 8]], 1.0, rtol=1e-6)


def test_labels_stay_aligned_with_the_image(batch):
  _, labels = batch
  keys = _keys(6, seed=3)
  as_image = labels[..., None].astype(jnp.float32)
  out_images, out_labels = _augment(keys, as_image, labels, rotation_degrees=15.0,
                                    scale_range=0.2)
  out_labels = np.asarray(out_labels)
  mismatch = np.round(np.asarray(out_images[..., 0])) != out_labels
  # Pixels with another label among their 8 neighbours: the only ones allowed to
  # differ, where bilinear mixing of two labels rounds to a third one or flips.
  padded = np.pad(out_labels, ((0, 0), (1, 1), (1, 1)), mode='edge')
  boundary = np.zeros_like(mismatch)
  for d_row in (0, 1, 2):
    for d_col in (0, 1, 2):
      boundary |= padded[:, d_row:d_row + 32, d_col:d_col + 32] != out_labels
  assert 0 < mismatch.mean() < 0.02 and not (mismatch & ~boundary).any()
  # Sampling the image by nearest neighbour with the same draws is exact.
  nearest = _warp(as_image, *_params(keys, True, 10.0, 15.0, 0.2), 0)
  np.testing.assert_array_equal(nearest[..., 0], out_labels.astype(np.float32))


def test_deterministic_and_independent_of_the_batch(batch):
  images, labels = batch
  keys = _keys(6, seed=5)
  first = _augment(keys, images, labels)
  again = _augment(keys, images, labels)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[0], images)
  # The draws are exactly those of each key alone; the warped images agree up to
  # float rounding, which XLA may order differently for another batch shape.
  for i in (0, 4):
    for batched, alone in zip(_params(keys, True, 10.0, 15.0, 0.2),
                             augment.sample_params(keys[i], True, 10.0, 15.0, 0.2)):
      np.testing.assert_array_equal(batched[i], alone)
    alone = _augment(keys[i:i + 1], images[i:i + 1], labels[i:i + 1])
    np.testing.assert_allclose(alone[0][0], first[0][i], atol=1e-5)
    np.testing.assert_array_equal(alone[1][0], first[1][i])
  shuffled = _augment(keys[::-1], images[::-1], labels[::-1])
  np.testing.assert_array_equal(shuffled[0][::-1], first[0])
  np.testing.assert_array_equal(shuffled[1][::-1], first[1])


def test_draws():
  flips, shear_x, shear_y, rotation, scale = _params(_keys(512), True, 10.0, 15.0, 0.2)
  shears = np.rad2deg(np.concatenate([np.asarray(shear_x), np.asarray(shear_y)]))
  assert np.abs(shears).max() <= 10.0 and np.abs(shears).max() > 9.5
  assert abs(np.corrcoef(shear_x, shear_y)[0, 1]) < 0.15
  assert 0.4 < np.asarray(flips).mean() < 0.6
  assert not np.asarray(_params(_keys(64), False, 10.0, 0.0, 0.0)[0]).any()
  rotation = np.rad2deg(np.asarray(rotation))
  assert np.abs(rotation).max() <= 15.0 and np.abs(rotation).max() > 14.5
  assert 0.8 <= np.asarray(scale).min() < 0.81 and 1.19 < np.asarray(scale).max() <= 1.2
  # The paper's draws do not change when rotation and zoom are switched on.
  paper = _params(_keys(512), True, 10.0, 0.0, 0.0)
  for a, b in zip(paper[:3], (flips, shear_x, shear_y)):
    np.testing.assert_array_equal(a, b)
  assert paper[3] is None and paper[4] is None  # Not drawn, and not applied.


def test_rotation_and_zoom_geometry():
  # A quarter turn of an odd-sized image moves every pixel exactly; a zoom by 2 keeps the
  # centre and doubles distances from it.
  image = jnp.asarray(np.random.default_rng(0).random((9, 9)), jnp.float32)
  turned = np.asarray(augment.warp(image, False, 0.0, 0.0, jnp.deg2rad(90.0), None, order=0))
  assert any(np.array_equal(turned, np.rot90(image, k)) for k in (1, 3))
  bar = jnp.zeros((9, 9)).at[4, 3:6].set(1.0)  # Three pixels about the centre.
  zoomed = np.asarray(augment.warp(bar, False, 0.0, 0.0, None, 2.0, order=0))
  # Output column c samples input column 4 + (c - 4) / 2, rounded half to even.
  assert zoomed[4].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]
  assert zoomed.sum() == zoomed[3:6].sum() and zoomed[3:6].sum() > 5


def test_gamma_keeps_each_images_range_and_order(batch):
  images, labels = batch
  images = images * 3.0 - 1.0  # Any intensity scale: here [-1, 2].
  keys = _keys(6, seed=7)
  plain = _augment(keys, images, labels)
  out_images, out_labels = _augment(keys, images, labels, gamma_range=0.5)
  # The geometric draws are those without gamma: the same labels, the same sampling.
  np.testing.assert_array_equal(out_labels, plain[1])
  assert not np.allclose(out_images, plain[0], atol=1e-3)
  gammas = []
  for key, image in zip(keys, images):
    changed = np.asarray(augment.random_gamma(jax.random.fold_in(key, 3), image, 0.5))
    flat, new = np.asarray(image).ravel(), changed.ravel()
    # Minimum and maximum stay; the tones between keep their order.
    assert new.min() == flat.min() and np.isclose(new.max(), flat.max())
    order = np.argsort(flat)
    assert np.all(np.diff(new[order]) >= -1e-6)
    # The middle tone moves as unit ** g: recover g from it.
    low, span = flat.min(), flat.max() - flat.min()
    middle = order[len(order) // 2]
    gammas.append(np.log((new[middle] - low) / span) / np.log((flat[middle] - low) / span))
  assert all(1 / 1.5 - 1e-3 <= g <= 1.5 + 1e-3 for g in gammas)
  assert min(gammas) < 0.95 and max(gammas) > 1.05  # Both darker and brighter with these keys.
  # A constant image has no tones to change.
  constant = jnp.full((8, 8, 1), 0.25, jnp.float32)
  np.testing.assert_array_equal(augment.random_gamma(keys[0], constant, 0.5), constant)


def test_elastic_displacement_is_smooth_and_sized_by_the_side():
  keys = _keys(64, seed=11)
  rows, cols = jax.vmap(lambda k: augment.random_displacement(k, 64, 32, 0.02))(keys)
  rows, cols = np.asarray(rows), np.asarray(cols)
  assert rows.shape == cols.shape == (64, 64, 32)
  # At the control points' scale: about 0.02 of each side (1.28 and 0.64 pixels) in each direction.
  assert 1.0 < rows.std() < 1.5 and 0.5 < cols.std() < 0.75 and abs(rows.mean()) < 0.2
  # Smooth: neighbouring pixels move almost alike, far ones independently.
  assert np.abs(np.diff(rows, axis=1)).max() < 0.2 * np.abs(rows).max()
  assert abs(np.corrcoef(rows[:, 0, 0], rows[:, -1, -1])[0, 1]) < 0.3


def test_elastic_deformation_moves_each_pixel_by_its_displacement(batch):
  # A ramp image sampled bilinearly reads out each pixel's source row exactly, so the warp by a
  # displacement alone gives the row plus its displacement, wherever it stays inside.
  ramp = jnp.broadcast_to(jnp.arange(32, dtype=jnp.float32)[:, None], (32, 32))
  displacement = augment.random_displacement(jax.random.key(2), 32, 32, 0.03)
  warped = np.asarray(augment.warp(ramp, False, 0.0, 0.0, None, None, order=1,
                                   displacement=displacement))
  expected = np.asarray(ramp + displacement[0])
  inside = (expected > 0.5) & (expected < 30.5) & (np.abs(np.asarray(displacement[1])) < 1)
  inside[:, [0, -1]] = False  # Columns leaving the image read 0.
  assert inside.mean() > 0.5
  np.testing.assert_allclose(warped[inside], expected[inside], atol=1e-4)
  # In the batch: the geometric draws are those without it, labels move with the image, and
  # 0 draws nothing.
  images, labels = batch
  keys = _keys(6, seed=9)
  plain = _augment(keys, images, labels, rotation_degrees=15.0)
  np.testing.assert_array_equal(_augment(keys, images, labels, rotation_degrees=15.0,
                                         elastic=0.0)[1], plain[1])
  as_image = labels[..., None].astype(jnp.float32)
  out_images, out_labels = _augment(keys, as_image, labels, rotation_degrees=15.0, elastic=0.03)
  assert not np.array_equal(out_labels, plain[1])
  assert set(np.unique(out_labels)) <= set(np.unique(labels))
  params = _params(keys, True, 10.0, 15.0, 0.0)
  for i in range(6):
    one = [p[i] for p in params[:4]] + [None]
    moved = augment.random_displacement(jax.random.fold_in(keys[i], 4), 32, 32, 0.03)
    nearest = augment.warp(as_image[i], *one, order=0, displacement=moved)
    np.testing.assert_array_equal(nearest[..., 0], np.asarray(out_labels[i], np.float32))
