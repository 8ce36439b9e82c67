"""Run logs: a JSON-lines metrics file and TensorBoard event files (tensorboardX, no TensorFlow).

Only process 0 writes; other processes get a writer that does nothing, so callers need no checks.
"""
import json
import os

import jax
import numpy as np

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  """Writes scalars to <workdir>/metrics.jsonl and <workdir>/tensorboard/."""

  def __init__(self, workdir, enabled=None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._jsonl = None
    self._tb = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # Imported lazily: only the writer needs it.
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, METRICS_FILE), "a", encoding="utf-8")
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

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

  def flush(self):
    if self.enabled:
      self._jsonl.flush()
      self._tb.flush()

  def close(self):
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
      self.enabled = False


def read_metrics(workdir):
  """The metrics file as a list of dicts (empty if absent)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
