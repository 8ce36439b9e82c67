"""Tests of the segmentation networks and of get_model.

Compilation dominates the run time on the CPU, so: variables are
`jax.eval_shape` shapes filled with NumPy random numbers (running `init`
compiles the random initialiser of every layer, seconds per model), models run
under jit (op by op, every layer compiles apart), and gradients are compiled
only where they are compared.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from covseg_jax import models
from covseg_jax.models import HighResNet, SegNet, UNet
from covseg_jax.models import unet as unet_module

NUM_CLASSES = 3

# Tiny variants for testing only.
TINY_MODELS = {
    'segnet': dict(features=(4, 8), convs_per_stage=(2, 1)),
    'unet': dict(depth=2, base_features=4, batch_norm=True),
    'highresnet': dict(features=(4, 8), dilations=(1, 2), blocks_per_stage=1,
                       head_features=8),
}


def random_normal(shape, seed):
  """NumPy samples: each new jax.random shape costs a compilation."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape),
                     jnp.float32)


def variable_shapes(model, x):
  return jax.eval_shape(
      lambda: model.init(
          {'params': jax.random.key(0), 'dropout': jax.random.key(1)}, x,
          train=False))


def random_variables(model, x, seed=0):
  """Random parameters and running statistics, so that no BN is an identity."""
  rng = np.random.default_rng(seed)

  def sample(path, leaf):
    name = path[-1].key
    if name == 'kernel':  # He scale, so that activations stay near unit size.
      std = math.sqrt(2 / math.prod(leaf.shape[:-1]))
      value = rng.normal(0, std, leaf.shape)
    elif name in ('scale', 'var'):
      value = rng.uniform(0.5, 1.5, leaf.shape)
    else:  # bias, mean
      value = rng.normal(0, 0.1, leaf.shape)
    return jnp.asarray(value, leaf.dtype)

  return jax.tree.map_with_path(sample, variable_shapes(model, x))


def eval_logits(model, variables, x):
  return jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)


def train_logits(model, variables, x):
  """Logits and updated batch_stats with train=True."""
  return jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=['batch_stats'],
      rngs={'dropout': jax.random.key(4)}))(variables, x)


def train_grads(model, variables, x):
  """Gradients of sum(logits**2) with respect to the parameters, train=True."""

  def loss(params):
    logits, _ = model.apply(
        {**variables, 'params': params}, x, train=True,
        mutable=['batch_stats'], rngs={'dropout': jax.random.key(4)})
    return jnp.sum(logits**2)

  return jax.jit(jax.grad(loss))(variables['params'])


def assert_trees_close(a, b, tolerance):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(
      lambda u, v: np.testing.assert_allclose(u, v, rtol=tolerance,
                                              atol=tolerance), a, b)


def param_count(model, image_size=32):
  shapes = variable_shapes(model, jnp.zeros((1, image_size, image_size, 1)))
  return sum(math.prod(p.shape) for p in jax.tree.leaves(shapes['params']))


@pytest.mark.parametrize('name', sorted(TINY_MODELS))
def test_get_model_builds_from_config(name):
  fields = {k: list(v) if isinstance(v, tuple) else v
            for k, v in TINY_MODELS[name].items()}
  config = ml_collections.ConfigDict(dict(name=name, dtype='bfloat16',
                                          **fields))
  model = models.get_model(config, NUM_CLASSES)
  assert model.num_classes == NUM_CLASSES
  assert model.dtype == jnp.bfloat16
  for field, value in TINY_MODELS[name].items():
    assert getattr(model, field) == value  # Lists came back as tuples.


def test_get_model_rejects_unknown_name():
  config = ml_collections.ConfigDict(dict(name='resnet', dtype='float32'))
  with pytest.raises(ValueError, match='segnet, unet, highresnet'):
    models.get_model(config, NUM_CLASSES)


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
@pytest.mark.parametrize('name', sorted(TINY_MODELS))
def test_output_shape_and_dtypes(name, dtype):
  model = models.get_model(
      ml_collections.ConfigDict(dict(name=name, dtype=dtype,
                                     **TINY_MODELS[name])),
      NUM_CLASSES)
  x = random_normal((2, 16, 16, 1), seed=2)
  shapes = variable_shapes(model, x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))
  variables = random_variables(model, x)

  logits, updates = train_logits(model, variables, x)
  assert logits.shape == (2, 16, 16, NUM_CLASSES)
  assert logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))
  assert jax.tree.structure(updates['batch_stats']) == jax.tree.structure(
      variables['batch_stats'])

  logits = eval_logits(model, variables, x)
  assert logits.shape == (2, 16, 16, NUM_CLASSES)
  assert logits.dtype == jnp.float32


@pytest.mark.parametrize(
    'model', [SegNet(2, features=(4, 8), convs_per_stage=(1, 1)), UNet(2)])
def test_models_reject_sizes_not_divisible_by_the_pooling(model):
  with pytest.raises(ValueError, match='divisible by 4'):
    variable_shapes(model, jnp.zeros((1, 16, 18, 1)))


@pytest.mark.parametrize('model', [
    SegNet(2, features=(4, 8), convs_per_stage=(1, 1), unpool='gather'),
    UNet(2, base_features=4, upsample='bilinear'),
    HighResNet(2, features=(4,), dilations=(2,), dilation_impl='atrous'),
], ids=['segnet', 'unet', 'highresnet'])
def test_models_reject_unknown_options(model):
  with pytest.raises(ValueError, match='unknown'):
    variable_shapes(model, jnp.zeros((1, 16, 16, 1)))


# Parameter counts, derived by hand. A conv3x3 from a to b channels has 9ab
# weights; convolutions followed by BN have no bias; BN has 2c parameters
# (scale, shift; the running statistics are not parameters).
#
# SegNet depth 3, conv+BN per layer:
#   encoder 1->64: 704, 64->64: 36992, 64->128: 73984, 128->128: 147712,
#     128->256: 295424, 256->256: 590336; sum 1145152
#   decoder 256->256: 590336, 256->128: 295168, 128->128: 147712,
#     128->64: 73856, 64->64: 36992, 64->64: 36992; sum 1181056
#   classifier 1x1 64->k with bias: 65k.  Total 2326208 + 65k.
# SegNet VGG16 (64,128,256,512,512; 2,2,3,3,3), per stage:
#   encoder 37696 + 221696 + 1476096 + 5901312 + 7080960 = 14717760
#   decoder (deepest first) 7080960 + 5900800 + 1475840 + 221568 + 73984
#     = 14753152;  classifier 65k.  Total 29470912 + 65k.
# U-Net depth 2, base 64, conv with bias, no BN:
#   encoder0 (1->64, 64->64): 640 + 36928;  encoder1: 73856 + 147584
#   bridge (128->256, 256->256): 295168 + 590080
#   decoder1: up 2x2 256->128 131200, 256->128 295040, 128->128 147584
#   decoder0: up 2x2 128->64 32832, 128->64 73792, 64->64 36928
#   classifier 65k.  Total 1861632 + 65k (the same for both up-sampling forms).
# HighResNet (16,32,64; dilations 1,2,4; 3 blocks; head 80):
#   stem 1->16 + BN: 144 + 32
#   a block a->b: BN 2a + 9ab + BN 2b + 9bb
#   stage0 3 x (16->16) = 3 x 4672 = 14016
#   stage1 (16->32) 13920 + 2 x (32->32) 18560 = 51040
#   stage2 (32->64) 55488 + 2 x (64->64) 73984 = 203456
#   head 1x1 64->80 + BN: 5120 + 160;  classifier 1x1 80->k with bias: 81k.
#   Total 273968 + 81k.
@pytest.mark.parametrize('num_classes', [2, 4])
@pytest.mark.parametrize('builder, expected', [
    (lambda k: SegNet(k), lambda k: 2326208 + 65 * k),
    (lambda k: SegNet(k, features=(64, 128, 256, 512, 512),
                      convs_per_stage=(2, 2, 3, 3, 3)),
     lambda k: 29470912 + 65 * k),
    (lambda k: UNet(k), lambda k: 1861632 + 65 * k),
    (lambda k: UNet(k, upsample='transpose'), lambda k: 1861632 + 65 * k),
    (lambda k: HighResNet(k), lambda k: 273968 + 81 * k),
], ids=['segnet_depth3', 'segnet_vgg16', 'unet_depth2', 'unet_depth2_transpose',
        'highresnet'])
def test_paper_config_parameter_counts(builder, expected, num_classes):
  assert param_count(builder(num_classes)) == expected(num_classes)


def test_segnet_unpool_forms_agree():
  x = random_normal((2, 16, 16, 1), seed=0)
  config = TINY_MODELS['segnet']
  scatter = SegNet(NUM_CLASSES, unpool='scatter', **config)
  onehot = SegNet(NUM_CLASSES, unpool='onehot', **config)
  variables = random_variables(scatter, x)
  np.testing.assert_array_equal(eval_logits(scatter, variables, x),
                                eval_logits(onehot, variables, x))
  # Training mode as well; test_layers compares the two forms' gradients.
  jax.tree.map(np.testing.assert_array_equal,
               train_logits(scatter, variables, x),
               train_logits(onehot, variables, x))


def transpose_kernel_to_1x1(kernel):
  """Maps a ConvTranspose kernel (2, 2, in, F) to the (1, 1, in, 4F) kernel.

  flax applies the transposed kernel flipped: out[2i + a, 2j + b] uses
  K[1 - a, 1 - b] (checked by test_conv_transpose_kernel_is_flipped).
  """
  flipped = kernel[::-1, ::-1]  # [a, b, in, F]
  return flipped.transpose(2, 0, 1, 3).reshape(1, 1, kernel.shape[2], -1)


def test_conv_transpose_kernel_is_flipped():
  module = unet_module.Upsample2x(1, 'transpose', jnp.float32)
  kernel = jnp.arange(1.0, 5.0).reshape(2, 2, 1, 1)
  out = module.apply(
      {'params': {'conv_transpose': {'kernel': kernel, 'bias': jnp.zeros(1)}}},
      jnp.ones((1, 1, 1, 1)))
  np.testing.assert_array_equal(out[0, :, :, 0], [[4.0, 3.0], [2.0, 1.0]])


def upsample_params_to_depth_to_space(params):
  """Rewrites every 'transpose' Upsample2x's parameters for 'depth_to_space'."""
  if 'conv_transpose' in params:
    conv = params['conv_transpose']
    return {'conv': {'kernel': transpose_kernel_to_1x1(conv['kernel'])},
            'bias': conv['bias']}
  return {k: upsample_params_to_depth_to_space(v) if isinstance(v, dict) else v
          for k, v in params.items()}


def test_depth_to_space_upsample_equals_conv_transpose():
  x = random_normal((2, 5, 6, 3), seed=0)
  transpose = unet_module.Upsample2x(4, 'transpose', jnp.float32)
  fast = unet_module.Upsample2x(4, 'depth_to_space', jnp.float32)
  rng = np.random.default_rng(0)
  params = {'params': {'conv_transpose': {
      'kernel': jnp.asarray(rng.normal(size=(2, 2, 3, 4)), jnp.float32),
      'bias': jnp.asarray(rng.normal(size=4), jnp.float32)}}}
  fast_params = upsample_params_to_depth_to_space(params)
  assert jax.tree.map(jnp.shape, fast_params) == jax.tree.map(
      jnp.shape, jax.eval_shape(fast.init, jax.random.key(0), x))
  out = fast.apply(fast_params, x)
  assert out.shape == (2, 10, 12, 4)
  np.testing.assert_allclose(out, transpose.apply(params, x), atol=1e-6,
                             rtol=1e-6)


def test_unet_upsample_forms_agree():
  x = random_normal((2, 16, 16, 1), seed=0)
  # Without dropout: its masks do not depend on the up-sampling form, and its
  # random bits take seconds to compile on the CPU.
  config = {**TINY_MODELS['unet'], 'dropout_rate': 0.0}
  transpose = UNet(NUM_CLASSES, upsample='transpose', **config)
  fast = UNet(NUM_CLASSES, upsample='depth_to_space', **config)
  variables = random_variables(transpose, x)
  fast_variables = {**variables, 'params': upsample_params_to_depth_to_space(
      variables['params'])}
  assert_trees_close(eval_logits(transpose, variables, x),
                     eval_logits(fast, fast_variables, x), 1e-5)
  assert_trees_close(train_logits(transpose, variables, x),
                     train_logits(fast, fast_variables, x), 1e-5)


@pytest.mark.parametrize('size', [(16, 16), (13, 10)])
def test_highresnet_dilation_impls_agree(size):
  """13x10 is padded in both stages: the masked path is exercised."""
  x = random_normal((2, *size, 1), seed=0)
  # Two blocks per stage: the second reads the first's padding pixels.
  config = dict(features=(4, 8), dilations=(2, 4), blocks_per_stage=2,
                head_features=8)
  plain = HighResNet(NUM_CLASSES, dilation_impl='rhs_dilation', **config)
  fast = HighResNet(NUM_CLASSES, dilation_impl='space_to_batch', **config)
  variables = random_variables(plain, x)
  assert_trees_close(eval_logits(plain, variables, x),
                     eval_logits(fast, variables, x), 1e-5)
  assert_trees_close(train_logits(plain, variables, x),
                     train_logits(fast, variables, x), 1e-5)
  if size == (13, 10):  # Compiling gradients is slow; check the harder case.
    assert_trees_close(train_grads(plain, variables, x),
                       train_grads(fast, variables, x), 1e-4)
