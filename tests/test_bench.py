"""The benchmark: its FLOP counter against hand counts and the paper's networks, and a smoke run."""
import json
import os

import jax
import pytest
from absl import flags
from absl.testing import flagsaver

from configs import segnet_multi
from covseg_jax import bench, models
from covseg_jax.data import preprocess
from tests import helpers


def model(name, **kwargs):
  return models.get_model(dict(name=name, dtype="float32", **kwargs), num_classes=2)


# Hand counts at 8x8, 2 classes: 2 * pixels * Cout * Cin * kh * kw per convolution.
@pytest.mark.parametrize("network, expected", [
    # 3x3 1->4, 3x3 4->4 (after un-pooling), 1x1 4->2.
    (model("segnet", features=(4,), convs_per_stage=(1,)),
     2 * 64 * (4 * 1 * 9 + 4 * 4 * 9 + 2 * 4)),
    # Encoder 3x3 1->2, 2->2 at 8x8; bridge 2->4, 4->4 at 4x4; 2x2 stride-2 up-sampling 4->2
    # (counted over its 4x4 input); decoder 4->2, 2->2 at 8x8; 1x1 2->2.
    (model("unet", depth=1, base_features=2, upsample="transpose"),
     2 * 64 * (2 * 9 + 2 * 2 * 9) + 2 * 16 * (4 * 2 * 9 + 4 * 4 * 9 + 4 * 2 * 4)
     + 2 * 64 * (2 * 4 * 9 + 2 * 2 * 9 + 2 * 2)),
    # Stem 3x3 1->2, one block of two dilated 3x3 2->2, 1x1 head 2->4, 1x1 4->2.
    (model("highresnet", features=(2,), dilations=(2,), blocks_per_stage=1, head_features=4),
     2 * 64 * (2 * 9 + 2 * 2 * 2 * 9 + 4 * 2 + 2 * 4)),
])
def test_conv_flops_match_hand_counts(network, expected):
  assert bench.conv_flops(network, 8) == expected


@pytest.mark.parametrize("network, plain", [
    (model("unet", depth=1, base_features=2), model("unet", depth=1, base_features=2,
                                                    upsample="transpose")),
    (model("highresnet", features=(2,), dilations=(2,)),
     model("highresnet", features=(2,), dilations=(2,), dilation_impl="rhs_dilation")),
])
def test_fast_and_plain_forms_count_the_same_flops(network, plain):
  assert bench.conv_flops(network, 8) == bench.conv_flops(plain, 8)


# PERFORMANCE.md's forward GFLOP per 256x256 image.
@pytest.mark.parametrize("preset, gflop", [
    ("segnet", 43.6), ("segnet_vgg16", 84.7), ("unet", 50.6), ("unet4", 96.2),
    ("highresnet", 35.7)])
def test_paper_networks_flops(preset, gflop):
  config = bench.load_config(preset)
  network = models.get_model(config.model, preprocess.num_classes(config.data.task))
  assert config.data.image_size == 256
  assert bench.conv_flops(network, 256) / 1e9 == pytest.approx(gflop, abs=0.05)


def test_load_config_rejects_unknown_models():
  with pytest.raises(ValueError, match="neither a preset"):
    bench.load_config("no_such_model")
  with pytest.raises(ValueError, match="unknown config variant 'bogus'"):
    bench.load_config(os.path.join(bench._CONFIG_DIR, "segnet_multi.py:bogus"))


def test_benchmark_smoke_run(tmp_path):
  """A tiny SegNet through the command line, step and eval modes, 2 timed steps each (with a
  moving average of the weights, which the step then keeps as a training run's does)."""
  config_file = tmp_path / "tiny.py"
  config_file.write_text(
      "from configs import segnet_multi\n"
      "def get_config(arg=None):\n"
      "  config = segnet_multi.get_config(arg)\n"
      "  config.model.features = (4,)\n"
      "  config.model.convs_per_stage = (1,)\n"
      "  config.train.ema_epochs = 1.0\n"
      "  return config\n")
  output = tmp_path / "bench.jsonl"
  num_devices = len(jax.devices())
  with flagsaver.flagsaver():
    flags.FLAGS(["bench", f"--model={config_file}:cpu", "--mode=step", "--mode=eval",
                 "--steps_per_call=1", "--steps_per_call=2", "--image_size=32",
                 f"--batch_size={num_devices}", "--steps=2", "--warmup=1", f"--json={output}"])
    bench.main(["bench"])
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  assert [row["mode"] for row in rows] == ["step", "step", "eval"]
  assert [rows[0]["steps_per_call"], rows[1]["steps_per_call"]] == [1, 2]
  common = {"network", "form", "dtype", "image_size", "batch_size", "platform", "num_devices",
            "steps", "step_ms", "step_ms_min", "cpu_ms", "images_per_s", "tflops", "compile_s",
            "memory_mb", "memory_kind", "gflop_fwd_per_image", "flop_factor", "paper_run_steps",
            "paper_run_s"}
  for row in rows[:2]:
    assert common | {"async_step_ms", "xla_memory_mb"} <= set(row)
  assert common <= set(rows[2])
  for row in rows:
    assert row["model"] == f"{config_file}:cpu"
    assert (row["network"], row["form"], row["image_size"]) == ("segnet", "unpool=scatter", 32)
    assert row["steps"] == 2
  assert [row["flop_factor"] for row in rows] == [3, 3, 1]
  assert rows[0]["paper_run_steps"] == 160 * (72 // num_devices)
  assert rows[0]["gflop_fwd_per_image"] == rows[2]["gflop_fwd_per_image"] > 0


def test_benchmark_run_mode(tmp_path_factory):
  """A whole tiny training run, timed end to end."""
  config = segnet_multi.get_config("cpu")
  config.data.data_dir = helpers.data_dir_or_phantoms(tmp_path_factory)
  config.model.features, config.model.convs_per_stage = (4,), (1,)
  config = bench.configure(config, image_size=32, batch_size=len(jax.devices()))
  config.train.epochs = 1
  row = bench.bench_run(config)
  assert (row["mode"], row["network"], row["epochs"]) == ("run", "segnet", 1)
  assert row["wall_s"] > row["compile_s"] > 0
  assert 0 <= row["test_global_accuracy"] <= 1

