import importlib

import pytest

FAMILIES = ["default", "segnet_binary", "segnet_multi", "segnet_vgg16_multi", "unet_binary",
            "unet_multi", "lung_resnet"]


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


def test_faithful_protocol_fields():
  config = load("segnet_multi")
  assert config.data.image_size == 256 and config.train.epochs == 160
  assert config.train.lr_drop_factor == 0.95 and config.train.lr_drop_every_epochs == 12
  assert config.train.l2 == 1e-4 and config.train.shear_degrees == 10.0
  assert config.data.normalization == "zero_center" and config.data.split == "paper"
  assert tuple(config.model.features) == (64, 128, 256)
