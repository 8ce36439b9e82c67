"""Sweeps: a family's nine experiments and/or a k-fold cross-validation, one workdir per run.

  python -m covseg_jax.sweep --config=configs/segnet_multi.py --root=runs/sweeps/segnet_multi
  python -m covseg_jax.sweep --config=configs/segnet_multi.py --experiments=7 --folds=5 \
      --root=runs/sweeps/segnet_multi_cv
  python -m covseg_jax.sweep --config=configs/lung_resnet.py:cpu --experiments=none --folds=5 \
      --root=runs/sweeps/lung_cv --config.train.epochs=20
  python -m covseg_jax.sweep --config=configs/segnet_multi_improved.py --experiments=7 \
      --folds=5 --fold_split=paper_kfold --root=runs/sweeps/segnet_multi_improved_folds

Runs go to <root>/expN (the paper's split), <root>/expN/foldK (fold K of a --folds=k
cross-validation: data.split='kfold', the paper's 70/10/20 for k=5; with
--fold_split=paper_kfold, fold K of the paper's 82 non-test slices, tested on the paper's 18,
whose runs covseg_jax.ensemble combines) or <root>/foldK with --experiments=none (the config as
given). Each is a subprocess `python -m covseg_jax.main`, one at a time, using every local
device; its output goes to <workdir>/train.log. A run whose metrics file
(<workdir>/test_metrics.json) exists is skipped; any other is started again with the same command,
so a checkpointed run resumes. A failed run is reported and the sweep goes on; the exit
status is 1 if any run failed. Arguments of the form --config.FIELD=VALUE go to every run; a bad
config file, variant or override is reported (exit status 2) before any run starts.
SIGTERM (a scheduler's preemption or time-limit notice) is passed to the running run, which
saves a checkpoint and stops; the sweep then stops too, with exit status 143, and the same
command resumes it.
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time

from covseg_jax import config_file
from covseg_jax.errors import PREEMPTED_EXIT_STATUS

LOG_FILE = "train.log"
RUN_RECORD_FILE = "sweep_run.json"  # Command, device and times of the run, for the results.
NUM_EXPERIMENTS = 9


# The running training subprocess, and whether SIGTERM arrived (main installs the handler).
_current = {"process": None, "sigterm": False}


def _forward_sigterm(signum, frame):
  del signum, frame
  _current["sigterm"] = True
  if _current["process"] is not None:
    _current["process"].send_signal(signal.SIGTERM)


@dataclasses.dataclass(frozen=True)
class Run:
  name: str  # Workdir relative to the sweep root: 'exp4', 'exp4/fold2', 'fold2'.
  workdir: str
  args: tuple  # Arguments of covseg_jax.main.


def parse_experiments(text):
  """'1-9', '4,7', '1-3,7' -> sorted experiment numbers; '' or 'none' -> []."""
  if text.strip() in ("", "none"):
    return []
  experiments = set()
  for part in text.split(","):
    low, _, high = part.partition("-")
    try:
      experiments.update(range(int(low), int(high or low) + 1))
    except ValueError:
      raise argparse.ArgumentTypeError(f"not an experiment list: {text!r}") from None
  if not experiments or not experiments <= set(range(1, NUM_EXPERIMENTS + 1)):
    raise argparse.ArgumentTypeError(f"experiments must be in 1..{NUM_EXPERIMENTS}: {text!r}")
  return sorted(experiments)


def plan_runs(config, root, experiments, folds, overrides, fold_split="kfold"):
  """The runs of a sweep, in order: experiments outermost, folds innermost.

  The experiment variant goes after the config's own variants, so with `:cpu` an experiment
  keeps the paper's learning rate and batch size (cpu sets a batch size of its own).
  """
  path, _, variant_text = config.partition(":")
  variants = [v for v in variant_text.split(",") if v]
  if experiments and any(v.startswith("exp") for v in variants):
    raise ValueError(f"--config={config} names an experiment: give them with --experiments")
  runs = []
  for experiment in experiments or [None]:
    run_variants = variants + [f"exp{experiment}"] if experiment else variants
    config_arg = f"{path}:{','.join(run_variants)}" if run_variants else path
    config_file.load(config_arg, overrides)  # A bad file, variant or override fails here.
    for fold in range(folds) if folds else [None]:
      parts, fold_args = [], ()
      if experiment:
        parts.append(f"exp{experiment}")
      if fold is not None:
        parts.append(f"fold{fold}")
        fold_args = (f"--config.data.split={fold_split}", f"--config.data.num_folds={folds}",
                     f"--config.data.fold={fold}")
      name = "/".join(parts) or "."
      workdir = os.path.normpath(os.path.join(root, name))
      runs.append(Run(name, workdir, (f"--config={config_arg}", f"--workdir={workdir}")
                      + fold_args + tuple(overrides)))
  return runs


def metrics_path(workdir, overrides):
  """The file a finished run has written: <workdir>/<eval split>_metrics.json."""
  split = "test"
  for override in overrides:
    if override.startswith("--config.eval.split="):
      split = override.partition("=")[2]
  return os.path.join(workdir, f"{split}_metrics.json")


def describe_device():
  """CPU model and core count, and the GPUs nvidia-smi lists when it is installed.

  The CPU's family, model and AVX-512 support are named too: XLA compiles for the CPU's vector
  instructions, so CPUs of one model name can round float32 sums, and so train, differently
  (three "AMD EPYC" machines gave three quick-start results, README.md).
  """
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      first = f.read().split("\n\n")[0]
    info = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    info = {key.strip(): value.strip() for key, value in info.items()}
    details = [f"{key} {info[key]}" for key in ("cpu family", "model") if key in info]
    if "avx512f" in info.get("flags", "").split():
      details.append("AVX-512")
    cpu = info.get("model name", cpu) + (f" ({', '.join(details)})" if details else "")
  except OSError:
    pass
  device = f"{cpu}, {os.cpu_count()} cores"
  if shutil.which("nvidia-smi"):
    result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                            capture_output=True, text=True, check=False)
    gpus = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if gpus:
      device += "; GPUs: " + ", ".join(gpus)
  return device


def _now():
  return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _format_seconds(seconds):
  minutes, seconds = divmod(int(seconds), 60)
  return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _tail(path, lines=5):
  with open(path, encoding="utf-8", errors="replace") as f:
    return "".join(f.readlines()[-lines:])


def execute(run, done_file, sweep_command, device):
  """Runs one training subprocess; returns its exit status. Appends to <workdir>/train.log."""
  os.makedirs(run.workdir, exist_ok=True)
  command = [sys.executable, "-m", "covseg_jax.main", *run.args]
  record = {"command": shlex.join(["python"] + command[1:]), "sweep_command": sweep_command,
            "device": device, "started": _now()}
  start = time.perf_counter()
  with open(os.path.join(run.workdir, LOG_FILE), "a", encoding="utf-8") as log:
    _current["process"] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
      if _current["sigterm"]:  # Arrived before the process existed.
        _current["process"].send_signal(signal.SIGTERM)
      returncode = _current["process"].wait()
    finally:
      _current["process"] = None
  if returncode == 0 and not os.path.exists(done_file):
    returncode = 1  # Exited cleanly without its metrics: count it as a failure.
  record.update(finished=_now(), seconds=round(time.perf_counter() - start, 1),
                returncode=returncode)
  with open(os.path.join(run.workdir, RUN_RECORD_FILE), "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2)
  return returncode


def run_sweep(runs, overrides, sweep_command, dry_run=False):
  """Runs (or with dry_run prints) every unfinished run; returns the names of failed runs and
  whether SIGTERM stopped the sweep."""
  device = describe_device()
  print(f"sweep: {len(runs)} run(s) on {device}", flush=True)
  failed = []
  for i, run in enumerate(runs, start=1):
    if _current["sigterm"]:  # Between runs, or during one that ended anyway.
      return failed, True
    prefix = f"[{i}/{len(runs)}] {run.name}"
    done_file = metrics_path(run.workdir, overrides)
    if os.path.exists(done_file):
      print(f"{prefix}: finished earlier, skipped", flush=True)
      continue
    if dry_run:
      print(f"{prefix}: python -m covseg_jax.main {shlex.join(run.args)}", flush=True)
      continue
    print(f"{prefix}: running in {run.workdir}", flush=True)
    start = time.perf_counter()
    returncode = execute(run, done_file, sweep_command, device)
    elapsed = _format_seconds(time.perf_counter() - start)
    if returncode in (PREEMPTED_EXIT_STATUS, -signal.SIGTERM):
      print(f"{prefix}: stopped by SIGTERM after {elapsed}; the same sweep command resumes it",
            flush=True)
      return failed, True
    if returncode == 0:
      with open(done_file, encoding="utf-8") as f:
        accuracy = json.load(f)["global_accuracy_mean"]
      print(f"{prefix}: done in {elapsed}, mean global accuracy {accuracy:.4f}", flush=True)
    else:
      failed.append(run.name)
      log = os.path.join(run.workdir, LOG_FILE)
      print(f"{prefix}: FAILED (exit status {returncode}) after {elapsed}; end of {log}:\n"
            f"{_tail(log)}", flush=True)
  return failed, False


def parse_known_args_and_overrides(parser, argv):
  """(options, overrides): the parser's options and the --config.FIELD=VALUE arguments; any
  other argument is a usage error (exit status 2)."""
  options, overrides = parser.parse_known_args(argv)
  bad = [a for a in overrides if not (a.startswith("--config.") and "=" in a)]
  if bad:
    parser.error(f"unrecognised arguments {bad}: overrides take the form --config.FIELD=VALUE")
  return options, overrides


def parse_args(argv):
  """(options, overrides): overrides are the --config.FIELD=VALUE arguments."""
  parser = argparse.ArgumentParser(
      prog="python -m covseg_jax.sweep", allow_abbrev=False,
      description="Run a family's experiments and/or a k-fold cross-validation.",
      epilog="Any --config.FIELD=VALUE argument is passed to every run.")
  parser.add_argument("--config", required=True,
                      help="config file with optional variants, e.g. configs/segnet_multi.py:cpu")
  parser.add_argument("--root", required=True, help="sweep directory; one workdir per run")
  parser.add_argument("--experiments", type=parse_experiments, default=parse_experiments("1-9"),
                      help="experiments to run: '1-9' (default), '4,7', or 'none' for the "
                           "config as given")
  parser.add_argument("--folds", type=int, default=0,
                      help="k >= 2: k-fold cross-validation (paper: 5); 0: the paper's split")
  parser.add_argument("--fold_split", choices=("kfold", "paper_kfold"), default="kfold",
                      help="with --folds: 'kfold' (cross-validation: the folds' test sets cover "
                           "all slices) or 'paper_kfold' (every fold tested on the paper's test "
                           "slices; folds of the other 82, to ensemble)")
  parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  options, overrides = parse_known_args_and_overrides(parser, argv)
  if options.folds == 1 or options.folds < 0:
    parser.error("--folds must be 0 (the paper's split) or at least 2")
  if options.fold_split != "kfold" and not options.folds:
    parser.error(f"--fold_split={options.fold_split} needs --folds")
  return options, overrides


def main(argv):
  options, overrides = parse_args(argv)
  try:
    runs = plan_runs(options.config, options.root, options.experiments, options.folds, overrides,
                     options.fold_split)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  sweep_command = shlex.join(["python", "-m", "covseg_jax.sweep", *argv])
  previous_handler = signal.signal(signal.SIGTERM, _forward_sigterm)
  try:
    failed, stopped = run_sweep(runs, overrides, sweep_command, options.dry_run)
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
  if stopped:
    return PREEMPTED_EXIT_STATUS
  if failed:
    print(f"sweep: {len(failed)} of {len(runs)} run(s) failed: {', '.join(failed)}", flush=True)
    return 1
  if not options.dry_run:
    print(f"sweep: all {len(runs)} run(s) finished; tables: "
          f"python -m covseg_jax.results {shlex.quote(options.root)}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
