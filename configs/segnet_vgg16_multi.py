"""Multi-class SegNet with the VGG16 encoder the paper's text describes (its code used depth 3).

  python -m covseg_jax.main --config=configs/segnet_vgg16_multi.py --workdir=runs/segnet_vgg16_multi
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.data.task = "multi"
  config.model.features = (64, 128, 256, 512, 512)
  config.model.convs_per_stage = (2, 2, 3, 3, 3)
  return default.apply_variants(config, arg, default.SEGNET_GRID, best="exp7")
