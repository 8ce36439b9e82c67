"""Binary SegNet (depth 3), the paper's Table 3/4. Bare file = best experiment (exp 4).

  python -m covseg_jax.main --config=configs/segnet_binary.py --workdir=runs/segnet_binary
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.data.task = "binary"
  return default.apply_variants(config, arg, default.SEGNET_GRID, best="exp4")
