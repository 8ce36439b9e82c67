"""Resizing, intensity normalisation, lung masking and task-specific labels (host-side numpy).

Arrays are slices first, (N, H, W); resizing and per-image normalisation act on the
last two axes.
"""
import numpy as np

TASKS = ('binary', 'multi', 'lung')
CLASS_NAMES = {
    'binary': ('not infected', 'infected'),
    'multi': ('background and healthy lung', 'ground-glass opacity', 'consolidation',
              'pleural effusion'),
    'lung': ('background', 'lung'),
}
# data.lesion_class: the network trains on finer classes than its task's, the lesions in classes
# of their own, and predicts the task's classes, whose logits are those of these groups of its
# outputs merged (models.MergedClasses). Per task: (training class names, groups).
LESION_CLASSES = {
    'lung': (('background', 'lung without lesion', 'lesion'), ((0,), (1, 2))),
    'binary': (CLASS_NAMES['multi'], ((0,), (1, 2, 3))),
}
NORMALIZATIONS = ('zero_center', 'minmax', 'zscore', 'hu_window')
# Lung window in HU (level -300, width 1400).
HU_LUNG_WINDOW = (-1000.0, 400.0)
# 'zero_center' divides by the 8-bit range after the paper's mean subtraction.
ZERO_CENTER_SCALE = 255.0


def _cubic(x):
  """Keys' cubic kernel with a = -0.5, as in MATLAB's imresize."""
  x = np.abs(x)
  return np.where(x <= 1, (1.5 * x - 2.5) * x * x + 1,
                  np.where(x <= 2, ((-0.5 * x + 2.5) * x - 4) * x + 2, 0.0))


def _imresize_weights(in_length, out_length):
  """(out, in) matrix of MATLAB imresize's bicubic weights along one axis.

  Follows imresize's `contributions`: half-pixel centres, the kernel widened by
  1/scale when down-sampling (antialiasing), weights normalised to sum 1 and
  taps beyond the border mirrored (symmetric padding).
  """
  scale = out_length / in_length
  kernel_scale = min(scale, 1.0)
  width = 4.0 / kernel_scale
  centres = (np.arange(out_length) + 0.5) / scale - 0.5  # 0-based input coordinates
  taps = np.floor(centres - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2)
  weights = kernel_scale * _cubic(kernel_scale * (centres[:, None] - taps))
  weights /= weights.sum(axis=1, keepdims=True)
  period = 2 * in_length
  mirrored = np.mod(taps.astype(np.int64), period)
  mirrored = np.where(mirrored < in_length, mirrored, period - 1 - mirrored)
  matrix = np.zeros((out_length, in_length))
  np.add.at(matrix, (np.arange(out_length)[:, None], mirrored), weights)
  return matrix


def resize_images(images, size):
  """Resizes (..., H, W) images to (..., size, size) float32 like MATLAB's imresize.

  MATLAB's default: bicubic with antialiasing, which made the paper's 256x256
  inputs. The result is clipped to each image's input range, as imresize's uint8
  output saturates, so the cubic overshoot at the lung border does not create
  values the input never had.
  """
  images = np.asarray(images, np.float32)
  rows = _imresize_weights(images.shape[-2], size).astype(np.float32)
  cols = _imresize_weights(images.shape[-1], size).astype(np.float32)
  resized = np.einsum('oi,...ij,pj->...op', rows, images, cols, optimize=True)
  low = images.min(axis=(-2, -1), keepdims=True)
  high = images.max(axis=(-2, -1), keepdims=True)
  return np.clip(resized, low, high).astype(np.float32)


def _nearest_indices(in_length, out_length):
  # MATLAB imresize 'nearest' samples the input pixel under each output pixel's
  # centre: floor((o + 0.5) * in / out), computed exactly in integers.
  return (2 * np.arange(out_length) + 1) * in_length // (2 * out_length)


def resize_labels(labels, size):
  """Resizes (..., H, W) label maps to (..., size, size) by nearest neighbour.

  Pixel-centre sampling as in MATLAB's imresize 'nearest' (input pixel 2i + 1 when
  halving), which reproduces the paper's 256x256 test-set class counts exactly.
  """
  labels = np.asarray(labels)
  rows = _nearest_indices(labels.shape[-2], size)
  cols = _nearest_indices(labels.shape[-1], size)
  return labels[..., rows[:, None], cols[None, :]]


def compute_mean_image(train_images):
  """The mean image of the training set, (H, W) float32, for 'zero_center'."""
  return np.mean(np.asarray(train_images), axis=0, dtype=np.float64).astype(np.float32)


def _per_image(images, lung):
  """Per-image mean and std over the lung (or the whole image where it has no lung)."""
  if lung is None:
    mask = np.ones(images.shape, bool)
  else:
    mask = np.broadcast_to(np.asarray(lung) > 0, images.shape)
    has_lung = mask.any(axis=(-2, -1), keepdims=True)
    mask = mask | ~has_lung
  count = mask.sum(axis=(-2, -1), keepdims=True)
  mean = np.where(mask, images, 0).sum(axis=(-2, -1), keepdims=True) / count
  variance = np.where(mask, (images - mean) ** 2, 0).sum(axis=(-2, -1), keepdims=True) / count
  return mean, np.sqrt(variance)


def normalize(images, method, lung=None, mean_image=None, window=HU_LUNG_WINDOW):
  """Maps intensities to a range the networks train well on; returns float32.

  Methods:
    'zero_center': (images - mean_image) / 255. The paper (MATLAB imageInputLayer
      'zerocenter') subtracts the training set's mean image; dividing by the fixed
      8-bit range keeps that meaning and puts 8-bit inputs in [-1, 1].
    'minmax': each image to [0, 1] (a constant image becomes 0).
    'zscore': each image to zero mean and unit std, with the statistics taken
      inside `lung` when given (the whole image where the lung is empty); this
      transfers across intensity scales (HU, windowed 8-bit, min-max scaled).
    'hu_window': clip to `window` (HU, default lung window) and scale to [0, 1].
  """
  images = np.asarray(images, np.float64)
  if method == 'zero_center':
    if mean_image is None or np.shape(mean_image) != images.shape[-2:]:
      raise ValueError(f"'zero_center' needs a mean_image of shape {images.shape[-2:]}, "
                       f'got {None if mean_image is None else np.shape(mean_image)}')
    result = (images - mean_image) / ZERO_CENTER_SCALE
  elif method == 'minmax':
    low = images.min(axis=(-2, -1), keepdims=True)
    span = images.max(axis=(-2, -1), keepdims=True) - low
    result = (images - low) / np.where(span > 0, span, 1.0)
  elif method == 'zscore':
    mean, std = _per_image(images, lung)
    result = (images - mean) / np.where(std > 0, std, 1.0)
  elif method == 'hu_window':
    low, high = window
    result = (np.clip(images, low, high) - low) / (high - low)
  else:
    raise ValueError(f'unknown normalisation {method!r}; expected one of {NORMALIZATIONS}')
  return result.astype(np.float32)


def apply_lung_mask(images, lung):
  """Zeroes everything outside the lung, as in the paper's lung-masked inputs."""
  images = np.asarray(images)
  return np.where(np.asarray(lung) > 0, images, np.zeros((), images.dtype))


def _check_task(task):
  if task not in TASKS:
    raise ValueError(f'unknown task {task!r}; expected one of {TASKS}')


def num_classes(task):
  _check_task(task)
  return len(CLASS_NAMES[task])


def labels_for_task(labels, lung, task):
  """uint8 targets: 'binary' lesion vs not, 'multi' the four classes, 'lung' the lung mask."""
  _check_task(task)
  if task == 'binary':
    return (np.asarray(labels) > 0).astype(np.uint8)
  if task == 'multi':
    return np.asarray(labels).astype(np.uint8)
  return (np.asarray(lung) > 0).astype(np.uint8)


def lesion_class_targets(labels, lung, task):
  """uint8 targets of data.lesion_class (LESION_CLASSES[task], whose groups merge them into the
  task's labels): 'lung' 0 outside the lung, 1 lung without lesion, 2 lesion (any class of
  `labels`) inside the lung; 'binary' the multi task's classes, one per kind of lesion."""
  if task not in LESION_CLASSES:
    raise ValueError(f'data.lesion_class is for the tasks {tuple(LESION_CLASSES)}, not {task!r}')
  if task == 'binary':
    return labels_for_task(labels, lung, 'multi')
  inside = np.asarray(lung) > 0
  return (inside.astype(np.uint8) + (inside & (np.asarray(labels) > 0))).astype(np.uint8)
