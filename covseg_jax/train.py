"""Training: state, optimiser, learning-rate schedule, the jitted steps and the loop.

Data flow per step: the training set sits on the device (replicated); the host sends only the
batch's sample indices and a step key; the step gathers the batch, augments it, shards it over
the 'data' axis and updates the replicated state. Sample order is a pure function of
(seed, epoch) and every random key is folded from (seed, step), so a resumed run replays the
same batches and augmentations as an uninterrupted one: a checkpoint (checkpoint.py) needs only
the arrays and the step. Training ends with evaluate.py's evaluation and report.
"""
import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import traverse_util
from flax.training import train_state

from covseg_jax import checkpoint, evaluate, losses, models, parallel, report, summaries
from covseg_jax.data import augment, medseg, pipeline, preprocess, splits
from covseg_jax.errors import InputError, Preempted


class TrainState(train_state.TrainState):
  batch_stats: Any
  # With train.ema_epochs: the moving average of {'params', 'batch_stats'} that evaluation uses
  # (`model_variables`); None without.
  ema: Any = None

  def variables(self):
    """The last step's {'params', 'batch_stats'}."""
    return {"params": self.params, "batch_stats": self.batch_stats}


SCHEDULES = ("piecewise", "cosine")


def create_learning_rate_fn(train_config, steps_per_epoch):
  """The learning rate at each step, by train_config.lr_schedule: 'piecewise' (the paper's:
  multiply by lr_drop_factor every lr_drop_every_epochs epochs) or 'cosine' (from learning_rate
  down to 0 at the last of train_config.epochs' steps, half a cosine)."""
  if train_config.lr_schedule == "cosine":
    return optax.cosine_decay_schedule(init_value=train_config.learning_rate,
                                       decay_steps=train_config.epochs * steps_per_epoch)
  if train_config.lr_schedule != "piecewise":
    raise ValueError(f"unknown learning-rate schedule {train_config.lr_schedule!r}: use one of "
                     f"{SCHEDULES}")
  return optax.exponential_decay(
      init_value=train_config.learning_rate,
      transition_steps=train_config.lr_drop_every_epochs * steps_per_epoch,
      decay_rate=train_config.lr_drop_factor,
      staircase=True)


def l2_mask(params, batchnorm_offsets):
  """True for each parameter L2 decays: every one but the convolution biases, and but the
  BatchNorm offsets unless `batchnorm_offsets` (MATLAB's BiasL2Factor 0, OffsetL2Factor 1).
  A BatchNorm's offset is the `bias` beside a `scale`."""
  flat = traverse_util.flatten_dict(params)

  def decayed(path):
    return path[-1] != "bias" or (batchnorm_offsets and path[:-1] + ("scale",) in flat)

  return traverse_util.unflatten_dict({path: decayed(path) for path in flat})


def create_optimizer(train_config, learning_rate_fn):
  """Adam with MATLAB-style L2 regularisation: l2 * w added to the gradients (`l2_mask`)."""
  mask = functools.partial(l2_mask, batchnorm_offsets=train_config.l2_batchnorm_offsets)
  return optax.chain(
      optax.add_decayed_weights(train_config.l2, mask=mask),
      optax.scale_by_adam(),
      optax.scale_by_learning_rate(learning_rate_fn))


def create_train_state(rng, model, image_size, optimizer, ema=False):
  """Initialises float32 parameters and BatchNorm statistics on the host; with `ema`, their
  moving average starts as a copy of them."""
  dummy = jnp.zeros((1, image_size, image_size, 1), jnp.float32)
  variables = jax.jit(functools.partial(model.init, train=False))(
      {"params": rng, "dropout": rng}, dummy)
  variables = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
  return TrainState.create(apply_fn=model.apply, tx=optimizer, **variables,
                           ema=jax.tree.map(jnp.copy, variables) if ema else None)


def ema_decay(train_config, steps_per_epoch):
  """The per-step decay of the weights' moving average: a time constant of train.ema_epochs
  epochs; 0.0 (no average) when it is 0."""
  if not train_config.ema_epochs:
    return 0.0
  return float(np.exp(-1.0 / (train_config.ema_epochs * steps_per_epoch)))


def augmented_batch(images, labels, indices, key, center, train_config):
  """The batch images[indices], labels[indices], augmented with per-sample keys from `key`.

  center (S,S,1): what the images' centring subtracted (`training_center`), added back before
  the flip and shear and subtracted after them, so that they move the image and not the mean
  image; None augments the images as they are. A sample's key depends only on its position in
  the global batch, not on how many devices share the batch.
  """
  sample_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(indices.shape[0]))
  batch_images = images[indices] if center is None else images[indices] + center
  batch_images, batch_labels = augment.augment(
      sample_keys, batch_images, labels[indices],
      flip=train_config.flip, shear_degrees=train_config.shear_degrees,
      rotation_degrees=train_config.rotation_degrees, scale_range=train_config.scale_range,
      elastic=train_config.elastic, gamma_range=train_config.gamma_range)
  return batch_images if center is None else batch_images - center, batch_labels


def train_step(state, images, labels, indices, key, class_weights, center, *, train_config,
               sharding, decay=0.0):
  """One update on the batch images[indices], augmented on the device (`augmented_batch`);
  with `decay` (`ema_decay`), the moving average then moves towards the updated variables.

  images (N,S,S,1) and labels (N,S,S) are the whole (replicated) training set; indices (B,) the
  batch; key the step's key.
  """
  aug_key, dropout_key = jax.random.split(key)
  batch_images, batch_labels = augmented_batch(images, labels, indices, aug_key, center,
                                               train_config)
  batch_images = jax.lax.with_sharding_constraint(batch_images, sharding)
  batch_labels = jax.lax.with_sharding_constraint(batch_labels, sharding)

  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch_images, train=True,
        mutable=["batch_stats"], rngs={"dropout": dropout_key})
    loss = losses.compute_loss(train_config.loss, logits, batch_labels, class_weights,
                               train_config.label_smoothing)
    return loss, updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates.get("batch_stats", {}))
  if decay:
    state = state.replace(ema=jax.tree.map(
        lambda average, value: decay * average + (1.0 - decay) * value, state.ema,
        state.variables()))
  return state, {"loss": loss}


def train_steps(state, images, labels, indices, step_rng, class_weights, center, *,
                train_config, sharding, decay=0.0):
  """len(indices) train_steps in one compiled call; returns the last step's metrics.

  indices (K,B) holds K batches. Step s (state.step before it) uses the key
  fold_in(step_rng, s), so the updates do not depend on how the steps are grouped into calls.
  K > 1 runs the steps in a lax.scan: one dispatch for K steps, which PERFORMANCE.md measured
  faster on a GPU and 14-17x slower on XLA:CPU (BENCHMARKS.md); K = 1 is a plain step.
  """
  def body(state, batch_indices):
    return train_step(state, images, labels, batch_indices,
                      jax.random.fold_in(step_rng, state.step), class_weights, center,
                      train_config=train_config, sharding=sharding, decay=decay)

  if indices.shape[0] == 1:
    return body(state, indices[0])
  state, metrics = jax.lax.scan(body, state, indices)
  return state, jax.tree.map(lambda m: m[-1], metrics)


def training_center(mean_image, train_config):
  """train_step's `center` (S,S,1) float32: with train.center_after_augment, `mean_image` (S,S),
  which 'zero_center' subtracted, scaled as the images, so the flip and shear act before
  centring as in MATLAB, whose input layer centres the datastore's augmented images; else, or
  without a mean image, None (the compiled step is then the same as without the argument, and
  so are its numbers)."""
  if mean_image is None or not train_config.center_after_augment:
    return None
  return (np.asarray(mean_image)[..., None] / preprocess.ZERO_CENTER_SCALE).astype(np.float32)


@functools.lru_cache(maxsize=2)
def _epoch_order(seed, epoch, num_train):
  """pipeline.epoch_order as int32, computed once per epoch (read-only: it is shared)."""
  order = pipeline.epoch_order(seed, epoch, num_train).astype(np.int32)
  order.flags.writeable = False
  return order


def batch_indices(seed, step, steps_per_epoch, batch_size, num_train):
  """The training-set indices of step `step`'s batch: a slice of its epoch's order."""
  epoch, step_in_epoch = divmod(step, steps_per_epoch)
  order = _epoch_order(seed, epoch, num_train)
  return order[step_in_epoch * batch_size:(step_in_epoch + 1) * batch_size]


def steps_until_host_event(step, train_config, checkpoint_config, total_steps):
  """Steps from `step` to the next one after which the loop logs, validates or saves."""
  periods = (train_config.log_every_steps, train_config.val_every_steps,
             train_config.image_summary_every_steps, checkpoint_config.every_steps)
  return min([total_steps] + [(step // p + 1) * p for p in periods]) - step


def model_variables(state):
  """The variables evaluation uses, {'params', 'batch_stats'}: their moving average when the
  state keeps one (train.ema_epochs), else the last step's."""
  return state.variables() if state.ema is None else state.ema


def image_summary_indices(labels, count):
  """The `count` slices with the most foreground, in split order: a fixed, informative set."""
  foreground = (np.asarray(labels) > 0).sum(axis=(1, 2))
  return np.sort(np.argsort(-foreground, kind="stable")[:count])


def _format_eta(seconds):
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _validation_scalar_names(class_names):
  return ["val/loss", "val/global_accuracy"] + [f"val/dice/{name.replace(' ', '_')}"
                                                for name in class_names]


def check_config(config, mesh):
  """Raises InputError('config: <field and problem>') for a config that cannot train on `mesh`.

  Runs before any data is loaded or anything compiles, so a bad value on the command line ends
  at once with one line. (Fields that need the data, e.g. the best metric's class name, are
  checked in train_and_evaluate.)
  """
  tc, data = config.train, config.data
  checks = [
      (tc.epochs >= 1, f"train.epochs={tc.epochs} must be at least 1"),
      (tc.batch_size >= 1, f"train.batch_size={tc.batch_size} must be at least 1"),
      (tc.steps_per_call >= 1, f"train.steps_per_call={tc.steps_per_call} must be at least 1"),
      (tc.learning_rate > 0, f"train.learning_rate={tc.learning_rate} must be above 0"),
      (0 < tc.lr_drop_factor <= 1, f"train.lr_drop_factor={tc.lr_drop_factor} must be in (0, 1]"),
      (tc.lr_drop_every_epochs >= 1,
       f"train.lr_drop_every_epochs={tc.lr_drop_every_epochs} must be at least 1"),
      (tc.l2 >= 0, f"train.l2={tc.l2} must be at least 0"),
      (0 <= tc.scale_range < 1, f"train.scale_range={tc.scale_range} must be in [0, 1)"),
      (tc.gamma_range >= 0, f"train.gamma_range={tc.gamma_range} must be at least 0"),
      (tc.elastic >= 0, f"train.elastic={tc.elastic} must be at least 0"),
      (0 <= tc.label_smoothing < 1,
       f"train.label_smoothing={tc.label_smoothing} must be in [0, 1)"),
      (not tc.label_smoothing or tc.loss != "dice",
       "train.label_smoothing smooths the cross-entropy, and train.loss='dice' has none"),
      (tc.ema_epochs >= 0, f"train.ema_epochs={tc.ema_epochs} must be at least 0"),
      (config.eval.batch_size >= 1, f"eval.batch_size={config.eval.batch_size} must be at least 1"),
      (tc.loss in losses.LOSSES, f"train.loss={tc.loss!r} is not one of {losses.LOSSES}"),
      (tc.lr_schedule in SCHEDULES, f"train.lr_schedule={tc.lr_schedule!r} is not one of {SCHEDULES}"),
      (data.task in preprocess.TASKS, f"data.task={data.task!r} is not one of {preprocess.TASKS}"),
      (data.task == "lung" or not config.eval.fill_holes,
       f"eval.fill_holes is for the lung task, not data.task={data.task!r}"),
      (data.task in preprocess.LESION_CLASSES or not data.lesion_class,
       f"data.lesion_class is for the tasks {tuple(preprocess.LESION_CLASSES)}, "
       f"not data.task={data.task!r}"),
      (data.split in splits.SPLITS, f"data.split={data.split!r} is not one of {splits.SPLITS}"),
      (data.normalization in preprocess.NORMALIZATIONS,
       f"data.normalization={data.normalization!r} is not one of {preprocess.NORMALIZATIONS}"),
      (data.image_source in medseg.IMAGE_SOURCES,
       f"data.image_source={data.image_source!r} is not one of {medseg.IMAGE_SOURCES}"),
  ]
  for ok, problem in checks:
    if not ok:
      raise InputError(f"config: {problem}")
  problem = evaluate.decision_problem(config.eval.foreground_threshold,
                                      config.eval.logit_offsets, data.task)
  if problem:
    raise InputError(f"config: {problem}")
  try:
    parallel.check_batch_size(tc.batch_size, mesh)
    checkpoint.parse_which(config.eval.checkpoint)
    model = models.for_config(config)
    jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                   jax.ShapeDtypeStruct((1, data.image_size, data.image_size, 1), jnp.float32))
  except (ValueError, TypeError) as e:
    raise InputError(f"config: {e}") from None


def train_and_evaluate(config, workdir):
  """Trains `config` in `workdir`, then evaluates config.eval.split; returns its results.

  Resumes from the latest good checkpoint in `workdir` when there is one. Raises InputError
  for a config that cannot train (check_config), for a workdir holding a run of another config
  (checkpoint.check_resumable) or of other slices (checkpoint.check_split_record) and for bad
  data.
  """
  mesh = parallel.create_mesh()
  tc = config.train
  check_config(config, mesh)
  checkpoint.check_resumable(workdir, config)
  dataset = pipeline.load_dataset(config.data)
  checkpoint.check_split_record(workdir, dataset)
  num_train = len(dataset.train.images)
  if tc.batch_size > num_train:
    raise InputError(f"config: train.batch_size={tc.batch_size} exceeds the {num_train} "
                     "training images")
  if config.checkpoint.best_metric not in _validation_scalar_names(dataset.class_names):
    raise InputError(f"config: checkpoint.best_metric={config.checkpoint.best_metric!r} is not "
                     f"one of {_validation_scalar_names(dataset.class_names)}")
  final_checkpoint = checkpoint.parse_which(config.eval.checkpoint)
  steps_per_epoch = num_train // tc.batch_size  # MATLAB drops the last partial mini-batch.
  total_steps = tc.epochs * steps_per_epoch

  model = models.for_config(config)
  learning_rate_fn = create_learning_rate_fn(tc, steps_per_epoch)
  rng = jax.random.key(config.seed)
  init_rng, step_rng = jax.random.split(rng)
  state = create_train_state(init_rng, model, config.data.image_size,
                             create_optimizer(tc, learning_rate_fn), ema=tc.ema_epochs > 0)
  state = parallel.replicate(state, mesh)
  checkpoints = checkpoint.Checkpointer(workdir, config.checkpoint, total_steps)
  state = checkpoints.restore(state)
  start_step = int(state.step)
  if start_step > total_steps:  # Before write_run_files: config.json keeps the run's epochs.
    raise InputError(f"{workdir}: its checkpoint is at step {start_step}, past the {total_steps} "
                     f"steps of train.epochs={tc.epochs}: give at least as many epochs as it "
                     "was trained for, or a new --workdir")

  checkpoint.write_run_files(workdir, config, dataset)
  writer = summaries.MetricWriter(workdir, start_step=start_step)
  if start_step == 0:
    writer.write_hparams(summaries.hparams_from_config(config),
                         _validation_scalar_names(dataset.class_names))

  train_images = parallel.replicate(dataset.train.images, mesh)
  train_labels = parallel.replicate(dataset.train_targets, mesh)
  class_weights = parallel.replicate(dataset.train_class_weights, mesh)
  center = parallel.replicate(training_center(dataset.mean_image, tc), mesh)
  step_fn = jax.jit(
      functools.partial(train_steps, train_config=tc, sharding=parallel.batch_sharding(mesh),
                        decay=ema_decay(tc, steps_per_epoch)),
      donate_argnums=0)
  evaluator = evaluate.Evaluator(mesh, model.apply, tc.loss, dataset.class_weights,
                                 config.eval.batch_size)
  summary_indices = image_summary_indices(dataset.val.labels, tc.image_summary_slices)
  summary_split = dataclasses.replace(
      dataset.val, **{field.name: getattr(dataset.val, field.name)[summary_indices]
                      for field in dataclasses.fields(dataset.val)})

  logging.info("training %s on %s: %d steps (%d epochs x %d), batch %d on %d device(s)%s",
               config.model.name, dataset.task, total_steps, tc.epochs, steps_per_epoch,
               tc.batch_size, mesh.devices.size,
               f", resuming at step {start_step}" if start_step else "")
  timer_start, timer_step = time.perf_counter(), start_step
  done = start_step
  while done < total_steps:
    count = min(tc.steps_per_call,
                steps_until_host_event(done, tc, config.checkpoint, total_steps))
    indices = np.stack([batch_indices(config.seed, s, steps_per_epoch, tc.batch_size, num_train)
                        for s in range(done, done + count)])
    state, step_metrics = step_fn(state, train_images, train_labels,
                                  parallel.replicate(indices, mesh), step_rng, class_weights,
                                  center)
    done += count
    epoch = (done - 1) // steps_per_epoch
    if done % tc.log_every_steps == 0 or done == total_steps:
      loss = float(step_metrics["loss"])  # Blocks: the timing below is honest.
      elapsed = time.perf_counter() - timer_start
      images_per_sec = (done - timer_step) * tc.batch_size / max(elapsed, 1e-9)
      eta = (total_steps - done) * tc.batch_size / max(images_per_sec, 1e-9)
      lr = float(learning_rate_fn(done - 1))
      writer.write_scalars(done, {"train/loss": loss, "train/learning_rate": lr,
                                  "train/images_per_sec": images_per_sec, "epoch": epoch + 1})
      logging.info("epoch %d/%d step %d/%d loss %.4f lr %.2e %.1f img/s ETA %s",
                   epoch + 1, tc.epochs, done, total_steps, loss, lr, images_per_sec,
                   _format_eta(eta))
      timer_start, timer_step = time.perf_counter(), done
    if done % tc.val_every_steps == 0 or done == total_steps:
      predictions, val_losses = evaluator(model_variables(state), dataset.val)
      val = evaluate.split_metrics(dataset.val.labels, predictions, dataset.num_classes,
                                   dataset.class_names)
      scalars = evaluate.validation_scalars(val, val_losses.mean())
      writer.write_scalars(done, scalars)
      best = checkpoints.save_if_best(done, state, scalars)
      logging.info("  val loss %.4f accuracy %.4f dice %s%s", scalars["val/loss"],
                   scalars["val/global_accuracy"],
                   " ".join(f"{m['dice']:.3f}" for m in val["classes"].values()),
                   " (best so far, saved)" if best else "")
      timer_start, timer_step = time.perf_counter(), done  # Validation is not training time.
    if done % tc.image_summary_every_steps == 0 or done == total_steps:
      predictions, _ = evaluator(model_variables(state), summary_split)
      for i, slice_number in enumerate(summary_split.slice_numbers):
        writer.write_image(done, f"val/slice_{slice_number:03d}", report.overlay_panel(
            summary_split.raw[i], summary_split.labels[i], predictions[i], dataset.task))
    preempted = parallel.reached_preemption(done - count + 1, done)
    checkpoints.save(done, state, before_save=writer.flush, force=preempted)
    if preempted:
      checkpoints.close()
      writer.close()
      raise Preempted(f"stopped by SIGTERM at step {done}/{total_steps}; its checkpoint is in "
                      f"{workdir}: run the same command to resume")

  checkpoints.wait()
  if final_checkpoint == "last":
    variables, step = model_variables(state), int(state.step)
  else:
    run = checkpoint.restore_run(workdir, final_checkpoint, mesh)
    variables, step = run.variables, run.step
  if (config.eval.tta_flip or config.eval.fill_holes or config.eval.foreground_threshold != 0.5
      or config.eval.logit_offsets):
    evaluator = evaluate.Evaluator(mesh, model.apply, tc.loss, dataset.class_weights,
                                   config.eval.batch_size, tta_flip=config.eval.tta_flip,
                                   fill_holes=config.eval.fill_holes,
                                   foreground_threshold=config.eval.foreground_threshold,
                                   logit_offsets=config.eval.logit_offsets)
  results = evaluate.evaluate_and_report(
      workdir, config, dataset.split(config.eval.split), evaluator, variables,
      split_name=config.eval.split, checkpoint_name=final_checkpoint, step=step,
      task=dataset.task, class_names=dataset.class_names)
  checkpoints.close()
  writer.close()
  return results
