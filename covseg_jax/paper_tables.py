"""Every run of the full-scale tables, side by side, within a time budget (one GPU machine).

  python -m covseg_jax.paper_tables --root=runs/paper --out=out/paper --budget_s=390

The paper's protocol (256x256, 160 epochs, full width, bf16) for every family RESULTS.md
tables, in six lanes that run side by side, one training process each: at the paper's batch
sizes of 2-12 a run leaves a GPU mostly idle (PERFORMANCE.md), so several share it. A lane is a
queue of covseg_jax.sweep commands, the most important first:

  segnet_binary  exp 4 (Table 4's run), exps 1-9 (Table 3), five-fold CV of exp 4 (Table 7),
                 seeds 1 and 2 of exp 4
  unet_binary    the same with exp 4
  segnet_multi   the same with exp 7 (Tables 6, 5, 7)
  unet_multi     the same with exp 4
  lung           lung_resnet, then seeds 0, 1 and 2 of lung_unet and of lung_resnet_improved
  improved       segnet_binary_improved exp 4, segnet_multi_improved exp 7, seeds 1 and 2 of
                 each, five folds of each on the paper's 82 non-test slices (to ensemble),
                 segnet_binary_improved at the data's 512x512

When --budget_s seconds have passed, each lane's sweep gets SIGTERM: its run saves a checkpoint
and stops, and the lane starts nothing more. Then come the ensembles (of three seeds, or of five
folds) whose members have all finished (covseg_jax.ensemble), the tables of every finished run
(covseg_jax.results, in <out>/results) and <out>/runs.tar.gz: the finished runs' records
without their checkpoints or TensorBoard files (config, metrics, logs, reports). Unpacked
under --root on another machine (`tar -xzf runs.tar.gz -C ROOT`), they let the same command
skip those runs. The same command on the same machine continues where it stopped: finished runs
are skipped, a stopped run resumes from its checkpoint.

Each lane's output is printed with its name in front; every run also logs to its own train.log.
The training processes share one GPU: each may take XLA_PYTHON_CLIENT_MEM_FRACTION of its memory
(default 0.9 / lanes; JAX alone would take 75 % in the first process), and they share a
persistent compilation cache (JAX_COMPILATION_CACHE_DIR, default <root>/.jax_cache), so runs
that compile the same programs (the seeds of a config, the folds of an experiment) compile them
once. Both can be set in the environment.
--variant and --config.FIELD=VALUE go to every sweep (`--variant=cpu` gives a CPU-sized run of
the whole plan). Exit status 0 when nothing failed (a lane stopped by the budget has not
failed), 1 when a run, an ensemble or the tables failed, 2 for bad arguments.
"""
import argparse
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import threading
import time

from covseg_jax import sweep as sweep_lib
from covseg_jax.errors import PREEMPTED_EXIT_STATUS

# Left out of runs.tar.gz: the arrays and images, which the tables do not need.
NOT_PACKED = ("checkpoints", "checkpoints_best", "tensorboard", "figures", "normalization.npz")


@dataclasses.dataclass(frozen=True)
class Sweep:
  """One covseg_jax.sweep command of a lane."""
  config: str  # A config file under configs/, without the .py.
  root: str  # The sweep root, relative to --root.
  experiments: str = "none"
  folds: int = 0
  fold_split: str = "kfold"
  seed: int = 0
  overrides: tuple = ()


def _seeds(name, experiment=None):
  """Seed 0 (the best experiment, or the config as given) and seeds 1 and 2 of `name`."""
  first = Sweep(name, name, str(experiment)) if experiment else Sweep(name, name)
  return [first] + [Sweep(name, f"{name}_seed{seed}", seed=seed) for seed in (1, 2)]


def _family(name, best):
  """The best experiment (the class-level table's run), the nine experiments, five-fold
  cross-validation of the best, and two more seeds of it (the config file as given is it)."""
  return ([Sweep(name, name, str(best)), Sweep(name, name, "1-9"),
           Sweep(name, f"{name}_cv", str(best), folds=5)] + _seeds(name)[1:])


def _paper_folds(name, experiment):
  return Sweep(name, f"{name}_folds", str(experiment), folds=5, fold_split="paper_kfold")


IMPROVED = (("segnet_binary_improved", 4), ("segnet_multi_improved", 7))
LANES = {
    "segnet_binary": _family("segnet_binary", 4),
    "unet_binary": _family("unet_binary", 4),
    "segnet_multi": _family("segnet_multi", 7),
    "unet_multi": _family("unet_multi", 4),
    "lung": ([Sweep("lung_resnet", "lung_resnet")] + _seeds("lung_unet")
             + _seeds("lung_resnet_improved")),
    "improved": ([s for seeds in zip(*(_seeds(*i) for i in IMPROVED)) for s in seeds]
                 + [_paper_folds(*i) for i in IMPROVED]
                 + [Sweep("segnet_binary_improved", "segnet_binary_improved_512", "4",
                          overrides=("--config.data.image_size=512",))]),
}

# The ensembles (RESULTS.md): the ensemble directory and its members, relative to --root.
ENSEMBLES = {
    **{f"{name}_ensemble/exp{e}": (f"{name}/exp{e}", f"{name}_seed1", f"{name}_seed2")
       for name, e in IMPROVED},
    **{f"{name}_ensemble": (name, f"{name}_seed1", f"{name}_seed2")
       for name in ("lung_unet", "lung_resnet_improved")},
    **{f"{name}_folds_ensemble/exp{e}": tuple(f"{name}_folds/exp{e}/fold{k}" for k in range(5))
       for name, e in IMPROVED},
}


def config_arg(sweep, variant):
  """--config's value: configs/<name>.py[:variant]."""
  return f"configs/{sweep.config}.py" + (f":{variant}" if variant else "")


def sweep_command(sweep, root, variant, overrides):
  """The covseg_jax.sweep command line of `sweep`."""
  command = [sys.executable, "-m", "covseg_jax.sweep", f"--config={config_arg(sweep, variant)}",
             f"--root={os.path.join(root, sweep.root)}", f"--experiments={sweep.experiments}"]
  if sweep.folds:
    command.append(f"--folds={sweep.folds}")
  if sweep.fold_split != "kfold":
    command.append(f"--fold_split={sweep.fold_split}")
  if sweep.seed:
    command.append(f"--config.seed={sweep.seed}")
  return command + list(sweep.overrides) + list(overrides)


class Lanes:
  """Runs each lane's commands in order, in a thread of its own, until a time budget ends."""

  def __init__(self, commands, env):
    self.commands, self.env = commands, env
    self.lock = threading.Lock()
    self.stopped = False
    self.running = {}  # Lane name -> its running sweep process.
    self.failed = []  # (lane, command) of the sweeps that exited with an error.

  def _run_lane(self, name):
    for command in self.commands[name]:
      with self.lock:  # A stop between two commands must not miss the next process.
        if self.stopped:
          return
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=self.env)
        self.running[name] = process
      for line in process.stdout:
        print(f"[{name}] {line}", end="", flush=True)
      returncode = process.wait()
      with self.lock:
        del self.running[name]
      if returncode in (PREEMPTED_EXIT_STATUS, -signal.SIGTERM):  # Stopped by the budget.
        return
      if returncode != 0:
        self.failed.append((name, shlex.join(command)))

  def run(self, budget_s):
    """Runs the lanes; after `budget_s` seconds stops them (SIGTERM to each running sweep,
    which passes it to its run) and waits for them. Returns whether the budget stopped them."""
    threads = [threading.Thread(target=self._run_lane, args=(name,)) for name in self.commands]
    for thread in threads:
      thread.start()
    deadline = time.monotonic() + budget_s
    for thread in threads:
      thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stopped = any(thread.is_alive() for thread in threads)
    if stopped:
      with self.lock:
        self.stopped = True
        for process in self.running.values():
          process.terminate()  # SIGTERM.
      print(f"paper_tables: the {budget_s:g} s budget is spent: the running runs save a "
            "checkpoint and stop", flush=True)
    for thread in threads:
      thread.join()
    return stopped


def is_finished(workdir, overrides=()):
  """Whether a run (or ensemble) has written the metrics a sweep counts as finished."""
  return os.path.isfile(sweep_lib.metrics_path(workdir, overrides))


def make_ensembles(root, env, overrides=()):
  """The ENSEMBLES whose members have all finished; returns the failed ones' names."""
  failed = []
  for name, members in ENSEMBLES.items():
    out = os.path.join(root, name)
    member_dirs = [os.path.join(root, m) for m in members]
    if is_finished(out, overrides) or not all(is_finished(m, overrides) for m in member_dirs):
      continue
    command = [sys.executable, "-m", "covseg_jax.ensemble", f"--members={','.join(member_dirs)}",
               f"--out={out}"]
    print(f"paper_tables: {shlex.join(command)}", flush=True)
    if subprocess.run(command, env=env, check=False).returncode != 0:
      failed.append(name)
  return failed


def finished_runs(root, overrides=()):
  """The directories under `root` of the finished runs and ensembles, sorted."""
  return sorted(path for path, _, _ in os.walk(root) if is_finished(path, overrides))


def pack_records(root, runs, path):
  """Writes the runs' records (not NOT_PACKED) to the tar.gz `path`, names relative to root."""
  def keep(info):
    return None if os.path.basename(info.name) in NOT_PACKED else info

  partial = path + ".partial"
  with tarfile.open(partial, "w:gz") as tar:
    for run in runs:
      for entry in sorted(os.listdir(run)):
        full = os.path.join(run, entry)
        if os.path.isfile(full) or entry == "report":
          tar.add(full, arcname=os.path.relpath(full, root), filter=keep)
  os.replace(partial, path)


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m covseg_jax.paper_tables", allow_abbrev=False,
      description="Every run of the full-scale tables, side by side, within a time budget.",
      epilog="Any --config.FIELD=VALUE argument goes to every sweep.")
  parser.add_argument("--root", required=True, help="directory of the sweeps")
  parser.add_argument("--out", required=True,
                      help="where the tables (results/) and runs.tar.gz go; created if missing")
  parser.add_argument("--budget_s", type=float, default=390.0,
                      help="seconds of training before the lanes are stopped (default 390, "
                           "which leaves 210 s of a 10-minute call for the ensembles, tables "
                           "and records)")
  parser.add_argument("--lanes", default=",".join(LANES),
                      help=f"comma-separated lanes to run (default: all of {', '.join(LANES)})")
  parser.add_argument("--variant", default="",
                      help="config variant for every run, e.g. 'cpu' (default: none, full scale)")
  parser.add_argument("--dry_run", action="store_true", help="print the sweep commands only")
  options, overrides = sweep_lib.parse_known_args_and_overrides(parser, argv)
  unknown = set(options.lanes.split(",")) - set(LANES)
  if unknown:
    parser.error(f"unknown lanes {sorted(unknown)}: choose from {', '.join(LANES)}")
  if options.budget_s <= 0:
    parser.error("--budget_s must be positive")
  return options, overrides


def main(argv):
  options, overrides = parse_args(argv)
  lanes = [name for name in LANES if name in options.lanes.split(",")]
  try:  # A bad variant or override fails here, before anything runs.
    for s in {s for name in lanes for s in LANES[name]}:
      sweep_lib.plan_runs(config_arg(s, options.variant), options.root,
                          sweep_lib.parse_experiments(s.experiments), s.folds,
                          list(s.overrides) + overrides, s.fold_split)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  commands = {name: [sweep_command(s, options.root, options.variant, overrides)
                     for s in LANES[name]] for name in lanes}
  if options.dry_run:
    for name in lanes:
      for command in commands[name]:
        print(f"[{name}] {shlex.join(['python'] + command[1:])}")
    return 0
  start = time.monotonic()
  env = dict(os.environ)
  env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / len(lanes):.2f}")
  env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.abspath(options.root),
                                                          ".jax_cache"))
  os.makedirs(options.out, exist_ok=True)
  print(f"paper_tables: {len(lanes)} lane(s) on {sweep_lib.describe_device()}, budget "
        f"{options.budget_s:g} s", flush=True)
  runner = Lanes(commands, env)
  stopped = runner.run(options.budget_s)
  failed = [f"sweep of lane {name}: {command}" for name, command in runner.failed]
  failed += [f"ensemble {name}" for name in make_ensembles(options.root, env, overrides)]
  runs = finished_runs(options.root, overrides)
  if runs:
    command = [sys.executable, "-m", "covseg_jax.results", options.root,
               f"--out={os.path.join(options.out, 'results')}"]
    if subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False).returncode:
      failed.append("tables: " + shlex.join(command))
    pack_records(options.root, runs, os.path.join(options.out, "runs.tar.gz"))
  print(f"paper_tables: {len(runs)} finished run(s) and ensemble(s) in {options.root}"
        f"{' (stopped by the budget)' if stopped else ''}, after {time.monotonic() - start:.0f} s;"
        f" tables and records in {options.out}", flush=True)
  for failure in failed:
    print(f"paper_tables: FAILED: {failure}", flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
