"""SegNet as built by MATLAB's `segnetLayers` (encoder depth 3 in the paper)."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from covseg_jax.models import layers

_UNPOOL_FUNCTIONS = {
    'scatter': layers.max_unpool,
    'onehot': layers.max_unpool_onehot,
}


class SegNet(nn.Module):
  """Encoder-decoder with max-pooling indices carried to the decoder.

  Encoder stage i: `convs_per_stage[i]` x conv3x3-BN-ReLU with `features[i]`
  channels, then a 2x2 max-pool that keeps its argmax. Decoder stage i (deepest
  first): un-pool with stage i's indices, the same number of conv3x3-BN-ReLU,
  the last of which reduces to `features[i-1]` (stage 0 keeps `features[0]`).
  MATLAB ends with conv3x3 to num_classes followed by BN and ReLU; here the last
  decoder stage keeps features[0] and a 1x1 conv with bias maps to the logits,
  so that the logits are not clipped at zero by a ReLU.

  H and W must be divisible by 2**len(features). The VGG16 variant is
  features=(64, 128, 256, 512, 512), convs_per_stage=(2, 2, 3, 3, 3).
  """
  num_classes: int
  dtype: jnp.dtype = jnp.float32
  features: Sequence[int] = (64, 128, 256)
  convs_per_stage: Sequence[int] = (2, 2, 2)
  unpool: str = 'scatter'  # 'scatter' (.at[].set) or 'onehot' (select).

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if len(self.features) != len(self.convs_per_stage):
      raise ValueError(
          f'features {self.features} and convs_per_stage'
          f' {self.convs_per_stage} differ in length')
    if self.unpool not in _UNPOOL_FUNCTIONS:
      raise ValueError(
          f'unknown unpool {self.unpool!r}; valid: {sorted(_UNPOOL_FUNCTIONS)}')
    layers.require_spatial_multiple(x, 2**len(self.features), 'SegNet')
    unpool = _UNPOOL_FUNCTIONS[self.unpool]

    pooling = []  # (indices, shape before pooling) per encoder stage.
    for stage, (features, num_convs) in enumerate(
        zip(self.features, self.convs_per_stage)):
      for i in range(num_convs):
        x = layers.ConvBNReLU(
            features, self.dtype, name=f'encoder{stage}_conv{i}')(x, train)
      shape = x.shape
      x, indices = layers.max_pool_with_argmax(x)
      pooling.append((indices, shape))

    for stage in reversed(range(len(self.features))):
      indices, shape = pooling[stage]
      x = unpool(x, indices, shape)
      num_convs = self.convs_per_stage[stage]
      for i in range(num_convs):
        last = i == num_convs - 1
        features = self.features[max(stage - 1, 0) if last else stage]
        x = layers.ConvBNReLU(
            features, self.dtype, name=f'decoder{stage}_conv{i}')(x, train)

    return layers.classifier(x, self.num_classes, self.dtype)
