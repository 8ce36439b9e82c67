"""Run logs: a JSON-lines metrics file and TensorBoard event files (tensorboardX, no TensorFlow).

Only process 0 writes; other processes get a writer that does nothing, so callers need no checks.
`tensorboard --logdir runs/` shows every run's scalars, image summaries and hparams.
"""
import json
import os
import time

import jax
import numpy as np

from covseg_jax import config_file

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricWriter:
  """Writes scalars to <workdir>/metrics.jsonl and scalars, images and hparams to
  <workdir>/tensorboard/.

  start_step: the step a (resumed) run starts from. Logs of later steps, left by the attempt that
  was interrupted, are dropped from metrics.jsonl and hidden in TensorBoard (its purge_step), so
  curves have no duplicates. None keeps everything.
  """

  def __init__(self, workdir, enabled=None, start_step=None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._jsonl = None
    self._tb = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # Imported lazily: only the writer needs it.
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, METRICS_FILE)
      if start_step is not None:
        _truncate_metrics(path, start_step)
      self._jsonl = open(path, "a", encoding="utf-8")
      # The suffix keeps a writer started within the same second as the previous one (a quick
      # restart) from overwriting its file, whose name has only whole seconds.
      self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR),
                               purge_step=None if start_step is None else start_step + 1,
                               filename_suffix=f".{time.time_ns()}")

  def write_scalars(self, step, scalars):
    """One JSON line {"step": step, **scalars} and one TensorBoard scalar per entry."""
    if not self.enabled:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), **scalars}) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      if np.isfinite(value):
        self._tb.add_scalar(name, value, int(step))

  def write_image(self, step, name, image):
    """An (H, W, 3) uint8 image."""
    if self.enabled:
      self._tb.add_image(name, np.asarray(image), int(step), dataformats="HWC")

  def write_hparams(self, hparams, metric_names):
    """The run's hyperparameters for TensorBoard's HPARAMS tab.

    hparams: {name: bool, int, float or str}; metric_names: scalar tags (written with
    write_scalars) that the tab shows beside them. Written into this run's own event files, not
    a separate run as tensorboardX's add_hparams does, so the tab finds the scalars.
    """
    if not self.enabled:
      return
    from tensorboardX.summary import hparams as hparams_summary
    experiment, session_start, _ = hparams_summary(hparams, {name: 0.0 for name in metric_names})
    self._tb.file_writer.add_summary(experiment)
    self._tb.file_writer.add_summary(session_start)

  def flush(self):
    if self.enabled:
      self._jsonl.flush()
      self._tb.flush()

  def close(self):
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
      self.enabled = False


def hparams_from_config(config):
  """A flat {'train.learning_rate': 0.001, 'model.features': '(4, 8, 16)', ...} of a config."""
  return {key: value if isinstance(value, (bool, int, float, str))
          else str(tuple(value) if isinstance(value, list) else value)
          for key, value in config_file.flatten(config).items()}


def _truncate_metrics(path, last_step):
  """Keeps the lines of steps <= last_step (and drops a line cut short by a kill)."""
  if not os.path.exists(path):
    return
  kept = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        record = json.loads(line)
      except ValueError:
        continue
      if record["step"] <= last_step:
        kept.append(line if line.endswith("\n") else line + "\n")
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(kept)


def read_metrics(workdir):
  """The metrics file as a list of dicts (empty if absent)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
