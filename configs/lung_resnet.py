"""Lung segmentation with NiftyNet's dilated residual network (HighResNet), Dice_NS loss.

Second paper (Gholamiankhah et al.). The input is the whole CT slice (no lung masking: the lungs
are what the model must find), normalised per image so scans of any intensity convention work.

  python -m covseg_jax.main --config=configs/lung_resnet.py --workdir=runs/lung_resnet
  python -m covseg_jax.main --config=configs/lung_resnet.py:cpu --workdir=runs/lung_resnet_cpu
"""
import ml_collections

from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.data.task = "lung"
  config.data.image_source = "png"  # Whole slices, not the lung-masked inputs.
  config.data.lung_mask = False
  config.data.normalization = "zscore"
  config.model = ml_collections.ConfigDict()
  config.model.name = "highresnet"
  config.model.dtype = "bfloat16"
  config.model.features = (16, 32, 64)
  config.model.dilations = (1, 2, 4)
  config.model.blocks_per_stage = 3
  config.model.head_features = 80  # NiftyNet's 1x1 conv before the classifier.
  config.model.dilation_impl = "space_to_batch"  # XLA's rhs_dilation is 20-80x slower on GPU.
  config.train.loss = "dice"
  config.train.batch_size = 4
  config.train.learning_rate = 1e-3
  return default.apply_variants(config, arg)
