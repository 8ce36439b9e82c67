"""Segmentation networks, looked up by name from the model config."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from covseg_jax.data import preprocess
from covseg_jax.models.highresnet import HighResNet
from covseg_jax.models.segnet import SegNet
from covseg_jax.models.unet import UNet

_MODELS = {
    'segnet': SegNet,
    'unet': UNet,
    'highresnet': HighResNet,
}


class MergedClasses(nn.Module):
  """A network trained on finer classes than it predicts.

  With train=True it returns the network's logits, one per training class; otherwise one per
  group of `groups` (tuples of training classes): the log-sum-exp of the group's logits, so
  that each predicted class's softmax probability is the sum of its group's.
  """
  network: nn.Module
  groups: tuple

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    logits = self.network(x, train=train)
    if train:
      return logits
    logits = logits.astype(jnp.float32)
    return jnp.stack([jax.nn.logsumexp(logits[..., list(group)], axis=-1)
                      for group in self.groups], axis=-1)


def get_model(model_config, num_classes: int, groups: tuple = ()) -> nn.Module:
  """Builds the network that `model_config` names.

  Args:
    model_config: ConfigDict (or mapping) with `name` (a key of _MODELS),
      `dtype` ('float32' or 'bfloat16', the compute dtype) and the model
      class's remaining keyword arguments; lists become tuples.
    num_classes: number of output channels (logits).
    groups: when given, the network trains on `num_classes` classes and predicts
      len(groups), these groups of them merged (`MergedClasses`).

  Returns:
    The unbound flax module.
  """
  kwargs = {key: tuple(value) if isinstance(value, list) else value
            for key, value in model_config.items()}
  name = kwargs.pop('name')
  dtype = jnp.dtype(kwargs.pop('dtype'))
  if name not in _MODELS:
    raise ValueError(
        f'unknown model name {name!r}; valid names: {", ".join(_MODELS)}')
  network = _MODELS[name](num_classes=num_classes, dtype=dtype, **kwargs)
  return MergedClasses(network, tuple(groups)) if groups else network


def for_config(config) -> nn.Module:
  """The network an experiment config trains and evaluates: for data.task's classes, or with
  data.lesion_class trained on preprocess.LESION_CLASSES[data.task] and predicting the task's."""
  if config.data.get('lesion_class', False):  # Absent from the config.json of older runs.
    names, groups = preprocess.LESION_CLASSES[config.data.task]
    return get_model(config.model, len(names), groups)
  return get_model(config.model, preprocess.num_classes(config.data.task))
