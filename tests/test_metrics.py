"""Tests for covseg_jax.metrics against brute-force NumPy references."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from covseg_jax import metrics

RATIOS = ('sensitivity', 'specificity', 'precision', 'gmean', 'dice', 'f2',
          'jaccard')


def _div(numerator, denominator):
  return numerator / denominator if denominator else math.nan


def reference_confusion(labels, predictions, num_classes, mask=None):
  """Pixel counts by boolean masks, one image and class pair at a time."""
  if mask is None:
    mask = np.ones(labels.shape, bool)
  out = np.zeros((labels.shape[0], num_classes, num_classes), np.int64)
  for n in range(labels.shape[0]):
    for t in range(num_classes):
      for p in range(num_classes):
        out[n, t, p] = np.sum((labels[n] == t) & (predictions[n] == p)
                              & mask[n])
  return out


def reference_class_metrics(confusion):
  """Metrics of one (C, C) matrix, one class at a time, in Python floats."""
  confusion = np.asarray(confusion, np.int64)
  total = int(confusion.sum())
  out = {key: [] for key in RATIOS}
  for c in range(confusion.shape[0]):
    tp = int(confusion[c, c])
    fn = int(confusion[c].sum()) - tp
    fp = int(confusion[:, c].sum()) - tp
    tn = total - tp - fn - fp
    sens, spec, prec = _div(tp, tp + fn), _div(tn, tn + fp), _div(tp, tp + fp)
    if math.isnan(sens) or math.isnan(prec):
      f2 = math.nan
    elif sens == prec == 0:
      f2 = 0.0
    else:
      f2 = 5 * prec * sens / (4 * prec + sens)
    out['sensitivity'].append(sens)
    out['specificity'].append(spec)
    out['precision'].append(prec)
    out['gmean'].append(math.sqrt(sens * spec))
    out['dice'].append(_div(2 * tp, 2 * tp + fp + fn))
    out['f2'].append(f2)
    out['jaccard'].append(_div(tp, tp + fp + fn))
  out = {key: np.array(value) for key, value in out.items()}
  out['global_accuracy'] = np.array(_div(int(np.trace(confusion)), total))
  return out


def _random_batch(seed, shape, num_classes, masked):
  rng = np.random.default_rng(seed)
  # Skewed class frequencies, so some classes are rare or absent per image.
  probabilities = np.geomspace(1, 0.05, num_classes)
  probabilities /= probabilities.sum()
  labels = rng.choice(num_classes, size=shape, p=probabilities)
  predictions = np.where(rng.random(shape) < 0.6, labels,
                         rng.integers(0, num_classes, shape))
  mask = rng.random(shape) < 0.7 if masked else None
  return labels.astype(np.int32), predictions.astype(np.int32), mask


def _assert_close_nan(actual, expected, rtol=1e-12, atol=0.0):
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol,
                             equal_nan=True)


@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('num_classes', [2, 4])
@pytest.mark.parametrize('shape', [(3, 9, 7), (2, 5, 6, 4), (1, 1, 1)])
def test_confusion_and_class_metrics_match_reference(shape, num_classes,
                                                     masked):
  labels, predictions, mask = _random_batch(10 * len(shape) + num_classes,
                                            shape, num_classes, masked)
  confusion = metrics.confusion_matrices(labels, predictions, num_classes,
                                         mask=mask)
  expected = reference_confusion(labels, predictions, num_classes, mask)
  assert confusion.dtype == jnp.int32
  np.testing.assert_array_equal(confusion, expected)

  per_image = metrics.class_metrics(confusion)
  pooled = metrics.class_metrics(metrics.pooled_confusion_matrix(confusion))
  assert per_image['dice'].shape == (shape[0], num_classes)
  assert per_image['global_accuracy'].shape == (shape[0],)
  assert pooled['dice'].shape == (num_classes,)
  assert pooled['global_accuracy'].shape == ()
  for n in range(shape[0]):
    reference = reference_class_metrics(expected[n])
    for key, value in reference.items():
      _assert_close_nan(per_image[key][n], value)
  for key, value in reference_class_metrics(expected.sum(0)).items():
    _assert_close_nan(pooled[key], value)


def test_counts_are_one_vs_rest():
  confusion = np.array([[5, 1, 0], [2, 7, 3], [0, 4, 9]])
  result = metrics.class_metrics(confusion)
  np.testing.assert_array_equal(result['tp'], [5, 7, 9])
  np.testing.assert_array_equal(result['fn'], [1, 5, 4])
  np.testing.assert_array_equal(result['fp'], [2, 5, 3])
  np.testing.assert_array_equal(result['tn'], [23, 14, 15])


def test_known_numbers_segnet_binary():
  # The paper's binary test set (84,401 infected, 1,095,247 healthy pixels)
  # with SegNet's reported sensitivity 0.956 and specificity 0.954.
  tp, fn = 80_687, 3_714
  tn, fp = 1_044_866, 50_381
  result = metrics.class_metrics(np.array([[tn, fp], [fn, tp]]))
  sens, spec = tp / (tp + fn), tn / (tn + fp)
  prec = tp / (tp + fp)
  assert result['sensitivity'][1] == pytest.approx(sens, rel=1e-12)
  assert result['specificity'][1] == pytest.approx(spec, rel=1e-12)
  assert result['gmean'][1] == pytest.approx(math.sqrt(sens * spec),
                                             rel=1e-12)
  assert result['dice'][1] == pytest.approx(2 * tp / (2 * tp + fp + fn),
                                            rel=1e-12)
  assert result['f2'][1] == pytest.approx(5 * prec * sens / (4 * prec + sens),
                                          rel=1e-12)
  # ...and those land on the paper's rounded Table 4 row.
  for key, paper in (('sensitivity', 0.956), ('specificity', 0.954),
                     ('gmean', 0.955), ('dice', 0.750), ('f2', 0.861)):
    assert result[key][1] == pytest.approx(paper, abs=2e-3), key
  # Binary: class 0's sensitivity is class 1's specificity.
  assert result['sensitivity'][0] == result['specificity'][1]


def test_absent_class_is_nan_not_zero_or_one():
  labels = np.array([[[0, 0], [1, 1]]])
  predictions = np.array([[[0, 1], [1, 1]]])
  result = metrics.class_metrics(
      metrics.confusion_matrices(labels, predictions, 3))
  for key in ('sensitivity', 'precision', 'gmean', 'dice', 'f2', 'jaccard'):
    assert np.isnan(result[key][0, 2]), key
  assert result['specificity'][0, 2] == 1.0
  assert result['dice'][0, 1] == pytest.approx(0.8)


def test_class_present_only_in_prediction():
  labels = np.zeros((1, 2, 2), np.int32)
  predictions = np.array([[[0, 1], [0, 0]]])
  result = metrics.class_metrics(
      metrics.confusion_matrices(labels, predictions, 2))
  assert np.isnan(result['sensitivity'][0, 1])
  assert result['precision'][0, 1] == 0.0
  assert result['dice'][0, 1] == 0.0
  assert np.isnan(result['f2'][0, 1])  # R undefined.


def test_all_one_class_image():
  labels = np.full((2, 4, 4), 1)
  result = metrics.class_metrics(metrics.confusion_matrices(labels, labels, 2))
  np.testing.assert_array_equal(result['dice'][:, 1], 1.0)
  np.testing.assert_array_equal(result['sensitivity'][:, 1], 1.0)
  # No negatives for class 1: its specificity has nothing to measure.
  assert np.all(np.isnan(result['specificity'][:, 1]))
  assert np.all(np.isnan(result['dice'][:, 0]))
  np.testing.assert_array_equal(result['specificity'][:, 0], 1.0)
  np.testing.assert_array_equal(result['global_accuracy'], 1.0)


def test_single_pixel_image():
  result = metrics.class_metrics(
      metrics.confusion_matrices(np.array([[[1]]]), np.array([[[0]]]), 2))
  assert result['global_accuracy'][0] == 0.0
  assert result['sensitivity'][0, 1] == 0.0
  assert np.isnan(result['precision'][0, 1])
  assert np.isnan(result['f2'][0, 1])
  assert result['dice'][0, 1] == 0.0
  assert np.isnan(result['sensitivity'][0, 0])
  assert result['precision'][0, 0] == 0.0


def test_perfect_prediction():
  labels, _, _ = _random_batch(1, (4, 8, 8), 4, masked=False)
  result = metrics.class_metrics(metrics.confusion_matrices(labels, labels, 4))
  present = np.stack([np.any(labels == c, axis=(1, 2)) for c in range(4)], -1)
  for key in ('dice', 'sensitivity', 'precision', 'f2', 'jaccard', 'gmean'):
    np.testing.assert_array_equal(result[key][present], 1.0)
    assert np.all(np.isnan(result[key][~present]))
  np.testing.assert_array_equal(result['specificity'], 1.0)
  np.testing.assert_array_equal(result['global_accuracy'], 1.0)


def test_completely_wrong_prediction():
  labels, _, _ = _random_batch(2, (3, 8, 8), 4, masked=False)
  result = metrics.class_metrics(
      metrics.confusion_matrices(labels, (labels + 1) % 4, 4))
  np.testing.assert_array_equal(result['global_accuracy'], 0.0)
  defined = ~np.isnan(result['precision']) & ~np.isnan(result['sensitivity'])
  assert defined.any()
  # P = R = 0 are both defined there: F2 is 0, not 0/0.
  np.testing.assert_array_equal(result['f2'][defined], 0.0)
  np.testing.assert_array_equal(result['dice'][~np.isnan(result['dice'])], 0.0)


def test_out_of_range_values_and_mask_are_not_counted():
  labels = np.array([[[0, 1, 255], [1, 0, 2]]], np.uint8)
  predictions = np.array([[[0, 1, 1], [-1, 1, 0]]], np.int32)
  mask = np.array([[[True, True, True], [True, False, True]]])
  confusion = metrics.confusion_matrices(labels, predictions, 2, mask=mask)
  np.testing.assert_array_equal(confusion, [[[1, 0], [0, 1]]])


def test_bool_predictions():
  labels = np.array([[[0, 1], [1, 1]]])
  predictions = np.array([[[False, True], [False, True]]])
  np.testing.assert_array_equal(
      metrics.confusion_matrices(labels, predictions, 2), [[[1, 0], [1, 2]]])


def test_input_validation():
  with pytest.raises(ValueError, match='batch axis'):
    metrics.confusion_matrices(np.zeros((4, 4), int), np.zeros((4, 4), int), 2)
  with pytest.raises(ValueError, match='shape'):
    metrics.confusion_matrices(np.zeros((1, 4, 4), int),
                               np.zeros((1, 4, 5), int), 2)
  with pytest.raises(ValueError, match='integer'):
    metrics.confusion_matrices(np.zeros((1, 4, 4), np.float32),
                               np.zeros((1, 4, 4), int), 2)
  with pytest.raises(ValueError):
    metrics.class_metrics(np.zeros((2, 3)))
  with pytest.raises(ValueError):
    metrics.pooled_confusion_matrix(np.zeros((2, 2)))
  with pytest.raises(ValueError, match='batch axis'):
    metrics.lung_metrics(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)))


def test_confusion_matrices_is_jitted_and_traces_once_per_shape():
  assert hasattr(metrics.confusion_matrices, 'lower')
  if not hasattr(metrics.confusion_matrices, '_cache_size'):
    pytest.skip('this jax has no jit cache-size query')
  before = metrics.confusion_matrices._cache_size()
  labels = np.zeros((2, 6, 13), np.int32)
  for _ in range(3):
    metrics.confusion_matrices(labels, labels, 3)
  assert metrics.confusion_matrices._cache_size() == before + 1
  metrics.confusion_matrices(labels[:1], labels[:1], 3)
  assert metrics.confusion_matrices._cache_size() == before + 2


def test_pooling_sums_in_int64():
  confusion = np.full((3, 2, 2), 2**30, np.int32)
  confusion[1, 0, 1] = 5
  pooled = metrics.pooled_confusion_matrix(confusion)
  assert pooled.dtype == np.int64
  np.testing.assert_array_equal(pooled, confusion.astype(np.int64).sum(0))
  assert pooled[0, 0] == 3 * 2**30  # Past the int32 range.
  result = metrics.class_metrics(pooled)
  assert result['tp'].dtype == np.int64
  assert result['global_accuracy'] == 6 * 2**30 / (11 * 2**30 + 5)


def test_summarize_ignores_nan_and_counts_defined():
  values = np.array([[0.5, np.nan, np.nan],
                     [0.7, 0.2, np.nan],
                     [0.9, 0.4, np.nan]])
  summary = metrics.summarize(values)
  np.testing.assert_array_equal(summary['count'], [3, 2, 0])
  _assert_close_nan(summary['mean'], [0.7, 0.3, np.nan])
  _assert_close_nan(summary['std'], [np.std([0.5, 0.7, 0.9], ddof=1),
                                     np.std([0.2, 0.4], ddof=1), np.nan])
  population = metrics.summarize(values, ddof=0)
  _assert_close_nan(population['std'],
                    [np.std([0.5, 0.7, 0.9]), 0.1, np.nan])
  single = metrics.summarize(np.array([0.3, np.nan]))
  assert single['mean'] == 0.3 and single['count'] == 1
  assert np.isnan(single['std'])


def reference_lung_metrics(reference, prediction, image, mask=None):
  """Lung metrics one image at a time, in float64."""
  if mask is None:
    mask = np.ones(reference.shape, bool)
  keys = ('dsc', 'jaccard', 'fp_ratio', 'fn_ratio', 'me', 'mae',
          'relative_mean_intensity_difference', 'relative_volume_difference')
  out = {key: [] for key in keys}
  for n in range(reference.shape[0]):
    r = (reference[n] != 0) & mask[n]
    p = (prediction[n] != 0) & mask[n]
    i = image[n].astype(np.float64)
    tp, fp = int(np.sum(r & p)), int(np.sum(~r & p & mask[n]))
    fn, tn = int(np.sum(r & ~p)), int(np.sum(~r & ~p & mask[n]))
    masked_p, masked_r = i * p, i * r  # I_p and I_r of the paper.
    mean_p = i[p].mean() if p.any() else math.nan
    mean_r = i[r].mean() if r.any() else math.nan
    out['dsc'].append(_div(2 * tp, 2 * tp + fp + fn))
    out['jaccard'].append(_div(tp, tp + fp + fn))
    out['fp_ratio'].append(_div(fp, fp + tn))
    out['fn_ratio'].append(_div(fn, fn + tp))
    out['me'].append(_div(np.sum(masked_p - masked_r), int(r.sum())))
    out['mae'].append(_div(np.sum(np.abs(masked_p - masked_r)), int(r.sum())))
    out['relative_mean_intensity_difference'].append(
        (mean_p - mean_r) / mean_r)
    out['relative_volume_difference'].append(
        _div(int(p.sum()) - int(r.sum()), int(r.sum())))
  return {key: np.array(value) for key, value in out.items()}


def _random_lungs(seed, shape):
  rng = np.random.default_rng(seed)
  reference = rng.random(shape) < 0.4
  flip = rng.random(shape) < 0.15
  prediction = reference ^ flip
  # HU-like intensities: both signs, so |I| in the MAE matters.
  image = rng.normal(-500, 400, shape).astype(np.float32)
  return reference, prediction, image


@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('shape', [(3, 12, 10), (2, 6, 5, 4)])
def test_lung_metrics_match_reference(shape, masked):
  reference, prediction, image = _random_lungs(len(shape), shape)
  mask = np.random.default_rng(7).random(shape) < 0.8 if masked else None
  result = metrics.lung_metrics(reference, prediction, image, mask=mask)
  expected = reference_lung_metrics(reference, prediction, image, mask)
  for key in ('dsc', 'jaccard', 'fp_ratio', 'fn_ratio',
              'relative_volume_difference'):
    _assert_close_nan(result[key], expected[key])
  # Intensity sums run in float32.
  for key in ('me', 'mae'):
    _assert_close_nan(result[key], expected[key], rtol=1e-5, atol=1e-3)
  _assert_close_nan(result['relative_mean_intensity_difference'],
                    expected['relative_mean_intensity_difference'],
                    rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(
      result['abs_relative_volume_difference'],
      np.abs(result['relative_volume_difference']))
  np.testing.assert_array_equal(
      result['abs_relative_mean_intensity_difference'],
      np.abs(result['relative_mean_intensity_difference']))
  assert result['dsc'].shape == (shape[0],)


def test_lung_metrics_edge_cases():
  shape = (4, 6, 6)
  reference = np.zeros(shape, np.uint8)
  prediction = np.zeros(shape, np.uint8)
  reference[0, 1:4, 1:4] = 2  # Left/right labels count as lung.
  prediction[0, 1:4, 1:4] = 1  # 0: perfect.
  reference[1, 1:4, 1:4] = 1  # 1: empty prediction.
  prediction[2, 1:4, 1:4] = 1  # 2: empty reference. 3: both empty.
  image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) - 50
  result = metrics.lung_metrics(reference, prediction, image)

  assert result['dsc'][0] == 1.0 and result['jaccard'][0] == 1.0
  for key in ('me', 'mae', 'fp_ratio', 'fn_ratio',
              'relative_mean_intensity_difference',
              'relative_volume_difference'):
    assert result[key][0] == 0.0, key

  assert result['dsc'][1] == 0.0
  assert result['fn_ratio'][1] == 1.0
  assert result['relative_volume_difference'][1] == -1.0
  assert result['mae'][1] == pytest.approx(np.abs(image[1, 1:4, 1:4]).mean())
  assert np.isnan(result['relative_mean_intensity_difference'][1])

  assert result['dsc'][2] == 0.0
  assert result['fp_ratio'][2] == pytest.approx(9 / 36)
  for key in ('fn_ratio', 'me', 'mae', 'relative_volume_difference',
              'relative_mean_intensity_difference'):
    assert np.isnan(result[key][2]), key

  assert np.isnan(result['dsc'][3]) and np.isnan(result['jaccard'][3])
  assert result['fp_ratio'][3] == 0.0


def test_lung_me_with_unit_image_is_volume_difference():
  reference, prediction, _ = _random_lungs(3, (3, 10, 10))
  result = metrics.lung_metrics(reference, prediction, np.ones((3, 10, 10)))
  _assert_close_nan(result['me'], result['relative_volume_difference'],
                    rtol=1e-6)
  _assert_close_nan(result['mae'],
                    (result['fp'] + result['fn']) / (result['tp']
                                                     + result['fn']),
                    rtol=1e-6)
