"""Entry point: python -m covseg_jax.main --config=configs/segnet_multi.py --workdir=runs/x

Bad input (missing data, bad files) ends with a one-line `error: ...` and exit status 2.
"""
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from covseg_jax import parallel, train
from covseg_jax.errors import InputError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:variant]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  parallel.initialize_distributed()  # Before any other JAX call.
  logging.info("JAX %s, process %d/%d, devices: %s", jax.__version__, jax.process_index(),
               jax.process_count(), jax.devices())
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
