"""Tests of covseg_jax.models.layers against brute-force NumPy references."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from covseg_jax.models import layers


def reference_pool_with_argmax(x):
  """Loops over 2x2 windows; a tie goes to the first position, row-major."""
  n, h, w, c = x.shape
  pooled = np.zeros((n, h // 2, w // 2, c), x.dtype)
  indices = np.zeros((n, h // 2, w // 2, c), np.int64)
  for b in range(n):
    for i in range(h // 2):
      for j in range(w // 2):
        for k in range(c):
          best = None
          for dy in range(2):
            for dx in range(2):
              y, xx = 2 * i + dy, 2 * j + dx
              if best is None or x[b, y, xx, k] > x[b, best[0], best[1], k]:
                best = (y, xx)
          pooled[b, i, j, k] = x[b, best[0], best[1], k]
          indices[b, i, j, k] = best[0] * w + best[1]
  return pooled, indices


def reference_unpool(values, indices, output_shape):
  n, _, w, c = output_shape
  out = np.zeros(output_shape, values.dtype)
  for b, i, j, k in np.ndindex(values.shape):
    position = indices[b, i, j, k]
    out[b, position // w, position % w, k] = values[b, i, j, k]
  return out


def make_input(kind, shape=(2, 8, 6, 3), seed=0):
  rng = np.random.default_rng(seed)
  if kind == 'random':
    return rng.normal(size=shape).astype(np.float32)
  if kind == 'integer_ties':  # Three values only: most windows hold ties.
    return rng.integers(-1, 2, size=shape).astype(np.float32)
  if kind == 'all_equal':
    return np.full(shape, 0.5, np.float32)
  raise ValueError(kind)


def random_normal(shape, seed):
  """NumPy samples: each new jax.random shape costs a compilation."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape),
                     jnp.float32)


INPUT_KINDS = ('random', 'integer_ties', 'all_equal')


@pytest.mark.parametrize('kind', INPUT_KINDS)
def test_max_pool_with_argmax_matches_reference(kind):
  x = make_input(kind)
  pooled, indices = layers.max_pool_with_argmax(jnp.asarray(x))
  expected_pooled, expected_indices = reference_pool_with_argmax(x)
  assert indices.dtype == jnp.int32
  np.testing.assert_array_equal(pooled, expected_pooled)
  np.testing.assert_array_equal(indices, expected_indices)


def test_max_pool_with_argmax_bfloat16_and_infinite_windows():
  x = make_input('random')
  x[0, :2, :2, 0] = -np.inf  # A window with nothing but -inf.
  x_bf16 = jnp.asarray(x, jnp.bfloat16)
  pooled, indices = layers.max_pool_with_argmax(x_bf16)
  expected_pooled, expected_indices = reference_pool_with_argmax(
      np.asarray(x_bf16, np.float32))
  assert pooled.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(pooled, np.float32),
                                expected_pooled)
  np.testing.assert_array_equal(indices, expected_indices)
  assert indices[0, 0, 0, 0] == 0


def test_max_pool_with_argmax_rejects_odd_sizes():
  with pytest.raises(ValueError, match='divisible by 2'):
    layers.max_pool_with_argmax(jnp.zeros((1, 5, 4, 1)))


@pytest.mark.parametrize('kind', INPUT_KINDS)
@pytest.mark.parametrize(
    'unpool', [layers.max_unpool, layers.max_unpool_onehot],
    ids=['scatter', 'onehot'])
def test_unpool_places_values_at_argmax(kind, unpool):
  x = make_input(kind)
  rng = np.random.default_rng(1)
  pooled_shape = (x.shape[0], x.shape[1] // 2, x.shape[2] // 2, x.shape[3])
  values = rng.normal(size=pooled_shape).astype(np.float32)
  _, indices = layers.max_pool_with_argmax(jnp.asarray(x))
  out = unpool(jnp.asarray(values), indices, x.shape)
  _, expected_indices = reference_pool_with_argmax(x)
  np.testing.assert_array_equal(
      out, reference_unpool(values, expected_indices, x.shape))


def test_pool_then_unpool_keeps_only_window_maxima():
  x = make_input('random')
  out = layers.max_unpool(*layers.max_pool_with_argmax(jnp.asarray(x)),
                          x.shape)
  pooled, indices = reference_pool_with_argmax(x)
  np.testing.assert_array_equal(out, reference_unpool(pooled, indices, x.shape))
  assert np.count_nonzero(out) == pooled.size


@pytest.mark.parametrize('kind', INPUT_KINDS)
def test_pool_gradient_goes_to_argmax(kind):
  x = make_input(kind)
  _, indices = reference_pool_with_argmax(x)
  weights = np.random.default_rng(2).normal(size=indices.shape).astype(
      np.float32)

  def weighted_pool_sum(x):
    return jnp.sum(weights * layers.max_pool_with_argmax(x)[0])

  grad = jax.jit(jax.grad(weighted_pool_sum))(jnp.asarray(x))
  np.testing.assert_array_equal(
      grad, reference_unpool(weights, indices, x.shape))


@pytest.mark.parametrize('kind', INPUT_KINDS)
@pytest.mark.parametrize(
    'unpool', [layers.max_unpool, layers.max_unpool_onehot],
    ids=['scatter', 'onehot'])
def test_pool_unpool_gradient_goes_to_argmax(kind, unpool):
  x = make_input(kind)
  _, indices = reference_pool_with_argmax(x)
  weights = np.random.default_rng(3).normal(size=x.shape).astype(np.float32)

  def weighted_pool_unpool_sum(x):
    return jnp.sum(weights * unpool(*layers.max_pool_with_argmax(x), x.shape))

  grad = jax.jit(jax.grad(weighted_pool_unpool_sum))(jnp.asarray(x))
  # Each pixel that is its window's argmax passes its own weight; others none.
  is_argmax = reference_unpool(np.ones(indices.shape, np.float32), indices,
                               x.shape)
  np.testing.assert_array_equal(grad, weights * is_argmax)


def test_scatter_and_onehot_unpool_agree_with_gradients():
  x = jnp.asarray(make_input('integer_ties', shape=(2, 16, 16, 4)))
  pooled, indices = layers.max_pool_with_argmax(x)
  values = random_normal(pooled.shape, seed=0)
  weights = random_normal(x.shape, seed=1)

  def loss(values, unpool):
    return jnp.sum(weights * unpool(values, indices, x.shape))

  np.testing.assert_array_equal(
      layers.max_unpool(values, indices, x.shape),
      layers.max_unpool_onehot(values, indices, x.shape))
  grad = jax.jit(jax.grad(loss), static_argnums=1)
  np.testing.assert_array_equal(grad(values, layers.max_unpool),
                                grad(values, layers.max_unpool_onehot))


def test_unpool_rejects_mismatched_shapes():
  pooled, indices = layers.max_pool_with_argmax(jnp.zeros((1, 4, 4, 2)))
  with pytest.raises(ValueError, match='un-pool'):
    layers.max_unpool(pooled, indices, (1, 8, 8, 2))


@pytest.mark.parametrize('d', [1, 2, 4])
def test_space_to_batch_layout_and_round_trip(d):
  x = random_normal((3, 8, 12, 2), seed=0)
  sub_images = layers.space_to_batch(x, d)
  assert sub_images.shape == (d * d * 3, 8 // d, 12 // d, 2)
  for a in range(d):
    for b in range(d):
      np.testing.assert_array_equal(
          sub_images[(a * d + b) * 3:(a * d + b + 1) * 3], x[:, a::d, b::d])
  np.testing.assert_array_equal(layers.batch_to_space(sub_images, d), x)


def test_space_to_batch_rejects_indivisible_sizes():
  with pytest.raises(ValueError, match='divisible by 4'):
    layers.space_to_batch(jnp.zeros((1, 8, 6, 1)), 4)


@pytest.mark.parametrize('d', [1, 2, 4])
@pytest.mark.parametrize('size', [(16, 16), (13, 10)])
def test_dilated_conv_via_space_to_batch_equals_rhs_dilation(d, size):
  x = random_normal((2, *size, 3), seed=0)
  dilated = nn.Conv(5, (3, 3), padding='SAME', kernel_dilation=d)
  plain = nn.Conv(5, (3, 3), padding='SAME')
  rng = np.random.default_rng(1)
  params = {'params': {
      'kernel': jnp.asarray(rng.normal(size=(3, 3, 3, 5)), jnp.float32),
      'bias': jnp.asarray(rng.normal(size=5), jnp.float32)}}
  expected = dilated.apply(params, x)

  # Zero rows/columns appended up to a multiple of d play the part of the
  # dilated convolution's zero padding.
  height, width = size
  padded = jnp.pad(x, ((0, 0), (0, -height % d), (0, -width % d), (0, 0)))
  out = layers.batch_to_space(
      plain.apply(params, layers.space_to_batch(padded, d)), d)
  np.testing.assert_allclose(out[:, :height, :width], expected, atol=1e-5,
                             rtol=1e-5)


def test_depth_to_space_matches_reference():
  block, channels = 2, 3
  x = np.random.default_rng(0).normal(
      size=(2, 3, 4, block * block * channels)).astype(np.float32)
  expected = np.zeros((2, 3 * block, 4 * block, channels), np.float32)
  for n, y, xx, a, b, f in np.ndindex(2, 3, 4, block, block, channels):
    expected[n, y * block + a, xx * block + b, f] = x[
        n, y, xx, (a * block + b) * channels + f]
  np.testing.assert_array_equal(layers.depth_to_space(jnp.asarray(x), block),
                                expected)


def test_conv_bn_relu_statistics_and_dtypes():
  module = layers.ConvBNReLU(4, jnp.bfloat16)
  x = random_normal((2, 8, 8, 3), seed=0)
  shapes = jax.eval_shape(
      lambda: module.init(jax.random.key(1), x, train=False))
  assert jax.tree.map(lambda s: (s.shape, s.dtype), shapes) == {
      'params': {'conv': {'kernel': ((3, 3, 3, 4), jnp.float32)},
                 'bn': {'scale': ((4,), jnp.float32),
                        'bias': ((4,), jnp.float32)}},
      'batch_stats': {'bn': {'mean': ((4,), jnp.float32),
                             'var': ((4,), jnp.float32)}}}
  kernel = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 3, 4)),
                       jnp.float32)
  variables = {
      'params': {'conv': {'kernel': kernel},
                 'bn': {'scale': jnp.ones(4), 'bias': jnp.zeros(4)}},
      'batch_stats': {'bn': {'mean': jnp.zeros(4), 'var': jnp.ones(4)}}}
  out, updates = module.apply(variables, x, train=True, mutable=['batch_stats'])
  assert out.dtype == jnp.bfloat16 and out.shape == (2, 8, 8, 4)
  assert bool(jnp.all(out >= 0))
  # One training step moves the running mean 10 % of the way to the batch mean.
  conv_out = jax.lax.conv_general_dilated(
      x, kernel, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(updates['batch_stats']['bn']['mean'],
                             0.1 * conv_out.mean(axis=(0, 1, 2)), atol=2e-3)
