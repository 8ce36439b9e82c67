"""Segmentation metrics: confusion matrices, class metrics, lung metrics.

Counting pixels is the heavy part and runs as one jitted JAX call over a whole
batch. The ratios are then taken in NumPy float64 from the integer counts, so
they are exact however JAX's x64 flag is set (the lung metrics' intensity sums
are float32 unless it is on).

NaN policy. A ratio whose denominator is zero is undefined and reported as NaN,
never as 0 or 1: e.g. Dice, sensitivity and precision of a class absent from
both truth and prediction (its specificity stays defined). Aggregates treat NaN
in one of two ways:

* Per-image metrics (Tables 3 and 5 of Saood & Hatem 2021): `summarize` takes
  mean and std over the images where the value is defined and reports how many
  those are ("Dice of C3: mean over the 25 images where C3 is in the truth or
  the prediction").
* Pooled metrics (Tables 4 and 6): computed from the confusion matrix summed
  over all images (`pooled_confusion_matrix`), never by averaging per-image
  values.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

def _check_batched(name, array, reference_shape):
  """Raises ValueError unless `array` is (N, H, W[, D]) of the given shape."""
  if array.ndim < 3:
    raise ValueError(
        f'{name} must have a batch axis, (N, H, W) or (N, H, W, D); got shape '
        f'{array.shape}. Use x[None] for a single image.')
  if array.shape != reference_shape:
    raise ValueError(
        f'{name} has shape {array.shape}, expected {reference_shape}.')


def _check_discrete(name, array):
  """Raises ValueError unless `array` holds integers or booleans."""
  if not (jnp.issubdtype(array.dtype, jnp.integer) or array.dtype == bool):
    raise ValueError(f'{name} must hold integer class ids; got {array.dtype}.')


@functools.partial(jax.jit, static_argnames='num_classes')
def confusion_matrices(labels, predictions, num_classes, mask=None):
  """One confusion matrix per image of a batch.

  Args:
    labels: (N, H, W) or (N, H, W, D) integer true classes. A single image
      needs its batch axis (x[None]): a 2D input raises ValueError rather than
      being read as a batch of rows.
    predictions: predicted classes, same shape as `labels`.
    num_classes: number of classes C (static).
    mask: optional boolean array, same shape; only pixels where it is True
      count.

  Returns:
    int32 (N, C, C); entry [n, t, p] counts the pixels of image n with true
    class t predicted as p (row = truth, column = prediction). Pixels whose
    label or prediction lies outside [0, C) (e.g. an ignore value 255) are not
    counted. Counts are exact up to 2**31 - 1 pixels per image.
  """
  _check_discrete('labels', labels)
  _check_discrete('predictions', predictions)
  _check_batched('labels', labels, labels.shape)
  _check_batched('predictions', predictions, labels.shape)
  if mask is not None:
    _check_batched('mask', mask, labels.shape)
  n = labels.shape[0]
  labels = labels.reshape(n, -1)
  predictions = predictions.reshape(n, -1)
  inside = True if mask is None else mask.reshape(n, -1).astype(bool)

  def count_pair(pair):
    true_class, predicted_class = pair
    hits = (labels == true_class) & (predictions == predicted_class) & inside
    return jnp.sum(hits, axis=-1, dtype=jnp.int32)

  # A compiled loop over the C*C (true, predicted) pairs, each one fused
  # compare-and-sum over the pixels: exact, deterministic, no scatter, and
  # memory stays at the input's size. Comparing against all pairs in one
  # broadcast makes XLA's CPU backend materialise (N, C*C, pixels) int32.
  true_classes, predicted_classes = jnp.divmod(
      jnp.arange(num_classes * num_classes, dtype=jnp.int32), num_classes)
  counts = jax.lax.map(count_pair, (true_classes, predicted_classes))
  return counts.T.reshape(n, num_classes, num_classes)


def pooled_confusion_matrix(confusion):
  """Sums (N, C, C) per-image confusion matrices into one int64 (C, C) matrix.

  int64 because a whole test set can exceed the int32 range.
  """
  confusion = np.asarray(confusion)
  if confusion.ndim != 3 or confusion.shape[1] != confusion.shape[2]:
    raise ValueError(f'expected (N, C, C) confusion matrices; got shape '
                     f'{confusion.shape}.')
  return confusion.sum(axis=0, dtype=np.int64)


def _ratio(numerator, denominator):
  """numerator / denominator in float64; NaN where the denominator is zero."""
  numerator = np.asarray(numerator, dtype=np.float64)
  denominator = np.asarray(denominator, dtype=np.float64)
  safe = np.where(denominator == 0, 1.0, denominator)
  return np.where(denominator == 0, np.nan, numerator / safe)


def class_metrics(confusion):
  """One-vs-rest metrics per class from confusion matrices.

  Args:
    confusion: (C, C) (e.g. pooled) or (N, C, C) (per image) counts, row =
      truth, column = prediction.

  Returns:
    A dict of NumPy arrays of shape (C,) or (N, C): 'tp', 'fp', 'tn', 'fn'
    (int64) and the float64 ratios 'sensitivity' TP/(TP+FN), 'specificity'
    TN/(TN+FP), 'precision' TP/(TP+FP), 'gmean' sqrt(sens*spec), 'dice'
    2TP/(2TP+FP+FN), 'f2' 5PR/(4P+R), 'jaccard' TP/(TP+FP+FN); plus
    'global_accuracy' trace/total of shape () or (N,). Undefined ratios are
    NaN; F2 is NaN when P or R is, and 0 when P = R = 0.
  """
  confusion = np.asarray(confusion, dtype=np.int64)
  if confusion.ndim not in (2, 3) or confusion.shape[-1] != confusion.shape[-2]:
    raise ValueError(f'expected (C, C) or (N, C, C) confusion matrices; got '
                     f'shape {confusion.shape}.')
  tp = np.diagonal(confusion, axis1=-2, axis2=-1)
  fn = confusion.sum(axis=-1) - tp
  fp = confusion.sum(axis=-2) - tp
  total = confusion.sum(axis=(-2, -1))
  tn = total[..., None] - tp - fp - fn
  sensitivity = _ratio(tp, tp + fn)
  precision = _ratio(tp, tp + fp)
  specificity = _ratio(tn, tn + fp)
  # 5PR/(4P+R) = 5TP/(5TP+4FN+FP) when P and R are defined; the count form
  # gives 0 rather than 0/0 when P = R = 0.
  f2 = np.where(np.isnan(precision) | np.isnan(sensitivity), np.nan,
                _ratio(5 * tp, 5 * tp + 4 * fn + fp))
  return {
      'tp': tp,
      'fp': fp,
      'tn': tn,
      'fn': fn,
      'sensitivity': sensitivity,
      'specificity': specificity,
      'precision': precision,
      'gmean': np.sqrt(sensitivity * specificity),
      'dice': _ratio(2 * tp, 2 * tp + fp + fn),
      'f2': f2,
      'jaccard': _ratio(tp, tp + fp + fn),
      'global_accuracy': _ratio(np.trace(confusion, axis1=-2, axis2=-1), total),
  }


def summarize(per_image, ddof=1):
  """Mean and std over images (axis 0) of the defined (non-NaN) values.

  Args:
    per_image: (N,) or (N, C) values, NaN where undefined.
    ddof: delta degrees of freedom of the std; 1 (the sample std) is the
      default of MATLAB's std, the paper's tooling.

  Returns:
    {'mean', 'std', 'count'} of shape () or (C,); 'count' is the number of
    images where the value is defined. Mean is NaN when count is 0, std when
    count <= ddof.
  """
  values = np.asarray(per_image, dtype=np.float64)
  defined = ~np.isnan(values)
  count = defined.sum(axis=0)
  mean = _ratio(np.where(defined, values, 0.0).sum(axis=0), count)
  squares = np.where(defined, values - mean, 0.0) ** 2
  variance = _ratio(squares.sum(axis=0), np.maximum(count - ddof, 0))
  return {'mean': mean, 'std': np.sqrt(variance), 'count': count}


# Regions of `_lung_sums`: 1 * reference + 2 * prediction.
_TN, _FN, _FP, _TP = range(4)


@jax.jit
def _lung_sums(reference, prediction, image, mask):
  """Voxel count, sum of I and sum of |I| per image and region, each (N, 4)."""
  n = reference.shape[0]
  region = ((reference.reshape(n, -1) != 0).astype(jnp.int8)
            + 2 * (prediction.reshape(n, -1) != 0).astype(jnp.int8))
  if mask is not None:
    region = jnp.where(mask.reshape(n, -1).astype(bool), region, -1)
  image = image.reshape(n, -1).astype(
      jnp.promote_types(image.dtype, jnp.float32))

  def region_sums(k):
    inside = region == k
    return (jnp.sum(inside, axis=-1, dtype=jnp.int32),
            jnp.sum(jnp.where(inside, image, 0), axis=-1),
            jnp.sum(jnp.where(inside, jnp.abs(image), 0), axis=-1))

  # A compiled loop over the regions, for the same memory reason as in
  # `confusion_matrices`. Per-region sums also let the mean differences be
  # formed from the FP and FN parts instead of from two large totals.
  return tuple(x.T for x in jax.lax.map(region_sums,
                                        jnp.arange(4, dtype=jnp.int8)))


def lung_metrics(reference, prediction, image, mask=None):
  """Lung segmentation metrics of Gholamiankhah et al., per image.

  With R the reference mask, P the predicted one, I the intensities and
  V = |R| the reference lung volume in voxels:

  * 'dsc' 2TP/(2TP+FP+FN), 'jaccard' TP/(TP+FP+FN).
  * 'fp_ratio' FP/(FP+TN), 'fn_ratio' FN/(FN+TP).
  * 'me' = sum_i (I_p(i) - I_r(i)) / V and 'mae' = sum_i |I_p(i) - I_r(i)| / V
    with I_p = I*P and I_r = I*R the image masked by each lung mask (the
    paper's Eqs. 3-4, whose text names I_r and I_p the reference and
    predicted lung masks, V the voxels of the lung, and reports ME/MAE in HU).
    Only FP and FN voxels contribute. With I = 1 everywhere they reduce to
    the mask-only forms (|P|-|R|)/|R| and (FP+FN)/|R|.
  * 'relative_mean_intensity_difference' (mean(I in P) - mean(I in R)) /
    mean(I in R) and 'relative_volume_difference' (|P|-|R|)/|R|, as fractions
    (the paper prints percent), plus 'abs_relative_mean_intensity_difference'
    and 'abs_relative_volume_difference', their absolute values.
  * 'mean_intensity_reference' mean(I in R), 'mean_intensity_prediction'
    mean(I in P).
  * 'tp', 'fp', 'tn', 'fn' voxel counts (int64).

  Every value is NaN where its denominator is zero: an empty R leaves the
  ratios over |R| ('fn_ratio', 'me', 'mae', the relative differences)
  undefined, and 'dsc'/'jaccard' too when P is empty as well; an empty P
  leaves 'mean_intensity_prediction' and the mean intensity differences
  undefined.

  Args:
    reference: (N, H, W) or (N, H, W, D) masks; nonzero = lung (so left/right
      labels work as they are).
    prediction: predicted masks, same shape.
    image: intensities, same shape (e.g. HU). Sums are accumulated in float32
      unless JAX's x64 mode is on.
    mask: optional boolean array, same shape; voxels outside it are ignored
      by every metric (e.g. a body mask, which bounds TN).

  Returns:
    A dict of NumPy arrays of shape (N,).
  """
  _check_batched('reference', reference, reference.shape)
  for name, array in (('prediction', prediction), ('image', image),
                      ('mask', mask)):
    if array is not None:
      _check_batched(name, array, reference.shape)
  counts, sums, magnitudes = (
      np.asarray(x) for x in _lung_sums(reference, prediction, image, mask))
  tp, fp, fn, tn = counts[:, [_TP, _FP, _FN, _TN]].astype(np.int64).T
  sum_tp, sum_fp, sum_fn = sums[:, [_TP, _FP, _FN]].astype(np.float64).T
  abs_fp, abs_fn = magnitudes[:, [_FP, _FN]].astype(np.float64).T
  volume_r, volume_p = tp + fn, tp + fp
  mean_r = _ratio(sum_tp + sum_fn, volume_r)
  mean_p = _ratio(sum_tp + sum_fp, volume_p)
  # mean(P) - mean(R) = S_fp/|P| - S_fn/|R| + S_tp (|R| - |P|) / (|P| |R|):
  # avoids subtracting two nearly equal means.
  mean_difference = (_ratio(sum_fp, volume_p) - _ratio(sum_fn, volume_r)
                     + sum_tp * _ratio(fn - fp, volume_p * volume_r))
  relative_mean = _ratio(mean_difference, mean_r)
  relative_volume = _ratio(volume_p - volume_r, volume_r)
  return {
      'tp': tp,
      'fp': fp,
      'tn': tn,
      'fn': fn,
      'dsc': _ratio(2 * tp, 2 * tp + fp + fn),
      'jaccard': _ratio(tp, tp + fp + fn),
      'fp_ratio': _ratio(fp, fp + tn),
      'fn_ratio': _ratio(fn, fn + tp),
      'me': _ratio(sum_fp - sum_fn, volume_r),
      'mae': _ratio(abs_fp + abs_fn, volume_r),
      'relative_mean_intensity_difference': relative_mean,
      'abs_relative_mean_intensity_difference': np.abs(relative_mean),
      'relative_volume_difference': relative_volume,
      'abs_relative_volume_difference': np.abs(relative_volume),
      'mean_intensity_reference': mean_r,
      'mean_intensity_prediction': mean_p,
  }
