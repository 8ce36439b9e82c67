import importlib

import pytest

from covseg_jax import config_file
from covseg_jax.errors import InputError

FAMILIES = ["default", "segnet_binary", "segnet_multi", "segnet_vgg16_multi", "unet_binary",
            "unet_multi", "lung_resnet", "segnet_binary_improved", "segnet_multi_improved",
            "lung_resnet_improved", "lung_unet"]


def load(family, arg=None):
  return importlib.import_module(f"configs.{family}").get_config(arg)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_and_cpu_variant_load(family):
  config = load(family)
  cpu = load(family, "cpu")
  assert cpu.data.image_size < config.data.image_size
  assert cpu.train.epochs < config.train.epochs
  assert config.model.name in ("segnet", "unet", "highresnet")


def test_paper_grid_segnet():
  # experiment = b + 3(l - 1): exp 7 = third learning rate, first batch size.
  assert (load("segnet_multi", "exp7").train.learning_rate,
          load("segnet_multi", "exp7").train.batch_size) == (3e-3, 4)
  assert (load("segnet_multi", "exp2").train.learning_rate,
          load("segnet_multi", "exp2").train.batch_size) == (1e-4, 8)
  assert load("segnet_multi").train.learning_rate == 3e-3  # Bare file = best experiment (7).
  assert load("segnet_binary").train.learning_rate == 1e-3  # Best binary = exp 4.


def test_paper_grid_unet():
  config = load("unet_multi", "exp9")
  assert (config.train.learning_rate, config.train.batch_size) == (1e-3, 12)
  config = load("unet_binary")
  assert (config.train.learning_rate, config.train.batch_size) == (5e-4, 2)
  assert config.model.depth == 2


def test_variants_combine_and_unknown_fails():
  config = load("unet_multi", "exp1,cpu")
  assert config.train.learning_rate == 1e-4 and config.data.image_size == 128
  with pytest.raises(ValueError, match="unknown config variant"):
    load("segnet_multi", "exp10")
  with pytest.raises(ValueError, match="unknown config variant"):
    load("lung_resnet", "exp1")


def test_load_reads_variants_and_overrides_as_main_does(in_repo):
  config = config_file.load("configs/unet_multi.py:cpu,exp9",
                            ["--config.train.epochs=3", "--config.eval.tta_flip=True"])
  assert (config.train.learning_rate, config.data.image_size) == (1e-3, 128)
  assert (config.train.epochs, config.eval.tta_flip) == (3, True)


@pytest.mark.parametrize("config_arg, overrides, message", [
    ("configs/missing.py", [], "no config file 'configs/missing.py'"),
    ("configs/missing.py:cpu", ["--config.train.epochs=3"], "no config file 'configs/missing.py'"),
    ("configs/segnet_multi.py:bogus", [], "flag --config=configs/segnet_multi.py:bogus: "
     "ValueError: unknown config variant 'bogus': use exp1..exp9 and/or cpu"),
    ("configs/segnet_multi.py", ["--config.trian.epochs=3"], "--config override: the config "
     "has no field 'trian'. Did you mean \"train\" instead of \"trian\"?"),
    ("configs/segnet_multi.py", ["--config.train.epochz=3"], "--config override: the config "
     "has no field 'epochz'. Did you mean \"epochs\" instead of \"epochz\"?"),
    ("configs/segnet_multi.py", ["--config.train.epochs=abc"],
     "flag --config.train.epochs=abc: invalid literal for int() with base 10: 'abc'")])
def test_load_rejects_bad_input_in_one_line(in_repo, config_arg, overrides, message):
  with pytest.raises(InputError) as error:
    config_file.load(config_arg, overrides)
  assert str(error.value) == message


def test_faithful_protocol_fields():
  config = load("segnet_multi")
  assert config.data.image_size == 256 and config.train.epochs == 160
  assert config.train.lr_schedule == "piecewise"
  assert config.train.lr_drop_factor == 0.95 and config.train.lr_drop_every_epochs == 12
  assert config.train.l2 == 1e-4 and config.train.shear_degrees == 10.0
  assert config.data.normalization == "zero_center" and config.data.split == "paper"
  assert config.train.center_after_augment  # MATLAB's input layer centres augmented images.
  assert config.train.l2_batchnorm_offsets  # MATLAB's OffsetL2Factor is 1.
  assert tuple(config.model.features) == (64, 128, 256)
