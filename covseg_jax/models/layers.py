"""Building blocks shared by the segmentation networks (all NHWC).

Index encoding of `max_pool_with_argmax`: for input of shape (N, H, W, C) the
index of a pooled value is the flat spatial position `y * W + x` of its argmax
in the input, per image and per channel (the batch and channel are implied by
where the index sits, as in TF's `max_pool_with_argmax` without the batch and
channel terms). Ties go to the first position of the 2x2 window in row-major
order, which is also where the gradient of the plain max-pool goes.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# MATLAB's batchNormalizationLayer updates its running statistics with a decay
# of 0.1 and uses epsilon 1e-5.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

# MATLAB's segnetLayers/unetLayers and NiftyNet initialise convolutions with
# He (MSRA) normal weights.
CONV_KERNEL_INIT = nn.initializers.he_normal()

_POOL_WINDOW = (1, 2, 2, 1)


def require_spatial_multiple(x: jax.Array, multiple: int, what: str) -> None:
  """Raises ValueError unless `multiple` divides H and W of NHWC `x`."""
  height, width = x.shape[1], x.shape[2]
  if height % multiple or width % multiple:
    raise ValueError(
        f'{what} needs height and width divisible by {multiple}, got'
        f' {height}x{width}')


def _flat_positions(height: int, width: int) -> jax.Array:
  """(1, H, W, 1) int32 array holding `y * W + x` at (y, x)."""
  rows = lax.broadcasted_iota(jnp.int32, (1, height, width, 1), 1)
  cols = lax.broadcasted_iota(jnp.int32, (1, height, width, 1), 2)
  return rows * width + cols


def _upsample_nearest_2x(x: jax.Array) -> jax.Array:
  """Repeats every pixel of NHWC `x` into a 2x2 block (broadcast, no gather)."""
  n, h, w, c = x.shape
  return jnp.broadcast_to(
      x[:, :, None, :, None, :], (n, h, 2, w, 2, c)).reshape(n, 2 * h, 2 * w, c)


def max_pool_with_argmax(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """2x2 stride-2 max-pool that also returns the argmax positions.

  Args:
    x: (N, H, W, C) with H and W even.

  Returns:
    (pooled, indices), both (N, H/2, W/2, C); indices are int32 `y * W + x`
    (see the module docstring).
  """
  require_spatial_multiple(x, 2, 'max_pool_with_argmax')
  # Plain max-pool for the values: jax.grad cannot go through the variadic
  # reduce_window below. Its gradient (XLA select-and-scatter) also goes to the
  # first maximum in row-major order, i.e. to `indices` (checked in tests).
  pooled = lax.reduce_window(x, -jnp.inf, lax.max, _POOL_WINDOW, _POOL_WINDOW,
                             'VALID')

  def first_max(a, b):
    a_value, a_position = a
    b_value, b_position = b
    # Breaking ties by position makes the result independent of the order in
    # which XLA combines the window's elements.
    take_b = (b_value > a_value) | (
        (b_value == a_value) & (b_position < a_position))
    return (lax.select(take_b, b_value, a_value),
            lax.select(take_b, b_position, a_position))

  positions = jnp.broadcast_to(_flat_positions(x.shape[1], x.shape[2]),
                               x.shape)
  # The initial position loses every tie, so a window of -inf still points
  # inside itself.
  init = (jnp.array(-jnp.inf, x.dtype),
          jnp.array(jnp.iinfo(jnp.int32).max, jnp.int32))
  _, indices = lax.reduce_window((lax.stop_gradient(x), positions), init,
                                 first_max, _POOL_WINDOW, _POOL_WINDOW, 'VALID')
  return pooled, indices


def _check_unpool_shapes(x: jax.Array, indices: jax.Array,
                         output_shape: Sequence[int]) -> None:
  n, h, w, c = output_shape
  expected = (n, h // 2, w // 2, c)
  if h % 2 or w % 2 or x.shape != expected or indices.shape != expected:
    raise ValueError(
        f'cannot un-pool values {x.shape} with indices {indices.shape} to'
        f' {tuple(output_shape)}')


def max_unpool(x: jax.Array, indices: jax.Array,
               output_shape: Sequence[int]) -> jax.Array:
  """Scatters pooled values to their argmax positions, zeros elsewhere.

  Args:
    x: (N, H/2, W/2, C) pooled values.
    indices: the indices `max_pool_with_argmax` returned with them.
    output_shape: (N, H, W, C), the shape of the pooled input.

  Returns:
    (N, H, W, C) array of x.dtype.
  """
  _check_unpool_shapes(x, indices, output_shape)
  n, h, w, c = output_shape
  batch = jnp.arange(n)[:, None, None]
  channel = jnp.arange(c)[None, None, :]
  flat = jnp.zeros((n, h * w, c), x.dtype).at[
      batch, indices.reshape(n, -1, c), channel].set(
          x.reshape(n, -1, c), unique_indices=True)
  return flat.reshape(n, h, w, c)


def max_unpool_onehot(x: jax.Array, indices: jax.Array,
                      output_shape: Sequence[int]) -> jax.Array:
  """Same result as `max_unpool`, as a select instead of a scatter.

  Every value and index is repeated over its 2x2 window and kept only where the
  index names the pixel; this ran about 10 % faster than the scatter in a full
  SegNet training step on GPU.
  """
  _check_unpool_shapes(x, indices, output_shape)
  _, h, w, _ = output_shape
  is_argmax = _upsample_nearest_2x(indices) == _flat_positions(h, w)
  return jnp.where(is_argmax, _upsample_nearest_2x(x), 0)


def space_to_batch(x: jax.Array, d: int) -> jax.Array:
  """Splits NHWC `x` into d*d interleaved sub-images stacked on the batch axis.

  Sub-image (a, b) holds x[:, a::d, b::d] at batch rows (a*d + b)*N ... +N-1.
  A 3x3 convolution with dilation d and zero padding d on `x` equals a plain
  3x3 convolution with zero padding 1 on every sub-image (when d divides H and
  W), which XLA runs much faster on GPU than `rhs_dilation`.

  Args:
    x: (N, H, W, C) with H and W divisible by d.
    d: the dilation.

  Returns:
    (d*d*N, H/d, W/d, C).
  """
  require_spatial_multiple(x, d, 'space_to_batch')
  n, h, w, c = x.shape
  x = x.reshape(n, h // d, d, w // d, d, c)
  x = x.transpose(2, 4, 0, 1, 3, 5)
  return x.reshape(d * d * n, h // d, w // d, c)


def batch_to_space(x: jax.Array, d: int) -> jax.Array:
  """Inverse of `space_to_batch`: (d*d*N, h, w, C) -> (N, h*d, w*d, C)."""
  dn, h, w, c = x.shape
  if dn % (d * d):
    raise ValueError(f'batch_to_space: batch {dn} is not a multiple of {d * d}')
  n = dn // (d * d)
  x = x.reshape(d, d, n, h, w, c)
  x = x.transpose(2, 3, 0, 4, 1, 5)
  return x.reshape(n, h * d, w * d, c)


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
  """(N, H, W, block*block*C) -> (N, H*block, W*block, C).

  Channel `(a * block + b) * C + f` goes to pixel (y*block + a, x*block + b),
  channel f (TF's DepthToSpace order).
  """
  n, h, w, channels = x.shape
  if channels % (block * block):
    raise ValueError(
        f'depth_to_space: {channels} channels is not a multiple of'
        f' {block * block}')
  c = channels // (block * block)
  x = x.reshape(n, h, w, block, block, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h * block, w * block, c)


def batch_norm(train: bool, dtype: jnp.dtype, name: str | None = None
              ) -> nn.BatchNorm:
  """BatchNorm with the project's settings; statistics in `batch_stats`."""
  return nn.BatchNorm(
      use_running_average=not train,
      momentum=BATCH_NORM_MOMENTUM,
      epsilon=BATCH_NORM_EPSILON,
      dtype=dtype,
      param_dtype=jnp.float32,
      name=name)


class ConvBNReLU(nn.Module):
  """Convolution ('same' padding, no bias: BN's shift replaces it), BN, ReLU."""
  features: int
  dtype: jnp.dtype
  kernel_size: tuple[int, int] = (3, 3)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nn.Conv(
        self.features,
        self.kernel_size,
        padding='SAME',
        use_bias=False,
        kernel_init=CONV_KERNEL_INIT,
        dtype=self.dtype,
        param_dtype=jnp.float32,
        name='conv')(x)
    x = batch_norm(train, self.dtype, name='bn')(x)
    return nn.relu(x)


def classifier(x, num_classes, dtype):
  """The final 1x1 convolution to class logits (with bias), returned as float32.

  Call it inside a compact method: the convolution becomes the caller's 'classifier' submodule.
  """
  x = nn.Conv(num_classes, (1, 1), kernel_init=CONV_KERNEL_INIT, dtype=dtype,
              param_dtype=jnp.float32, name='classifier')(x)
  return x.astype(jnp.float32)
