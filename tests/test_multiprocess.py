"""Multi-process runs on localhost: jax.distributed with gloo collectives between CPU processes."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from covseg_jax import errors
from tests import helpers, test_resume

REPO = pathlib.Path(__file__).resolve().parent.parent

# Each process holds 2 of the 4 global devices; it loads only its rows of a global batch.
PEER = """
import json
import jax, jax.numpy as jnp, numpy as np
from covseg_jax import parallel
num_processes = parallel.initialize_distributed()
mesh = parallel.create_mesh()
rows = parallel.process_batch_rows(8, mesh)
batch = parallel.global_batch_from_local(np.arange(8.0)[rows], mesh, 8)
table = parallel.replicate(np.arange(8.0), mesh)
total = jax.jit(lambda b, t: jnp.sum(b * t),
                out_shardings=parallel.replicated_sharding(mesh))(batch, table)
print(json.dumps({"num_processes": num_processes, "process": jax.process_index(),
                  "devices": jax.device_count(), "rows": rows.tolist(), "total": float(total)}))
"""


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_peers(args, stdout):
  """Two processes running `args` as one jax.distributed job, 2 CPU devices each."""
  port = free_port()
  peers = []
  for process_id in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               COVSEG_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", COVSEG_NUM_PROCESSES="2",
               COVSEG_PROCESS_ID=str(process_id))
    peers.append(subprocess.Popen(args, cwd=REPO, env=env, text=True, stdout=stdout,
                                  stderr=subprocess.PIPE))
  return peers


def finish(peers, timeout):
  """Each peer's stderr once it has exited; a peer still running after `timeout` seconds in all
  is killed, and its stderr says so."""
  deadline = time.monotonic() + timeout
  stderrs = []
  for peer in peers:
    try:
      stderrs.append(peer.communicate(timeout=max(1.0, deadline - time.monotonic()))[1])
    except subprocess.TimeoutExpired:
      peer.kill()
      stderrs.append(peer.communicate()[1] + f"\n[killed: still running after {timeout} s]")
  return stderrs


def test_two_processes_build_one_global_batch():
  peers = start_peers([sys.executable, "-c", PEER], stdout=subprocess.PIPE)
  try:
    outputs = [peer.communicate(timeout=180) for peer in peers]
  finally:
    for peer in peers:
      peer.kill()  # A peer left alone would wait minutes for the other.
  for peer, (_, stderr) in zip(peers, outputs):
    assert peer.returncode == 0, stderr[-3000:]
  reports = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
  assert [r["process"] for r in reports] == [0, 1]
  assert [r["rows"] for r in reports] == [[0, 1, 2, 3], [4, 5, 6, 7]]
  for report in reports:
    assert report["num_processes"] == 2 and report["devices"] == 4
    assert report["total"] == sum(i * i for i in range(8))


def write_run(run_dir, loss):
  run_dir.mkdir()
  (run_dir / "metrics.jsonl").write_text(
      json.dumps({"step": 9, "train/loss": loss, "train/images_per_sec": loss * 100}) + "\n")
  (run_dir / "test_metrics.json").write_text(
      json.dumps({"step": 9, "split": "test", "per_image_global_accuracy": [0.5, 0.25]}))
  return str(run_dir)


def compare(a, b):
  return subprocess.run([sys.executable, "launch/compare_runs.py", a, b], cwd=REPO,
                        capture_output=True, text=True)


def test_compare_runs_accepts_rounding_and_reports_differences(tmp_path):
  a = write_run(tmp_path / "a", 0.5)
  result = compare(a, write_run(tmp_path / "b", 0.5 * (1 + 1e-6)))
  assert result.returncode == 0, result.stderr
  assert "match" in result.stdout
  result = compare(a, write_run(tmp_path / "c", 0.5 * (1 + 1e-3)))
  assert result.returncode == 1
  assert "MISMATCH: 1 of" in result.stderr and "train/loss" in result.stderr


@pytest.mark.slow
def test_two_process_training_matches_single_process():
  """launch/local_multiprocess.sh: 2 processes x 2 devices train as 1 process x 4 devices."""
  result = subprocess.run(["bash", "launch/local_multiprocess.sh"], cwd=REPO,
                          env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, result.stdout + result.stderr[-5000:]
  assert "match:" in result.stdout


# This test hung now and then (4 of about 28 runs before 2026-11-24): a best and a periodic
# checkpoint of the step after the notice met at one orbax barrier. With their barriers apart
# (checkpoint.Checkpointer) it passed 60 runs in a row, 2026-11-24.
@pytest.mark.slow
def test_sigterm_to_one_process_stops_all_at_one_saved_step(tmp_path_factory, tmp_path):
  """jax.distributed's preemption service: a notice on one process makes every process save
  the same step and stop (steps_per_call=4: the chosen step can fall inside a call)."""
  data_dir = helpers.data_dir_or_phantoms(tmp_path_factory)
  workdir = str(tmp_path / "run")
  args = test_resume.command(data_dir, workdir) + [
      "--config.train.shear_degrees=0", "--config.train.steps_per_call=4",
      "--config.checkpoint.every_steps=8", "--config.train.val_every_steps=8",
      "--config.train.log_every_steps=4"]
  peers = start_peers(args, stdout=subprocess.DEVNULL)
  try:
    while not test_resume.saved_steps(workdir) and peers[0].poll() is None:
      time.sleep(0.02)
    peers[1].send_signal(signal.SIGTERM)
    stderrs = finish(peers, timeout=300)
  finally:
    for peer in peers:
      peer.kill()
  saved = test_resume.saved_steps(workdir)
  assert saved and 8 < max(saved) < test_resume.TOTAL_STEPS, (
      saved, [(peer.returncode, stderr[-3000:]) for peer, stderr in zip(peers, stderrs)])
  for peer, stderr in zip(peers, stderrs):
    assert peer.returncode == errors.PREEMPTED_EXIT_STATUS, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith(
        f"preempted: stopped by SIGTERM at step {max(saved)}/")
