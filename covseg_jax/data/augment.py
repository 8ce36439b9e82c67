"""On-device augmentation: the paper's random vertical flip and x/y shear, plus optional random
rotation, scaling, elastic deformation and gamma (off in the paper's configs).

Pure jax.numpy, meant to run inside `jax.jit`. Each sample draws from its own PRNG
key, so a sample's augmentation does not depend on the batch it is in or on how the
batch is sharded.
"""
import jax
import jax.numpy as jnp


def sample_params(key, flip=True, shear_degrees=10.0, rotation_degrees=0.0, scale_range=0.0):
  """Draws one sample's augmentation from its key.

  Returns:
    (flip, shear_x, shear_y, rotation, scale): a bool, true with probability 0.5 when `flip`;
    two shear angles in radians, each uniform over +-shear_degrees degrees; a rotation angle in
    radians, uniform over +-rotation_degrees; a zoom factor, uniform in 1 +- scale_range.
    rotation is None when rotation_degrees is 0, scale None when scale_range is 0: the paper's
    augmentation then runs exactly as without them (same draws, same operations).
  """
  flip_key, shear_key = jax.random.split(key)
  do_flip = jax.random.bernoulli(flip_key, 0.5) if flip else jnp.bool_(False)
  shear = jnp.deg2rad(shear_degrees) * jax.random.uniform(shear_key, (2,), minval=-1.0,
                                                          maxval=1.0)
  rotation = scale = None
  if rotation_degrees:
    rotation = jnp.deg2rad(rotation_degrees) * jax.random.uniform(
        jax.random.fold_in(key, 1), minval=-1.0, maxval=1.0)
  if scale_range:
    scale = 1.0 + scale_range * jax.random.uniform(jax.random.fold_in(key, 2), minval=-1.0,
                                                   maxval=1.0)
  return do_flip, shear[0], shear[1], rotation, scale


def random_gamma(key, image, gamma_range):
  """Raises one image's intensities, rescaled to [0, 1] by its own minimum and maximum, to a
  random power g and maps them back to their range: the minimum and maximum stay, the tones
  between them get darker (g > 1) or brighter (g < 1). log g is uniform in
  [-log(1 + gamma_range), log(1 + gamma_range)], so 0.5 draws g from [0.67, 1.5].
  Works in any intensity scale (8-bit, centred, z-scored); a constant image stays as it is.
  """
  log_range = jnp.log1p(gamma_range)
  gamma = jnp.exp(jax.random.uniform(key, minval=-log_range, maxval=log_range))
  low, high = jnp.min(image), jnp.max(image)
  span = jnp.where(high > low, high - low, 1.0)
  unit = jnp.clip((image - low) / span, 0.0, 1.0)
  return (low + span * unit ** gamma).astype(image.dtype)


ELASTIC_GRID = 5  # Control points per side of the elastic deformation's displacement field.


def random_displacement(key, height, width, elastic):
  """A smooth random displacement field (rows, cols), each (H, W) in pixels.

  Each of a 5x5 grid of control points spread over the image moves by a normal draw with standard
  deviation `elastic` times the image's side, in each direction; the field between them is
  their bicubic interpolation (jax.image.resize), so that neighbouring pixels move together and
  the deformation bends structures rather than scattering pixels. A fraction of the side, not
  pixels, so that one value deforms a 128x128 and a 256x256 image alike.
  """
  control = jax.random.normal(key, (ELASTIC_GRID, ELASTIC_GRID, 2))
  control = control * elastic * jnp.array([height, width], jnp.float32)
  field = jax.image.resize(control, (height, width, 2), method='cubic')
  return field[..., 0], field[..., 1]


def _source_coordinates(height, width, shear_x, shear_y, rotation, scale):
  """Input (row, col) sampled by each output pixel of the warp about the centre.

  Forward map in (x = col, y = row) centred coordinates: x' = x + tan(shear_x) y,
  then y' = y + tan(shear_y) x', then a rotation by `rotation` and a zoom by `scale` (either
  None: none). The inverse is applied to the output grid.
  """
  centre_row, centre_col = (height - 1) / 2, (width - 1) / 2
  out_rows = jnp.arange(height, dtype=jnp.float32)[:, None] - centre_row
  out_cols = jnp.arange(width, dtype=jnp.float32)[None, :] - centre_col
  if rotation is not None:
    cos, sin = jnp.cos(rotation), jnp.sin(rotation)
    out_rows, out_cols = cos * out_rows - sin * out_cols, sin * out_rows + cos * out_cols
  if scale is not None:
    out_rows, out_cols = out_rows / scale, out_cols / scale
  rows = out_rows - jnp.tan(shear_y) * out_cols
  cols = out_cols - jnp.tan(shear_x) * rows
  return (jnp.broadcast_to(rows + centre_row, (height, width)),
          jnp.broadcast_to(cols + centre_col, (height, width)))


def _gather(array, rows, cols):
  """array[rows, cols] for integer coordinates; 0 where they fall outside."""
  height, width = array.shape[:2]
  inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
  values = array[jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1)]
  inside = inside.reshape(inside.shape + (1,) * (array.ndim - 2))
  return jnp.where(inside, values, jnp.zeros((), array.dtype))


def warp(array, flip, shear_x, shear_y, rotation, scale, order, displacement=None):
  """Flips (reverses rows), then shears, rotates, zooms and deforms one (H, W) or (H, W, C) array.

  Args:
    array: the image or label map.
    flip: bool scalar, whether to reverse the rows (MATLAB's RandYReflection).
    shear_x, shear_y: shear angles in radians about the image centre.
    rotation: rotation angle in radians about the image centre, or None.
    scale: zoom factor about the image centre (2 doubles sizes), or None.
    order: 1 samples bilinearly (images), 0 takes the nearest pixel (labels).
      Outside the input, both give 0.
    displacement: None, or (rows, cols) of `random_displacement`: each output pixel samples
      the input that much further away than the flip, shear, rotation and zoom alone say.

  Returns:
    The warped array, same shape and dtype.
  """
  array = jnp.where(flip, array[::-1], array)
  height, width = array.shape[:2]
  rows, cols = _source_coordinates(height, width, shear_x, shear_y, rotation, scale)
  if displacement is not None:
    rows, cols = rows + displacement[0], cols + displacement[1]
  if order == 0:
    return _gather(array, jnp.round(rows).astype(jnp.int32), jnp.round(cols).astype(jnp.int32))
  if order != 1:
    raise ValueError(f'order must be 0 or 1, got {order}')
  row0, col0 = jnp.floor(rows), jnp.floor(cols)
  row_frac, col_frac = rows - row0, cols - col0
  row0, col0 = row0.astype(jnp.int32), col0.astype(jnp.int32)
  extra = (1,) * (array.ndim - 2)
  result = jnp.zeros(array.shape, jnp.result_type(array.dtype, jnp.float32))
  for d_row, row_weight in ((0, 1 - row_frac), (1, row_frac)):
    for d_col, col_weight in ((0, 1 - col_frac), (1, col_frac)):
      weight = (row_weight * col_weight).reshape(rows.shape + extra)
      result += weight * _gather(array, row0 + d_row, col0 + d_col)
  return result.astype(array.dtype)


def augment(keys, images, labels, flip=True, shear_degrees=10.0, rotation_degrees=0.0,
            scale_range=0.0, elastic=0.0, gamma_range=0.0):
  """Randomly changes each image's gamma, then flips, shears, rotates, zooms and deforms images
  and labels alike.

  Args:
    keys: (B,) per-sample PRNG keys (typed keys or raw uint32 (B, 2)).
    images: (B, H, W, C) float images, sampled bilinearly.
    labels: (B, H, W) integer labels, sampled by nearest neighbour.
    flip: whether to flip top-bottom with probability 0.5.
    shear_degrees: shear angles in x and y are uniform in [-shear_degrees, shear_degrees].
    rotation_degrees: the rotation angle is uniform in [-rotation_degrees, rotation_degrees].
    scale_range: the zoom factor is uniform in [1 - scale_range, 1 + scale_range].
    elastic: `random_displacement`'s; 0 (the paper's) draws and changes nothing.
    gamma_range: `random_gamma`'s; 0 (the paper's) draws and changes nothing, so the other
      draws and the images are exactly those without it.

  Returns:
    (images, labels) with the input shapes and dtypes; pixels coming from outside
    the input are 0 in both.
  """
  def one(key, image, label):
    if gamma_range:
      image = random_gamma(jax.random.fold_in(key, 3), image, gamma_range)
    params = sample_params(key, flip, shear_degrees, rotation_degrees, scale_range)
    displacement = None
    if elastic:
      displacement = random_displacement(jax.random.fold_in(key, 4), *label.shape, elastic)
    return (warp(image, *params, order=1, displacement=displacement),
            warp(label, *params, order=0, displacement=displacement))

  return jax.vmap(one)(keys, images, labels)
