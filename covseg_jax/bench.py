"""Benchmark: the real training and evaluation steps per network, and whole training runs.

  python -m covseg_jax.bench --model=segnet --model=unet --dtype=float32 --image_size=128
  python -m covseg_jax.bench --model=segnet --unpool=scatter --unpool=onehot --interleave
  python -m covseg_jax.bench --model=configs/segnet_multi.py:cpu --mode=run --json=bench.jsonl

Mode `step` jits train.train_steps as train.train_and_evaluate does (donated state, a 72-image
random training set resident on the device, batches gathered and augmented inside the step; the
host sends the batch indices and the run's step key every call, as the loop does; with
`--steps_per_call=K` K steps run in one lax.scan, as train.steps_per_call=K does). Mode `eval` times
evaluate.Evaluator on one full batch, host transfers included. Mode `run` times
train.train_and_evaluate end to end (data loading, compilation, validation and test included).

Warm-up calls are excluded. step_ms is the median of `--steps` calls, each blocked on; cpu_ms the
median process CPU time of those calls (all threads: on a shared CPU it is less sensitive to
other load than step_ms); async_step_ms the mean over as many calls blocked only at the end, as
the training loop runs them. compile_s sums JAX's tracing, lowering and compilation events of the
warm-up. paper_run_s projects one paper run (160 epochs x 72 images) from step_ms.

FLOPs: 2 per multiply-add, convolutions only (every nn.Conv and nn.ConvTranspose call, recorded
under jax.eval_shape); a training step counts 3x the forward FLOPs (the backward pass computes
input and weight gradients, about one forward each), an evaluation step 1x.
"""
import contextlib
import functools
import itertools
import json
import math
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from covseg_jax import config_file, evaluate, models, parallel, train
from covseg_jax.data import pipeline, preprocess

# The paper's split (72/10/18 images) and run length.
PAPER_TRAIN_IMAGES, PAPER_VAL_IMAGES, PAPER_TEST_IMAGES = 72, 10, 18
PAPER_EPOCHS = 160
TRAIN_FLOP_FACTOR = 3

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
# Name: (config file, model overrides, training batch size of PERFORMANCE.md's measurements).
PRESETS = {
    "segnet": ("segnet_multi.py", {}, 4),
    "segnet_vgg16": ("segnet_vgg16_multi.py", {}, 16),
    "unet": ("unet_multi.py", {}, 4),
    "unet4": ("unet_multi.py", {"depth": 4}, 16),
    "highresnet": ("lung_resnet.py", {}, 4),
}
# The model option that selects between a fast form and its plain equivalent.
FORM_KEYS = {"segnet": "unpool", "unet": "upsample", "highresnet": "dilation_impl"}
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")


def load_config(spec):
  """The config of a preset name or of a config file path with an optional ':variant'."""
  if spec in PRESETS:
    filename, model_overrides, batch_size = PRESETS[spec]
    config = load_config(os.path.join(_CONFIG_DIR, filename))
    config.model.update(model_overrides)
    config.train.batch_size = batch_size
    return config
  if not os.path.isfile(spec.partition(":")[0]):
    raise ValueError(f"--model={spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
  return config_file.load(spec)


def conv_flops(model, image_size):
  """Forward FLOPs per image of every convolution in `model` (2 per multiply-add).

  Conv: 2 * output pixels * Cout * Cin/groups * kh*kw; ConvTranspose: 2 * input pixels * Cin *
  Cout * kh*kw. Shapes come from jax.eval_shape, so nothing is computed.
  """
  layers = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == "__call__" and isinstance(module, (nn.Conv, nn.ConvTranspose)):
      kernel = math.prod(module.kernel_size)
      if isinstance(module, nn.ConvTranspose):
        layers.append(math.prod(args[0].shape[:-1]) * args[0].shape[-1] * out.shape[-1] * kernel)
      else:
        cin = args[0].shape[-1] // module.feature_group_count
        layers.append(math.prod(out.shape[:-1]) * out.shape[-1] * cin * kernel)
    return out

  def init(x):
    with nn.intercept_methods(record):
      return model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, x,
                        train=False)

  jax.eval_shape(init, jax.ShapeDtypeStruct((1, image_size, image_size, 1), jnp.float32))
  return 2 * sum(layers)


@contextlib.contextmanager
def compile_timer():
  """Yields a list whose sum is the seconds JAX spends tracing, lowering and compiling inside."""
  seconds = []

  def listener(event, duration, **_):
    if event in _COMPILE_EVENTS:
      seconds.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield seconds
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def _memory(device):
  """(MB, what it is): the device's peak use where JAX reports it, else the host's max RSS."""
  stats = device.memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20, "device_peak"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, "host_max_rss"


def _time_calls(call, count, block):
  """(wall, process CPU) seconds of each of `count` calls, each blocked on; or, unblocked (the
  last call blocked on), their mean wall seconds."""
  if block:
    times = []
    for _ in range(count):
      wall, cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(call())
      times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return times
  start = time.perf_counter()
  for _ in range(count - 1):
    call()
  jax.block_until_ready(call())
  return (time.perf_counter() - start) / count


def _random_split(config, num_images, num_classes, seed=0):
  """Random images and labels at the config's size, shaped like a pipeline.SplitArrays."""
  size = config.data.image_size
  rng = np.random.default_rng(seed)
  return types.SimpleNamespace(
      images=rng.standard_normal((num_images, size, size, 1), np.float32),
      labels=rng.integers(0, num_classes, (num_images, size, size), np.int32))


def _setup(config, mesh):
  """(model, number of classes, replicated train state) as train_and_evaluate builds them."""
  num_classes = preprocess.num_classes(config.data.task)
  model = models.for_config(config)
  tc = config.train
  learning_rate_fn = train.create_learning_rate_fn(tc, PAPER_TRAIN_IMAGES // tc.batch_size)
  state = train.create_train_state(jax.random.key(0), model, config.data.image_size,
                                   train.create_optimizer(tc, learning_rate_fn),
                                   ema=tc.ema_epochs > 0)
  return model, num_classes, parallel.replicate(state, mesh)


def _case(config, mode, mesh, batch_size):
  """The fields that name a case and the machine."""
  form_key = FORM_KEYS.get(config.model.name)
  device = mesh.devices.flat[0]
  return {
      "network": config.model.name,
      "mode": mode,
      "form": f"{form_key}={config.model[form_key]}" if form_key else "",
      "dtype": config.model.dtype,
      "image_size": config.data.image_size,
      "batch_size": batch_size,
      "platform": device.platform,
      "device_kind": device.device_kind,
      "num_devices": mesh.devices.size,
      "jax_version": jax.__version__,
  }


def _timing_fields(times, batch_size, flops_per_image, compile_seconds, device):
  step = statistics.median(wall for wall, _ in times)
  memory_mb, memory_kind = _memory(device)
  return {
      "steps": len(times),
      "step_ms": 1e3 * step,
      "step_ms_min": 1e3 * min(wall for wall, _ in times),
      "cpu_ms": 1e3 * statistics.median(cpu for _, cpu in times),
      "images_per_s": batch_size / step,
      "tflops": flops_per_image * batch_size / step / 1e12,
      "compile_s": compile_seconds,
      "memory_mb": memory_mb,
      "memory_kind": memory_kind,
  }


class StepBench:
  """One case of the training step (mode 'step'), built, compiled and warmed up.

  Calling it runs steps_per_call more steps exactly as the training loop does with
  train.steps_per_call: the host sends the batches' indices (train.batch_indices) and the run's
  step key; train.train_steps folds in each step's number, gathers and augments the batch from
  the resident training set and updates the donated state (K > 1 steps in one lax.scan). The row
  reports times per step.
  """
  mode = "step"

  def __init__(self, config, mesh=None, warmup=3, steps_per_call=1):
    self.config, self.mesh = config, mesh or parallel.create_mesh()
    tc = config.train
    parallel.check_batch_size(tc.batch_size, self.mesh)
    self.batch_size, self.steps_per_call = tc.batch_size, steps_per_call
    model, num_classes, self._state = _setup(config, self.mesh)
    self.flops = conv_flops(model, config.data.image_size)
    data = _random_split(config, PAPER_TRAIN_IMAGES, num_classes)
    mean_image = (np.zeros((config.data.image_size,) * 2, np.float32)
                  if config.data.normalization == "zero_center" else None)
    center = train.training_center(mean_image, tc)
    self._data = parallel.replicate(
        (data.images, data.labels, np.ones(num_classes, np.float32), center), self.mesh)
    self._step_fn = jax.jit(
        functools.partial(train.train_steps, train_config=tc,
                          sharding=parallel.batch_sharding(self.mesh),
                          decay=train.ema_decay(tc, PAPER_TRAIN_IMAGES // tc.batch_size)),
        donate_argnums=0)
    self._rng = jax.random.key(1)
    self._step = 0
    with compile_timer() as seconds:
      memory = self._step_fn.lower(self._state, *self._args()).compile().memory_analysis()
      for _ in range(warmup):
        self()
    self.compile_s = sum(seconds)
    self.xla_memory_mb = None if memory is None else (
        memory.argument_size_in_bytes + memory.output_size_in_bytes
        + memory.temp_size_in_bytes - memory.alias_size_in_bytes) / 2**20

  def _args(self):
    images, labels, class_weights, center = self._data
    indices = np.stack([
        train.batch_indices(self.config.seed, step, PAPER_TRAIN_IMAGES // self.batch_size,
                            self.batch_size, PAPER_TRAIN_IMAGES)
        for step in range(self._step, self._step + self.steps_per_call)])
    return (images, labels, parallel.replicate(indices, self.mesh), self._rng, class_weights,
            center)

  def __call__(self):
    self._state, metrics = self._step_fn(self._state, *self._args())
    self._step += self.steps_per_call
    return metrics

  def row(self, times, async_seconds):
    """The case's row from the blocked call times and the mean unblocked call time."""
    k = self.steps_per_call
    total_steps = PAPER_EPOCHS * (PAPER_TRAIN_IMAGES // self.batch_size)
    row = _case(self.config, self.mode, self.mesh, self.batch_size)
    row.update(_timing_fields([(wall / k, cpu / k) for wall, cpu in times], self.batch_size,
                              TRAIN_FLOP_FACTOR * self.flops, self.compile_s,
                              self.mesh.devices.flat[0]))
    row.update({
        "steps_per_call": k,
        "async_step_ms": 1e3 * async_seconds / k,
        "gflop_fwd_per_image": self.flops / 1e9,
        "flop_factor": TRAIN_FLOP_FACTOR,
        "xla_memory_mb": self.xla_memory_mb,
        "paper_run_steps": total_steps,
        "paper_run_s": total_steps * row["step_ms"] / 1e3,
    })
    return row


class EvalBench:
  """One case of evaluation (mode 'eval'): evaluate.Evaluator on one full batch of images.

  Calling it runs the Evaluator once, host transfers of images and predictions included. The
  row's paper_run_s projects the evaluation of one paper run: validation of 10 images every
  train.val_every_steps steps (and after the last) plus the 18 test images, at this batch size.
  """
  mode = "eval"

  def __init__(self, config, mesh=None, warmup=3):
    self.config, self.mesh = config, mesh or parallel.create_mesh()
    model, num_classes, state = _setup(config, self.mesh)
    self.flops = conv_flops(model, config.data.image_size)
    evaluator = evaluate.Evaluator(self.mesh, model.apply, config.train.loss,
                                   np.ones(num_classes, np.float32), config.eval.batch_size)
    self.batch_size = evaluator.batch_size
    self._call = functools.partial(evaluator, train.model_variables(state),
                                   _random_split(config, self.batch_size, num_classes))
    with compile_timer() as seconds:
      for _ in range(warmup):
        self()
    self.compile_s = sum(seconds)

  def __call__(self):
    return self._call()

  def row(self, times, async_seconds=None):
    """The case's row from the blocked call times (evaluation always ends on the host)."""
    del async_seconds  # The Evaluator returns host arrays: every call blocks.
    total_steps = PAPER_EPOCHS * (PAPER_TRAIN_IMAGES // self.config.train.batch_size)
    calls = (-(-total_steps // self.config.train.val_every_steps)
             * -(-PAPER_VAL_IMAGES // self.batch_size) + -(-PAPER_TEST_IMAGES // self.batch_size))
    row = _case(self.config, self.mode, self.mesh, self.batch_size)
    row.update(_timing_fields(times, self.batch_size, self.flops, self.compile_s,
                              self.mesh.devices.flat[0]))
    row.update({"gflop_fwd_per_image": self.flops / 1e9, "flop_factor": 1,
                "paper_run_steps": calls, "paper_run_s": calls * row["step_ms"] / 1e3})
    return row


def measure(benches, steps=20, interleave=False):
  """Times `steps` blocked calls of each bench and returns their rows.

  interleave: time the benches round-robin, one call each in turn, so that a slowly changing
  load on a shared machine affects all of them alike (for comparing forms or dtypes).
  """
  times = [[] for _ in benches]
  if interleave:
    for _ in range(steps):
      for bench, bench_times in zip(benches, times):
        bench_times += _time_calls(bench, 1, block=True)
  else:
    for bench, bench_times in zip(benches, times):
      bench_times += _time_calls(bench, steps, block=True)
  return [bench.row(bench_times, _time_calls(bench, steps, block=False)
                    if bench.mode == "step" else None)
          for bench, bench_times in zip(benches, times)]


def bench_run(config):
  """Times train.train_and_evaluate end to end in a fresh, then deleted, directory; one row."""
  workdir = tempfile.mkdtemp(prefix="covseg_bench_")
  try:
    with compile_timer() as compile_seconds:
      wall, cpu = time.perf_counter(), time.process_time()
      results = train.train_and_evaluate(config, workdir)
      wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  mesh = parallel.create_mesh()
  memory_mb, memory_kind = _memory(mesh.devices.flat[0])
  row = _case(config, "run", mesh, config.train.batch_size)
  row.update({
      "epochs": config.train.epochs,
      "wall_s": wall,
      "cpu_s": cpu,
      "compile_s": sum(compile_seconds),
      "memory_mb": memory_mb,
      "memory_kind": memory_kind,
      "test_global_accuracy": results["global_accuracy_mean"],
  })
  return row


_COLUMNS = (("network", "network", "{}"), ("mode", "mode", "{}"), ("form", "form", "{}"),
            ("dtype", "dtype", "{}"), ("size", "image_size", "{}"), ("batch", "batch_size", "{}"),
            ("steps/call", "steps_per_call", "{}"), ("step ms", "step_ms", "{:.1f}"),
            ("async ms", "async_step_ms", "{:.1f}"),
            ("CPU ms", "cpu_ms", "{:.1f}"),
            ("img/s", "images_per_s", "{:.1f}"), ("GFLOP/img", "gflop_fwd_per_image", "{:.2f}"),
            ("TFLOP/s", "tflops", "{:.3f}"), ("compile s", "compile_s", "{:.1f}"),
            ("memory MB", "memory_mb", "{:.0f}"), ("XLA MB", "xla_memory_mb", "{:.0f}"),
            ("paper run s", "paper_run_s", "{:.1f}"), ("wall s", "wall_s", "{:.1f}"),
            ("CPU s", "cpu_s", "{:.1f}"))


def format_table(rows):
  """A Markdown table of the rows' main fields."""
  columns = [c for c in _COLUMNS if any(row.get(c[1]) is not None for row in rows)]
  lines = ["| " + " | ".join(c[0] for c in columns) + " |",
           "|" + "---|" * len(columns)]
  for row in rows:
    cells = [fmt.format(row[key]) if row.get(key) is not None else "" for _, key, fmt in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def configure(config, dtype=None, image_size=None, batch_size=None, form=None):
  """A copy of `config` with the benchmark's overrides (None keeps the config's value)."""
  config = config.copy_and_resolve_references()
  if dtype:
    config.model.dtype = dtype
  if image_size:
    config.data.image_size = image_size
  if batch_size:
    config.train.batch_size = config.eval.batch_size = batch_size
  if form:
    config.model[FORM_KEYS[config.model.name]] = form
  return config


FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", ["segnet"],
                          f"Preset ({', '.join(PRESETS)}) or config file[:variant].")
flags.DEFINE_multi_enum("mode", ["step"], ["step", "eval", "run"],
                        "step: training step; eval: Evaluator batch; run: train_and_evaluate.")
flags.DEFINE_multi_integer("batch_size", None, "Batch size; sets train.batch_size and "
                           "eval.batch_size (default: the config's, eval.batch_size in eval mode).")
flags.DEFINE_multi_integer("image_size", None, "Image size (default: the config's).")
flags.DEFINE_multi_enum("dtype", None, ["float32", "bfloat16"],
                        "Compute dtype (default: the config's).")
flags.DEFINE_multi_enum("unpool", None, ["scatter", "onehot"], "SegNet un-pooling form.")
flags.DEFINE_multi_enum("upsample", None, ["depth_to_space", "transpose"], "U-Net up-sampling.")
flags.DEFINE_multi_enum("dilation_impl", None, ["space_to_batch", "rhs_dilation"],
                        "HighResNet dilated convolutions.")
flags.DEFINE_multi_integer("steps_per_call", [1], "Training steps per call: 1 is the training "
                           "loop's per-step jit; K > 1 runs K steps in one lax.scan.")
flags.DEFINE_integer("steps", 20, "Timed calls per case.")
flags.DEFINE_integer("warmup", 3, "Untimed calls before timing (compilation included).")
flags.DEFINE_bool("interleave", False, "Build every step/eval case first, then time them "
                  "round-robin (fair comparisons on a shared machine; memory adds up).")
flags.DEFINE_string("json", None, "Append one JSON line per case to this file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  forms = {"unpool": FLAGS.unpool, "upsample": FLAGS.upsample,
           "dilation_impl": FLAGS.dilation_impl}
  rows, pending = [], []  # pending: (model flag, bench) awaiting an interleaved measurement.

  def emit(spec, row):
    row["model"] = spec
    rows.append(row)
    print(json.dumps(row), flush=True)
    if FLAGS.json:
      with open(FLAGS.json, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")

  try:  # Every --model before the first measurement.
    bases = {spec: load_config(spec) for spec in FLAGS.model}
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  for spec, mode in itertools.product(FLAGS.model, FLAGS.mode):
    base = bases[spec]
    form_values = forms.get(FORM_KEYS.get(base.model.name)) or [None]
    for dtype, size, batch, form in itertools.product(
        FLAGS.dtype or [None], FLAGS.image_size or [None], FLAGS.batch_size or [None],
        form_values):
      config = configure(base, dtype, size, batch, form)
      if mode == "run":
        emit(spec, bench_run(config))
        continue
      if mode == "step":
        benches = [StepBench(config, warmup=FLAGS.warmup, steps_per_call=k)
                   for k in FLAGS.steps_per_call]
      else:
        benches = [EvalBench(config, warmup=FLAGS.warmup)]
      for bench in benches:
        if FLAGS.interleave:
          pending.append((spec, bench))
        else:
          emit(spec, measure([bench], FLAGS.steps)[0])
  if pending:
    for (spec, _), row in zip(pending, measure([b for _, b in pending], FLAGS.steps, True)):
      emit(spec, row)
  print(format_table(rows))


if __name__ == "__main__":
  app.run(main)
