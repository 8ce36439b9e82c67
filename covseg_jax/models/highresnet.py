"""HighResNet (NiftyNet's HighRes3DNet) in 2D: dilated pre-activation ResNet."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from covseg_jax.models import layers

_DILATION_IMPLS = ('space_to_batch', 'rhs_dilation')


class ResidualBlock(nn.Module):
  """Pre-activation block: (BN, ReLU, conv3x3) twice, plus the identity.

  The identity is zero-padded in channels when `features` exceeds the input's.
  `mask` (broadcastable to x, True on real pixels) is given when x carries
  padding pixels: BN statistics skip them and convolutions read them as zero.
  """
  features: int
  dilation: int
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x: jax.Array, train: bool,
               mask: jax.Array | None = None) -> jax.Array:
    extra_channels = self.features - x.shape[-1]
    if extra_channels < 0:
      raise ValueError(
          f'ResidualBlock cannot reduce {x.shape[-1]} channels to'
          f' {self.features}')
    y = x
    for i in range(2):
      y = layers.batch_norm(train, self.dtype, name=f'bn{i}')(y, mask=mask)
      y = nn.relu(y)
      if mask is not None:
        y = jnp.where(mask, y, 0)
      y = nn.Conv(
          self.features, (3, 3),
          padding='SAME',
          kernel_dilation=self.dilation,
          use_bias=False,  # Every path on reaches a BN, whose shift absorbs it.
          kernel_init=layers.CONV_KERNEL_INIT,
          dtype=self.dtype,
          param_dtype=jnp.float32,
          name=f'conv{i}')(y)
    skip = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra_channels)))
    return skip + y


class DilatedStage(nn.Module):
  """`num_blocks` residual blocks sharing one dilation.

  With dilation_impl='space_to_batch' the whole stage runs on the d*d
  interleaved sub-images of the input (layers.space_to_batch) with plain 3x3
  convolutions, converting once at each end: XLA's `rhs_dilation` is 20-80x
  slower on GPU. BN statistics are unchanged (the pixels are only permuted).
  Zero padding d at the border equals zero padding 1 in every sub-image only
  when d divides H and W, so other sizes are padded up to a multiple of d and
  the padding pixels are masked out of every BN and convolution.
  """
  features: int
  dilation: int
  num_blocks: int
  dilation_impl: str
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    rearrange = self.dilation_impl == 'space_to_batch' and self.dilation > 1
    height, width = x.shape[1], x.shape[2]
    mask = None
    if rearrange:
      d = self.dilation
      padding = ((0, 0), (0, -height % d), (0, -width % d), (0, 0))
      if padding[1][1] or padding[2][1]:
        mask = layers.space_to_batch(
            jnp.pad(jnp.ones(x.shape[:3] + (1,), bool), padding), d)
      x = layers.space_to_batch(jnp.pad(x, padding), d)
    conv_dilation = 1 if rearrange else self.dilation
    for i in range(self.num_blocks):
      x = ResidualBlock(
          self.features, conv_dilation, self.dtype, name=f'block{i}')(
              x, train, mask)
    if rearrange:
      x = layers.batch_to_space(x, self.dilation)[:, :height, :width]
    return x


class HighResNet(nn.Module):
  """conv3x3-BN-ReLU, dilated residual stages, 1x1 head, 1x1 to the logits.

  Stage i has `blocks_per_stage` blocks with features[i] channels and dilation
  dilations[i]. Any H and W work.
  """
  num_classes: int
  dtype: jnp.dtype = jnp.float32
  features: Sequence[int] = (16, 32, 64)
  dilations: Sequence[int] = (1, 2, 4)
  blocks_per_stage: int = 3
  head_features: int = 80
  dilation_impl: str = 'space_to_batch'  # Or 'rhs_dilation'; the same function.

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if len(self.features) != len(self.dilations):
      raise ValueError(
          f'features {self.features} and dilations {self.dilations} differ in'
          ' length')
    if self.dilation_impl not in _DILATION_IMPLS:
      raise ValueError(
          f'unknown dilation_impl {self.dilation_impl!r}; valid:'
          f' {_DILATION_IMPLS}')
    x = layers.ConvBNReLU(self.features[0], self.dtype, name='stem')(x, train)
    for stage, (features, dilation) in enumerate(
        zip(self.features, self.dilations)):
      x = DilatedStage(
          features, dilation, self.blocks_per_stage, self.dilation_impl,
          self.dtype, name=f'stage{stage}')(x, train)
    x = layers.ConvBNReLU(
        self.head_features, self.dtype, kernel_size=(1, 1), name='head')(
            x, train)
    return layers.classifier(x, self.num_classes, self.dtype)
