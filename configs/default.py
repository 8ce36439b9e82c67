"""Defaults shared by every experiment family: the paper's protocol (Saood & Hatem 2021).

Each family file imports this, overrides what differs and applies the variants given after the
colon. Variants combine with commas:

  python -m covseg_jax.main --config=configs/segnet_multi.py:exp3 --workdir=runs/segnet_multi_exp3
  python -m covseg_jax.main --config=configs/segnet_multi.py:cpu --workdir=runs/segnet_multi_cpu

  expN  one of the paper's nine hyperparameter experiments, N = b + 3(l - 1) for learning-rate
        index l and batch-size index b of the family's grid (PROTOCOL.md).
  cpu   a reduced run (smaller images, fewer epochs, narrower network) that trains on the real data
        on a 2-core CPU in a few minutes and still learns.
  Any field can be overridden: --config.train.learning_rate=3e-3.
"""
import ml_collections


def get_config(arg=None):
  """The paper's protocol with SegNet depth 3 on the multi-class task (learning rate 1e-3, batch 4)."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds parameters, data order and augmentation.

  config.data = ml_collections.ConfigDict()
  config.data.data_dir = ""  # Empty: search $COVSEG_DATA_DIR, ./data/medseg, ../shared/data/medseg.
  config.data.image_source = "lungmasked"  # The authors' lung-masked PNGs: their exact inputs.
  config.data.task = "multi"  # 'binary' (infected vs not), 'multi' (4 classes) or 'lung'.
  config.data.image_size = 256  # The paper resized 512 -> 256.
  config.data.normalization = "zero_center"  # Subtract the training mean image (MATLAB 'zerocenter').
  config.data.lung_mask = True  # Zero everything outside the lungs.
  # Lung and binary tasks: train on finer classes, the lesions in classes of their own, and
  # predict the task's as groups of them merged (preprocess.LESION_CLASSES). Lung: outside the
  # lung, lung without lesion and lesion (any class of the labels) inside the lung, the lung
  # the last two merged; binary: the multi task's four classes, infected the three lesions.
  config.data.lesion_class = False
  # 'paper' (72/10/18 of the authors), 'kfold' (cross-validation) or 'paper_kfold' (the
  # paper's test slices in every fold, folds of the other 82: to ensemble); see data/splits.py.
  config.data.split = "paper"
  config.data.num_folds = 5  # For the k-fold splits ('kfold': the paper's 70/10/20).
  config.data.fold = 0
  config.data.split_seed = 0  # Permutation seed of the k-fold splits.

  config.model = ml_collections.ConfigDict()
  config.model.name = "segnet"  # 'segnet', 'unet' or 'highresnet'.
  config.model.dtype = "bfloat16"  # Compute dtype; parameters and loss stay float32.
  config.model.features = (64, 128, 256)  # MATLAB segnetLayers(..., 3): depth 3.
  config.model.convs_per_stage = (2, 2, 2)
  config.model.unpool = "scatter"  # 'scatter' (by argmax indices) or 'onehot' (same function).

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 160
  config.train.batch_size = 4  # Global batch, split over all devices.
  config.train.learning_rate = 1e-3
  # 'piecewise' (the paper's): x lr_drop_factor every lr_drop_every_epochs epochs; 'cosine':
  # from learning_rate down to 0 at the last step (not in the paper; ignores the two below).
  config.train.lr_schedule = "piecewise"
  config.train.lr_drop_factor = 0.95  # Piecewise schedule: x0.95 ...
  config.train.lr_drop_every_epochs = 12  # ... every 12 epochs.
  config.train.l2 = 1e-4  # MATLAB L2Regularization: l2 * w added to the weights' gradients.
  # L2 decays the BatchNorm offsets too, as MATLAB's OffsetL2Factor 1 (and NiftyNet's BN
  # regulariser) do; convolution biases never (BiasL2Factor 0). False: the runs before 2026-11-24
  # 19:00 UTC, which decayed neither.
  config.train.l2_batchnorm_offsets = True
  # 'weighted_ce' (median-frequency), 'dice', 'weighted_ce+dice', 'ce+dice' (unweighted CE).
  config.train.loss = "weighted_ce"
  # Cross-entropy targets (1 - e) one-hot + e / classes rather than one-hot (losses.py), in
  # training only: the validation loss stays the plain one. 0 is off (the paper).
  config.train.label_smoothing = 0.0
  config.train.flip = True  # Random vertical (top-bottom) reflection.
  config.train.shear_degrees = 10.0  # Random X and Y shear in [-10, 10] degrees.
  config.train.rotation_degrees = 0.0  # Random rotation in [-r, r] degrees; not in the paper.
  config.train.scale_range = 0.0  # Random zoom in [1 - s, 1 + s]; not in the paper.
  # Random elastic deformation: a 5x5 grid of control points moves by normal draws with this
  # standard deviation, a fraction of the image's side, and the pixels between them with their
  # bicubic interpolation (augment.random_displacement); 0 is off. Not in the paper.
  config.train.elastic = 0.0
  # Random gamma of each image's tones, g in [1 / (1 + r), 1 + r] (augment.random_gamma);
  # not in the paper.
  config.train.gamma_range = 0.0
  # MATLAB's order: the datastore flips and shears the images, then the input layer subtracts
  # the mean image ('zero_center' only). False flips and shears the centred images, mean and all.
  config.train.center_after_augment = True
  # Evaluate (validation, checkpoints' model, the final evaluation, predict) an exponential moving
  # average of the weights and BatchNorm statistics, with a time constant of this many epochs
  # (decay exp(-1 / (ema_epochs * steps per epoch)) per step), rather than the last step's; 0 is
  # off (the paper). Not in the paper.
  config.train.ema_epochs = 0.0
  config.train.val_every_steps = 10  # MATLAB ValidationFrequency.
  config.train.log_every_steps = 10
  config.train.image_summary_every_steps = 180  # TensorBoard overlays of fixed val slices.
  config.train.image_summary_slices = 3  # The validation slices with the most foreground.
  # Training steps per compiled call, run in one lax.scan; a call never runs past a log,
  # validation or checkpoint step. 1 (a plain step per call) is the fastest on CPU, where the scan
  # is 14-17x slower (BENCHMARKS.md); on a GPU compare with `bench --steps_per_call`.
  config.train.steps_per_call = 1

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_steps = 200  # Periodic save; the last step is always saved.
  config.checkpoint.max_to_keep = 2  # Latest periodic checkpoints kept, and latest best ones apart.
  # Picks checkpoints_best: val/loss, val/global_accuracy or val/dice/<class, spaces as '_'>.
  config.checkpoint.best_metric = "val/loss"
  config.checkpoint.best_mode = "min"  # 'min' or 'max' of best_metric.

  config.eval = ml_collections.ConfigDict()
  config.eval.split = "test"  # Split evaluated after training: 'test' or 'val'.
  # 'last' (the paper's final-iteration weights), 'best' (by checkpoint.best_metric) or a step.
  config.eval.checkpoint = "last"
  config.eval.batch_size = 8
  # Test-time augmentation of the final evaluation and of predict: average the softmax of each
  # slice and of its top-bottom mirror (the training flip). Validation during training is plain.
  config.eval.tta_flip = False
  # Lung task: fill the enclosed holes of each predicted lung slice (lesions the network left
  # out of the lung), in the final evaluation and in predict. Validation during training is plain.
  config.eval.fill_holes = False
  # Two-class tasks (binary, lung): a pixel is foreground (infected, lung) when its softmax, after
  # any test-time flips, exceeds this, in the final evaluation and in predict. 0.5 is the argmax;
  # a higher value undoes some of the weighted loss's pull towards the rare class.
  config.eval.foreground_threshold = 0.5
  # Multi-class task: label each pixel with the argmax of its logits (after any test-time flips)
  # plus these offsets, one per class, in the final evaluation and in predict: adding log w to a
  # class's logit weighs its softmax by w. () is the argmax. `python -m covseg_jax.threshold`
  # chooses them on validation slices.
  config.eval.logit_offsets = ()
  return apply_variants(config, arg, SEGNET_GRID)


# The paper's hyperparameter grids: (learning rates, mini-batch sizes); expN = b + 3(l - 1).
SEGNET_GRID = ((1e-4, 1e-3, 3e-3), (4, 8, 12))
UNET_GRID = ((1e-4, 5e-4, 1e-3), (2, 8, 12))


def unet_model():
  """MATLAB unetLayers(size, classes, 'EncoderDepth', 2)."""
  model = ml_collections.ConfigDict()
  model.name = "unet"
  model.dtype = "bfloat16"
  model.depth = 2
  model.base_features = 64
  model.upsample = "depth_to_space"  # Same function as a 2x2 transposed conv, ~3x faster on GPU.
  model.batch_norm = False  # MATLAB's U-Net has none.
  model.dropout_rate = 0.5
  return model


def apply_improvements(config):
  """The changes both *_improved configs share, each chosen on validation folds (RESULTS.md).

  Cross-entropy + Dice loss instead of the weighted cross-entropy alone, and flip test-time
  augmentation in the final evaluation and in predict. (segnet_multi_improved adds rotation and
  zoom, which only the multi-class folds supported.)
  """
  config.train.loss = "weighted_ce+dice"
  config.eval.tta_flip = True
  return config


def apply_variants(config, arg, grid=None, best=None):
  """Applies the family's best experiment `best`, then the comma-separated variants in `arg`."""
  for variant in [v for v in [best] + (arg or "").split(",") if v]:
    if grid and variant.startswith("exp") and variant[3:].isdigit() and 1 <= int(variant[3:]) <= 9:
      learning_rates, batch_sizes = grid
      lr_index, batch_index = divmod(int(variant[3:]) - 1, 3)
      config.train.learning_rate = learning_rates[lr_index]
      config.train.batch_size = batch_sizes[batch_index]
    elif variant == "cpu":
      _apply_cpu(config)
    else:
      allowed = "exp1..exp9 and/or cpu" if grid else "cpu"
      raise ValueError(f"unknown config variant {variant!r}: use {allowed}")
  return config


def _apply_cpu(config):
  """Shrinks a run to a few minutes on a 2-core CPU: 128x128, narrower, fewer epochs, float32."""
  config.data.image_size = 128
  config.model.dtype = "float32"  # bf16 convolutions are emulated, hence slow, on CPU.
  if config.model.name == "segnet":
    config.model.features = tuple(f // 4 for f in config.model.features)
  elif config.model.name == "unet":
    config.model.base_features //= 4
  elif config.model.name == "highresnet":
    config.model.features = tuple(f // 2 for f in config.model.features)
    config.model.head_features //= 2
  # HighResNet keeps full resolution throughout, so it costs ~4x more per image than SegNet here.
  config.train.epochs = 20 if config.model.name == "highresnet" else 40
  config.train.batch_size = 8
  config.train.val_every_steps = 45
  config.train.log_every_steps = 9
  config.train.image_summary_every_steps = 90
  config.checkpoint.every_steps = 90
  config.eval.batch_size = 6
