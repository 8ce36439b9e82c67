"""Entry point.

  python -m covseg_jax.main --config=configs/segnet_multi.py --workdir=runs/x
  python -m covseg_jax.main --workdir=runs/x --mode=evaluate [--checkpoint=best] [--split=val] \
      [--tta_flip] [--fill_holes] [--foreground_threshold=T] [--logit_offsets=B0,B1,B2,B3]

Training resumes from the latest good checkpoint in --workdir. Evaluation needs only the workdir.
Bad input (a bad flag, config file, variant or --config.FIELD=VALUE override, missing data, bad
files, an incomplete run directory) ends with a one-line `error: ...` and exit status 2.
SIGTERM during training (a scheduler's preemption or time-limit notice) saves a checkpoint after
the current step and ends with `preempted: ...` and exit status 143; the same command resumes.
"""
import logging as python_logging
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from covseg_jax import checkpoint, config_file, evaluate, parallel, train
from covseg_jax.errors import PREEMPTED_EXIT_STATUS, InputError, Preempted

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:variant]); "
                                "train mode only: evaluation reads <workdir>/config.json.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_enum("mode", "train", ["train", "evaluate"],
                  "train (resuming from the workdir's checkpoints) or evaluate a trained run.")
flags.DEFINE_string("checkpoint", None, "evaluate: 'best', 'last' or a step number "
                    "(default: the run's eval.checkpoint).")
flags.DEFINE_enum("split", None, ["test", "val", "train"],
                  "evaluate: the split to evaluate (default: the run's eval.split).")
flags.DEFINE_bool("tta_flip", None, "evaluate: average each prediction with that of the "
                  "top-bottom mirrored image (default: the run's eval.tta_flip).")
flags.DEFINE_bool("fill_holes", None, "evaluate, lung runs: fill the enclosed holes of each "
                  "predicted lung slice (default: the run's eval.fill_holes).")
flags.DEFINE_float("foreground_threshold", None, "evaluate, binary and lung runs: label a pixel "
                   "foreground when its softmax exceeds this (0.5: the argmax; default: the "
                   "run's eval.foreground_threshold).")
flags.DEFINE_list("logit_offsets", None, "evaluate, multi-class runs: label a pixel with the "
                  "argmax of its logits plus these, one per class (empty: the argmax; default: "
                  "the run's eval.logit_offsets).")
flags.mark_flags_as_required(["workdir"])


def _quiet_orbax(record):
  """Keeps orbax's INFO lines (dozens per save) out of the log; its warnings stay."""
  return record.levelno >= python_logging.WARNING or "/orbax/" not in record.pathname


def _parse_flags(argv):
  """absl's flag parsing, with a bad flag, config file, variant or override as bad input."""
  try:
    return config_file.parse(FLAGS, argv)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def _offsets(values):
  """--logit_offsets as a tuple of floats (None if not given)."""
  try:
    return None if values is None else tuple(float(x) for x in values)
  except ValueError:
    raise InputError(f"--logit_offsets={','.join(values)}: not a comma-separated list of "
                     "numbers") from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.mode == "train" and FLAGS.config is None:
    raise app.UsageError("--config is required to train")
  which = None
  if FLAGS.checkpoint is not None:
    try:
      which = checkpoint.parse_which(FLAGS.checkpoint)
    except ValueError as e:
      raise app.UsageError(f"--checkpoint: {e}") from None
  logging.get_absl_handler().addFilter(_quiet_orbax)
  try:
    parallel.initialize_distributed()  # Before any other JAX call.
    logging.info("JAX %s, process %d/%d, devices: %s", jax.__version__, jax.process_index(),
                 jax.process_count(), jax.devices())
    if FLAGS.mode == "train":
      parallel.catch_sigterm()
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    else:
      if FLAGS.config is not None:
        logging.warning("--config is ignored in evaluate mode: the run's config.json is used")
      evaluate.evaluate_run(FLAGS.workdir, which=which,
                            splits=None if FLAGS.split is None else [FLAGS.split],
                            tta_flip=FLAGS.tta_flip, fill_holes=FLAGS.fill_holes,
                            foreground_threshold=FLAGS.foreground_threshold,
                            logit_offsets=_offsets(FLAGS.logit_offsets))
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except Preempted as e:
    print(f"preempted: {e}", file=sys.stderr)
    sys.exit(PREEMPTED_EXIT_STATUS)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
