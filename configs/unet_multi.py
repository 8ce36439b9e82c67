"""Multi-class U-Net (encoder depth 2), the paper's Table 5/6. Bare file = best experiment (exp 4).

  python -m covseg_jax.main --config=configs/unet_multi.py --workdir=runs/unet_multi
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.data.task = "multi"
  config.model = default.unet_model()
  return default.apply_variants(config, arg, default.UNET_GRID, best="exp4")
