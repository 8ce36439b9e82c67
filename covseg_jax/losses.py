"""Losses: median-frequency weighted cross-entropy (Saood & Hatem) and soft Dice (Dice_NS).

Cross-entropy normalisation: MATLAB's pixelClassificationLayer (the paper's code) divides the
weighted sum by the number of pixels, not by the sum of the weights (PyTorch's choice). We follow
MATLAB, so a change of class weights also changes the loss scale, as it did in the paper.
"""
import jax
import jax.numpy as jnp
import numpy as np


def median_frequency_weights(labels, num_classes):
  """Median-frequency class weights computed on the training labels (N, H, W).

  freq(c) = pixels of class c / total pixels of the images that contain c;
  w(c) = median(freq) / freq(c). A class absent from every training image has no frequency:
  it gets weight 0 and is left out of the median (it never occurs as a target anyway).
  """
  labels = np.asarray(labels)
  per_image = labels.reshape(labels.shape[0], -1)
  pixels_per_image = per_image.shape[1]
  counts = np.stack([(per_image == c).sum(axis=1) for c in range(num_classes)], axis=1)
  class_pixels = counts.sum(axis=0).astype(np.float64)
  images_with_class = (counts > 0).sum(axis=0)
  present = images_with_class > 0
  freq = np.zeros(num_classes)
  freq[present] = class_pixels[present] / (images_with_class[present] * pixels_per_image)
  weights = np.zeros(num_classes)
  weights[present] = np.median(freq[present]) / freq[present]
  return weights.astype(np.float32)


def weighted_cross_entropy(logits, labels, class_weights, label_smoothing=0.0):
  """Mean over pixels of w[y] * -sum_c q_c log softmax(logits)_c; logits (..., C), labels (...).

  The target q is one-hot in y, or with `label_smoothing` e, (1 - e) one-hot + e / C: each
  pixel's weight stays its labelled class's.
  """
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
  if label_smoothing:
    nll = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)
  return jnp.mean(jnp.asarray(class_weights)[labels] * nll)


def soft_dice_loss(logits, labels, smooth=1e-5):
  """NiftyNet's Dice_NS ("no square"): 1 - mean over classes of 2*sum(p*g) / (sum(p) + sum(g)).

  Sums run over the whole batch, as in NiftyNet, so a class absent from one image does not
  produce a 0/0 for that image.
  """
  num_classes = logits.shape[-1]
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  axes = tuple(range(logits.ndim - 1))
  intersection = jnp.sum(probs * onehot, axis=axes)
  denominator = jnp.sum(probs, axis=axes) + jnp.sum(onehot, axis=axes)
  dice = (2.0 * intersection + smooth) / (denominator + smooth)
  return 1.0 - jnp.mean(dice)


LOSSES = ("weighted_ce", "dice", "weighted_ce+dice", "ce+dice")


def compute_loss(name, logits, labels, class_weights, label_smoothing=0.0):
  """The loss named by config.train.loss: one of LOSSES.

  'ce+dice' is the plain (unweighted) cross-entropy plus soft Dice: every class weight 1.
  label_smoothing smooths the cross-entropy's targets (`weighted_cross_entropy`); 'dice' has
  none to smooth.
  """
  if name == "weighted_ce":
    return weighted_cross_entropy(logits, labels, class_weights, label_smoothing)
  if name == "dice":
    return soft_dice_loss(logits, labels)
  if name in ("weighted_ce+dice", "ce+dice"):
    weights = class_weights if name == "weighted_ce+dice" else jnp.ones(logits.shape[-1])
    return (weighted_cross_entropy(logits, labels, weights, label_smoothing)
            + soft_dice_loss(logits, labels))
  raise ValueError(f"unknown loss {name!r}: use one of {LOSSES}")
