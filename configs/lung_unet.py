"""Lung segmentation with a four-level U-Net in place of HighResNet: an improvement on the
second paper's config, not a reproduction of it.

lung_resnet_improved (whole slices, per-image z-score, the Dice loss, Adam at 1e-3, flip TTA and
hole filling) with its network replaced by default.unet_model() at encoder depth 4 (16x16 at the
bottleneck of a 256x256 slice) with BatchNorm after each convolution. HighResNet keeps full
resolution throughout (a receptive field 87 pixels across); on slices whose lungs are densely
consolidated, which look like soft tissue, it misses most of the lung (RESULTS.md, R29), and
doubling its dilations did not help (R10). The U-Net pools down to features of the whole slice.

Chosen on the validation sets of the five disjoint folds at the :cpu scale (128x128, 40 epochs;
U-Net a quarter of its width as in the paper families, HighResNet half of it), never on the test
set (RESULTS.md, R30). Validation lung Dice, lung_resnet_improved -> lung_unet:
0.9559 -> 0.9740, 0.9577 -> 0.9734, 0.9728 -> 0.9803, 0.9712 -> 0.9732, 0.9718 -> 0.9732;
mean 0.9659 -> 0.9748, up on every fold. The consolidated slice 24 goes from 0.435 to 0.832,
the basal slice 75 from 0.625 to 0.897.
Tried on the same folds and not adopted (RESULTS.md, R34): train.rotation_degrees = 15 with
train.scale_range = 0.15, 0.9687, up on 1 of 5; train.gamma_range = 0.5, 0.9721, up on 2 of 5.
And on the same folds trained again on another CPU (RESULTS.md, R35; lung_unet 0.9737 there):
model.depth = 5, 0.9721, up on 3 of 5; train.loss = 'weighted_ce+dice', +0.0013 over three seeds
(+0.0014, +0.0031, -0.0005), a quarter of lung_unet's own spread over seeds.
On that CPU again (RESULTS.md, R36): model.base_features = 32 (twice the :cpu width), 0.9689, up
on 1 of 5; 80 epochs instead of 40, +0.0016 over three seeds (-0.0027, +0.0052, +0.0023).
And (RESULTS.md, R37): data.lesion_class = True (trained on outside the lung, lung without
lesion and lesion, the last two merged into the lung), -0.0046 over three seeds (-0.0034,
-0.0016, -0.0090).
And (RESULTS.md, R39): train.ema_epochs = 4 (the weights' moving average, the same trained
networks read two ways), +0.0028 over three seeds (+0.0004, +0.0059, +0.0020), up on 11 of 15
fold-seed pairs; but at this config's scale (128x128, 160 epochs, the paper's validation slices,
three seeds) -0.0013 (+0.0005, +0.0023, -0.0066): not taken.
And (RESULTS.md, R41): train.l2 = 0 (the paper's 1e-4 kept here), +0.0032 over three seeds
(+0.0020, +0.0046, +0.0029), up on 12 of 15; at the config's scale +0.0004 (+0.0044, +0.0005,
-0.0037): not taken; train.l2 = 1e-3, -0.0143 with seed 0, down on every fold.
And (RESULTS.md, R42): train.elastic = 0.02 (random elastic deformation), -0.0027 over seeds 0
and 1 (-0.0003, -0.0052), up on 5 of 10.

  python -m covseg_jax.main --config=configs/lung_unet.py --workdir=runs/lung_unet
  python -m covseg_jax.main --config=configs/lung_unet.py:cpu --workdir=runs/lung_unet_cpu
"""
from configs import default, lung_resnet_improved


def get_config(arg=None):
  config = lung_resnet_improved.get_config()
  config.model = default.unet_model()
  config.model.depth = 4
  config.model.batch_norm = True
  return default.apply_variants(config, arg)
