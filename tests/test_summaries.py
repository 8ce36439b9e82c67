"""MetricWriter: TensorBoard scalars, images and hparams read back; resumed runs drop stale logs."""
import json
import os

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from configs import segnet_multi
from covseg_jax import summaries


def read_events(workdir):
  accumulator = event_accumulator.EventAccumulator(
      os.path.join(workdir, summaries.TENSORBOARD_DIR),
      size_guidance={event_accumulator.IMAGES: 0, event_accumulator.SCALARS: 0})
  accumulator.Reload()
  return accumulator


def hparams_written(accumulator):
  """{name: value} of the session start info the hparams plugin reads."""
  content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
  start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
  return {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
          for name, value in start.hparams.items()}


def test_scalars_images_and_hparams_read_back(tmp_path):
  workdir = str(tmp_path)
  writer = summaries.MetricWriter(workdir, enabled=True)
  config = segnet_multi.get_config("cpu")
  writer.write_hparams(summaries.hparams_from_config(config), ["val/loss"])
  writer.write_scalars(3, {"train/loss": 0.5, "val/dice/x": float("nan")})
  writer.write_scalars(6, {"train/loss": 0.25})
  image = np.zeros((8, 20, 3), np.uint8)
  image[:, :10, 0] = 255
  writer.write_image(6, "val/slice_007", image)
  writer.close()

  events = read_events(workdir)
  assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(3, 0.5), (6, 0.25)]
  assert "val/dice/x" not in events.Tags()["scalars"]  # NaN stays out of TensorBoard ...
  with open(os.path.join(workdir, summaries.METRICS_FILE)) as f:
    lines = [json.loads(line) for line in f]
  assert np.isnan(lines[0]["val/dice/x"])  # ... but not out of metrics.jsonl.
  (written,) = events.Images("val/slice_007")
  assert (written.step, written.width, written.height) == (6, 20, 8)
  hparams = hparams_written(events)
  assert hparams["train.learning_rate"] == config.train.learning_rate
  assert hparams["model.name"] == "segnet"
  assert hparams["model.features"] == str(tuple(config.model.features))
  assert hparams["data.lung_mask"] is True


def test_a_resumed_run_drops_the_logs_of_later_steps(tmp_path):
  workdir = str(tmp_path)
  writer = summaries.MetricWriter(workdir, enabled=True)
  for step in range(1, 6):
    writer.write_scalars(step, {"train/loss": float(step)})
  writer.close()
  with open(os.path.join(workdir, summaries.METRICS_FILE), "a") as f:
    f.write('{"step": 6, "train/lo')  # A line cut short by the kill.

  writer = summaries.MetricWriter(workdir, enabled=True, start_step=3)
  writer.write_scalars(4, {"train/loss": 40.0})
  writer.close()

  assert [(r["step"], r["train/loss"]) for r in summaries.read_metrics(workdir)] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
  events = read_events(workdir)
  assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


def test_hparams_from_config_is_flat_and_typed():
  config = segnet_multi.get_config("cpu")
  flat = summaries.hparams_from_config(config)
  assert flat["train.batch_size"] == 8
  assert flat["data.task"] == "multi"
  assert flat["checkpoint.best_metric"] == "val/loss"
  assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
