"""Training: state, optimiser, learning-rate schedule, the jitted steps and the loop.

Data flow per step: the training set sits on the device (replicated); the host sends only the
batch's sample indices and a step key; the step gathers the batch, augments it, shards it over
the 'data' axis and updates the replicated state. Sample order is a pure function of
(seed, epoch) and every random key is folded from (seed, step), so a resumed run replays the
same batches and augmentations as an uninterrupted one.
"""
import functools
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax.training import train_state

from covseg_jax import losses, metrics, models, parallel, summaries
from covseg_jax.data import augment, pipeline


class TrainState(train_state.TrainState):
  batch_stats: Any


def create_learning_rate_fn(train_config, steps_per_epoch):
  """Piecewise-constant: multiply by lr_drop_factor every lr_drop_every_epochs epochs."""
  return optax.exponential_decay(
      init_value=train_config.learning_rate,
      transition_steps=train_config.lr_drop_every_epochs * steps_per_epoch,
      decay_rate=train_config.lr_drop_factor,
      staircase=True)


def _not_bias(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) != "bias", params)


def create_optimizer(train_config, learning_rate_fn):
  """Adam with MATLAB-style L2 regularisation: l2 * w added to the gradient of non-bias weights."""
  return optax.chain(
      optax.add_decayed_weights(train_config.l2, mask=_not_bias),
      optax.scale_by_adam(),
      optax.scale_by_learning_rate(learning_rate_fn))


def create_train_state(rng, model, image_size, optimizer):
  """Initialises float32 parameters and BatchNorm statistics on the host."""
  dummy = jnp.zeros((1, image_size, image_size, 1), jnp.float32)
  variables = jax.jit(functools.partial(model.init, train=False))(
      {"params": rng, "dropout": rng}, dummy)
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           batch_stats=variables.get("batch_stats", {}), tx=optimizer)


def train_step(state, images, labels, indices, key, class_weights, *, train_config, sharding):
  """One update on the batch images[indices], augmented on the device.

  images (N,S,S,1) and labels (N,S,S) are the whole (replicated) training set; indices (B,) the
  batch; key the step's key. Per-sample keys depend only on the position in the global batch,
  so the result does not depend on how many devices share the batch.
  """
  aug_key, dropout_key = jax.random.split(key)
  sample_keys = jax.vmap(lambda i: jax.random.fold_in(aug_key, i))(jnp.arange(indices.shape[0]))
  batch_images, batch_labels = augment.augment(
      sample_keys, images[indices], labels[indices],
      flip=train_config.flip, shear_degrees=train_config.shear_degrees)
  batch_images = jax.lax.with_sharding_constraint(batch_images, sharding)
  batch_labels = jax.lax.with_sharding_constraint(batch_labels, sharding)

  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch_images, train=True,
        mutable=["batch_stats"], rngs={"dropout": dropout_key})
    loss = losses.compute_loss(train_config.loss, logits, batch_labels, class_weights)
    return loss, updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates.get("batch_stats", {}))
  return state, {"loss": loss}


def eval_step(state, images, labels, class_weights, *, loss_name):
  """Predictions (B,S,S) int32 and per-image losses (B,) for a batch, no augmentation."""
  logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                          images, train=False)
  per_image_loss = jax.vmap(
      lambda l, y: losses.compute_loss(loss_name, l[None], y[None], class_weights))(logits, labels)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32), per_image_loss


class Evaluator:
  """Runs eval_step over a whole split in fixed-size, padded, sharded batches."""

  def __init__(self, mesh, loss_name, class_weights, batch_size):
    num_devices = mesh.devices.size
    self.batch_size = -(-batch_size // num_devices) * num_devices  # Round up to the mesh.
    self.sharding = parallel.batch_sharding(mesh)
    self.class_weights = parallel.replicate(np.asarray(class_weights), mesh)
    replicated = parallel.replicated_sharding(mesh)
    self._step = jax.jit(functools.partial(eval_step, loss_name=loss_name),
                         out_shardings=(replicated, replicated))

  def __call__(self, state, split):
    """(predictions (N,S,S) int32, per-image losses (N,)) as host arrays."""
    n = len(split.images)
    predictions, image_losses = [], []
    for start in range(0, n, self.batch_size):
      images = split.images[start:start + self.batch_size]
      labels = split.labels[start:start + self.batch_size]
      pad = self.batch_size - len(images)
      if pad:  # Pad the last batch so every call has the same shape (one compilation).
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
        labels = np.concatenate([labels, np.zeros((pad,) + labels.shape[1:], labels.dtype)])
      preds, batch_losses = self._step(state, parallel.put_global(images, self.sharding),
                                       parallel.put_global(labels, self.sharding),
                                       self.class_weights)
      predictions.append(np.asarray(preds)[:len(preds) - pad])
      image_losses.append(np.asarray(batch_losses)[:len(batch_losses) - pad])
    return np.concatenate(predictions), np.concatenate(image_losses)


def split_metrics(labels, predictions, num_classes, class_names):
  """The paper's numbers for one split: per-image global accuracy (mean, std) and pooled
  class-level metrics (sensitivity, specificity, G-mean, Dice, F2, ...)."""
  confusion = np.asarray(metrics.confusion_matrices(labels, predictions, num_classes))
  per_image = metrics.class_metrics(confusion)
  pooled = metrics.class_metrics(metrics.pooled_confusion_matrix(confusion))
  accuracy = np.asarray(per_image["global_accuracy"], np.float64)
  classes = {}
  for c, name in enumerate(class_names):
    classes[name] = {key: float(np.asarray(pooled[key])[c]) for key in
                     ("sensitivity", "specificity", "precision", "gmean", "dice", "f2", "jaccard")}
  return {
      "num_images": int(len(labels)),
      "global_accuracy_mean": float(accuracy.mean()),
      "global_accuracy_std": float(accuracy.std(ddof=1)) if len(accuracy) > 1 else float("nan"),
      "per_image_global_accuracy": accuracy.tolist(),
      "pooled_confusion_matrix": metrics.pooled_confusion_matrix(confusion).tolist(),
      "classes": classes,
  }


def _format_eta(seconds):
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def train_and_evaluate(config, workdir):
  """Trains `config` in `workdir`, then evaluates config.eval.split; returns the test metrics."""
  mesh = parallel.create_mesh()
  tc = config.train
  parallel.check_batch_size(tc.batch_size, mesh)
  dataset = pipeline.load_dataset(config.data)
  num_train = len(dataset.train.images)
  if tc.batch_size > num_train:
    raise ValueError(f"train.batch_size={tc.batch_size} exceeds the {num_train} training images")
  steps_per_epoch = num_train // tc.batch_size  # MATLAB drops the last partial mini-batch.
  total_steps = tc.epochs * steps_per_epoch

  model = models.get_model(config.model, dataset.num_classes)
  learning_rate_fn = create_learning_rate_fn(tc, steps_per_epoch)
  rng = jax.random.key(config.seed)
  init_rng, step_rng = jax.random.split(rng)
  state = create_train_state(init_rng, model, config.data.image_size,
                             create_optimizer(tc, learning_rate_fn))
  state = parallel.replicate(state, mesh)

  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
      f.write(config.to_json_best_effort(indent=2))
  writer = summaries.MetricWriter(workdir)

  train_images = parallel.replicate(dataset.train.images, mesh)
  train_labels = parallel.replicate(dataset.train.labels, mesh)
  class_weights = parallel.replicate(dataset.class_weights, mesh)
  step_fn = jax.jit(
      functools.partial(train_step, train_config=tc, sharding=parallel.batch_sharding(mesh)),
      donate_argnums=0)
  evaluator = Evaluator(mesh, tc.loss, dataset.class_weights, config.eval.batch_size)

  logging.info("training %s on %s: %d steps (%d epochs x %d), batch %d on %d device(s)",
               config.model.name, dataset.task, total_steps, tc.epochs, steps_per_epoch,
               tc.batch_size, mesh.devices.size)
  start_step = int(state.step)
  order, order_epoch = None, -1
  timer_start, timer_step = time.perf_counter(), start_step
  for step in range(start_step, total_steps):
    epoch, step_in_epoch = divmod(step, steps_per_epoch)
    if epoch != order_epoch:
      order, order_epoch = pipeline.epoch_order(config.seed, epoch, num_train), epoch
    indices = order[step_in_epoch * tc.batch_size:(step_in_epoch + 1) * tc.batch_size]
    state, step_metrics = step_fn(state, train_images, train_labels,
                                  parallel.replicate(indices.astype(np.int32), mesh),
                                  jax.random.fold_in(step_rng, step), class_weights)
    done = step + 1
    if done % tc.log_every_steps == 0 or done == total_steps:
      loss = float(step_metrics["loss"])  # Blocks: the timing below is honest.
      elapsed = time.perf_counter() - timer_start
      images_per_sec = (done - timer_step) * tc.batch_size / max(elapsed, 1e-9)
      eta = (total_steps - done) * tc.batch_size / max(images_per_sec, 1e-9)
      lr = float(learning_rate_fn(step))
      writer.write_scalars(done, {"train/loss": loss, "train/learning_rate": lr,
                                  "train/images_per_sec": images_per_sec, "epoch": epoch + 1})
      logging.info("epoch %d/%d step %d/%d loss %.4f lr %.2e %.1f img/s ETA %s",
                   epoch + 1, tc.epochs, done, total_steps, loss, lr, images_per_sec,
                   _format_eta(eta))
      timer_start, timer_step = time.perf_counter(), done
    if done % tc.val_every_steps == 0 or done == total_steps:
      predictions, val_losses = evaluator(state, dataset.val)
      val = split_metrics(dataset.val.labels, predictions, dataset.num_classes,
                          dataset.class_names)
      scalars = {"val/loss": float(val_losses.mean()),
                 "val/global_accuracy": val["global_accuracy_mean"]}
      scalars.update({f"val/dice/{name.replace(' ', '_')}": m["dice"]
                      for name, m in val["classes"].items()})
      writer.write_scalars(done, scalars)
      logging.info("  val loss %.4f accuracy %.4f dice %s", scalars["val/loss"],
                   scalars["val/global_accuracy"],
                   " ".join(f"{m['dice']:.3f}" for m in val["classes"].values()))
      timer_start, timer_step = time.perf_counter(), done  # Validation is not training time.

  split = dataset.split(config.eval.split)
  predictions, _ = evaluator(state, split)
  results = split_metrics(split.labels, predictions, dataset.num_classes, dataset.class_names)
  results.update({"split": config.eval.split, "step": int(state.step),
                  "slice_numbers": split.slice_numbers.tolist()})
  if jax.process_index() == 0:
    path = os.path.join(workdir, f"{config.eval.split}_metrics.json")
    with open(path, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=2)
    logging.info("%s: global accuracy %.4f +- %.4f; dice %s -> %s", config.eval.split,
                 results["global_accuracy_mean"], results["global_accuracy_std"],
                 ", ".join(f"{k} {v['dice']:.3f}" for k, v in results["classes"].items()), path)
  writer.close()
  return results
