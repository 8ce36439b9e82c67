"""From a data config to arrays ready for training: load, split, mask, resize, normalise.

The training set is small (72 slices), so it lives on the device and each step gathers and
augments its batch inside the jitted computation (see train.py); this module only prepares
the host arrays and the per-epoch sample order.
"""
import dataclasses
from typing import Optional

import numpy as np

from covseg_jax.data import medseg, preprocess, splits


@dataclasses.dataclass
class SplitArrays:
  """One split. images (N,S,S,1) float32 normalised; labels (N,S,S) int32 for the task."""
  images: np.ndarray
  labels: np.ndarray
  lung: np.ndarray  # (N,S,S) uint8, the lung mask at the same resolution.
  raw: np.ndarray  # (N,S,S) float32, resized but not normalised (for figures).
  slice_numbers: np.ndarray  # 1-based slice numbers in the source volume.


@dataclasses.dataclass
class Dataset:
  train: SplitArrays
  val: SplitArrays
  test: SplitArrays
  task: str
  num_classes: int
  class_names: tuple
  class_weights: np.ndarray  # Median-frequency weights from the training labels.
  mean_image: Optional[np.ndarray]  # Training mean image for 'zero_center', else None.
  # What the network trains on, (N,S,S) int32: train.labels, or with data.lesion_class the
  # classes of preprocess.lesion_class_targets; and their median-frequency weights.
  train_targets: np.ndarray
  train_class_weights: np.ndarray

  def split(self, name):
    if name not in ("train", "val", "test"):
      raise ValueError(f"unknown split {name!r}: use 'train', 'val' or 'test'")
    return getattr(self, name)


def make_split(data_config, num_images):
  """The paper's split, or fold `data_config.fold` of a seeded k-fold split (splits.SPLITS)."""
  if data_config.split in ("paper", "paper_kfold"):
    paper = splits.paper_split(medseg.find_data_dir(data_config.data_dir or None))
    if data_config.split == "paper":
      return paper
    return splits.paper_kfold_split(paper, data_config.num_folds, data_config.fold,
                                    data_config.split_seed)
  if data_config.split == "kfold":
    return splits.kfold_split(num_images, data_config.num_folds, data_config.fold,
                              data_config.split_seed)
  raise ValueError(f"unknown data.split {data_config.split!r}: use one of {splits.SPLITS}")


def load_dataset(data_config):
  """Loads MedSeg and returns the three splits for `data_config.task`."""
  # Imported here to keep the data layer free of the loss module at import time.
  from covseg_jax.losses import median_frequency_weights

  data_dir = medseg.find_data_dir(data_config.data_dir or None)
  source = medseg.load_medseg(data_dir, data_config.image_source)
  split = make_split(data_config, len(source.images))

  labels = preprocess.labels_for_task(source.labels, source.lung, data_config.task)
  images = source.images
  if data_config.lung_mask:
    images = preprocess.apply_lung_mask(images, source.lung)
  size = data_config.image_size
  images = preprocess.resize_images(images, size)
  labels = preprocess.resize_labels(labels, size)
  lung = preprocess.resize_labels(source.lung, size)
  num_classes = preprocess.num_classes(data_config.task)
  targets, num_targets = labels, num_classes
  if data_config.get("lesion_class", False):  # Absent from the config.json of older runs.
    targets = preprocess.resize_labels(
        preprocess.lesion_class_targets(source.labels, source.lung, data_config.task), size)
    num_targets = len(preprocess.LESION_CLASSES[data_config.task][0])

  mean_image = None
  if data_config.normalization == "zero_center":
    # 'paper_kfold' centres on the mean of all its folds' slices (training and validation; no
    # labels), the same in every fold, so the folds' models take the same inputs and ensemble.
    fitted = (np.concatenate([split.train, split.val]) if data_config.split == "paper_kfold"
              else split.train)
    mean_image = preprocess.compute_mean_image(images[fitted])
  normalized = preprocess.normalize(images, data_config.normalization,
                                    lung=lung, mean_image=mean_image)

  def take(indices):
    return SplitArrays(
        images=normalized[indices][..., None].astype(np.float32),
        labels=labels[indices].astype(np.int32),
        lung=lung[indices].astype(np.uint8),
        raw=images[indices].astype(np.float32),
        slice_numbers=np.asarray(source.slice_numbers)[indices])

  train = take(split.train)
  train_targets = targets[split.train].astype(np.int32)
  return Dataset(
      train=train, val=take(split.val), test=take(split.test),
      task=data_config.task, num_classes=num_classes,
      class_names=tuple(preprocess.CLASS_NAMES[data_config.task]),
      class_weights=median_frequency_weights(train.labels, num_classes),
      mean_image=mean_image, train_targets=train_targets,
      train_class_weights=median_frequency_weights(train_targets, num_targets))


def epoch_order(seed, epoch, num_examples):
  """The shuffled sample order of one epoch: a pure function of (seed, epoch), so resumable."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)
