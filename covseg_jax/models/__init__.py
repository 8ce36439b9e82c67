"""Segmentation networks, looked up by name from the model config."""

import flax.linen as nn
import jax.numpy as jnp

from covseg_jax.models.highresnet import HighResNet
from covseg_jax.models.segnet import SegNet
from covseg_jax.models.unet import UNet

_MODELS = {
    'segnet': SegNet,
    'unet': UNet,
    'highresnet': HighResNet,
}


def get_model(model_config, num_classes: int) -> nn.Module:
  """Builds the network that `model_config` names.

  Args:
    model_config: ConfigDict (or mapping) with `name` (a key of _MODELS),
      `dtype` ('float32' or 'bfloat16', the compute dtype) and the model
      class's remaining keyword arguments; lists become tuples.
    num_classes: number of output channels (logits).

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
  return _MODELS[name](num_classes=num_classes, dtype=dtype, **kwargs)
