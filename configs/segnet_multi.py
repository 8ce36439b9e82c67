"""Multi-class SegNet (depth 3), the paper's Table 5/6. Bare file = best experiment (exp 7).

  python -m covseg_jax.main --config=configs/segnet_multi.py --workdir=runs/segnet_multi
  python -m covseg_jax.main --config=configs/segnet_multi.py:cpu --workdir=runs/segnet_multi_cpu
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.data.task = "multi"
  return default.apply_variants(config, arg, default.SEGNET_GRID, best="exp7")
