#!/usr/bin/env bash
# Two CPU processes on localhost train a tiny config together (jax.distributed, gloo collectives,
# 2 fake devices each); their results must equal one process on 4 fake devices.
#
#   bash launch/local_multiprocess.sh [--config.FIELD=VALUE ...]
#
# Arguments override the config of all three runs (e.g. --config.data.data_dir=/path/to/medseg;
# the default is a phantom data set written on the fly). Exits 0 when the results agree, 1 with
# the differences or the failed process's log otherwise. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
NUM_PROCESSES=2
DEVICES_PER_PROCESS=2
OUT=$(mktemp -d "${TMPDIR:-/tmp}/covseg_multiprocess.XXXXXX")
PIDS=()
NAMES=()

cleanup() {
  local status=$?
  # A peer left alone would wait minutes for a dead one. SIGKILL, because SIGTERM is a
  # preemption notice: a process would try to save a checkpoint together with its dead peer.
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ $status -eq 0 ]]; then
    rm -rf "$OUT"
  else
    echo "logs and run directories kept in $OUT" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$PYTHON" -c 'import sys; from covseg_jax.data import synthetic
synthetic.write_medseg_folder(sys.argv[1], n=100, size=64, seed=0)' "$OUT/data"
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')

# Shear off: the warp's float rounding depends on how XLA compiles the program, which differs
# between the multi-process and the single-process step, and training amplifies it (see
# tests/test_train.py). Flips stay on: they are exact.
CONFIG=(--config=configs/segnet_multi.py:cpu --config.data.data_dir="$OUT/data"
        --config.data.image_size=32 --config.model.features='(4,8,16)' --config.train.epochs=1
        --config.train.shear_degrees=0 "$@")

start() {  # start NAME WORKDIR DEVICES [VAR=VALUE ...]: one training process in the background.
  local name=$1 workdir=$2 devices=$3
  shift 3
  env "$@" JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=$devices" \
    "$PYTHON" -m covseg_jax.main "${CONFIG[@]}" --workdir="$OUT/$workdir" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

for ((i = 0; i < NUM_PROCESSES; i++)); do
  start "process$i" multi "$DEVICES_PER_PROCESS" COVSEG_COORDINATOR_ADDRESS="127.0.0.1:$PORT" \
    COVSEG_NUM_PROCESSES="$NUM_PROCESSES" COVSEG_PROCESS_ID="$i"
done
start single single "$((NUM_PROCESSES * DEVICES_PER_PROCESS))"
echo "training: $NUM_PROCESSES processes x $DEVICES_PER_PROCESS CPU devices (coordinator" \
     "127.0.0.1:$PORT) and 1 process x $((NUM_PROCESSES * DEVICES_PER_PROCESS)) devices"

running=${#PIDS[@]}
while ((running)); do  # Poll, so that the first failure stops everything at once.
  sleep 1
  for i in "${!PIDS[@]}"; do
    pid=${PIDS[i]}
    [[ $pid ]] && ! kill -0 "$pid" 2>/dev/null || continue  # Still running.
    status=0
    wait "$pid" || status=$?
    PIDS[i]=""
    running=$((running - 1))
    if ((status)); then
      echo "error: ${NAMES[i]} exited with status $status; the end of its log:" >&2
      tail -n 20 "$OUT/${NAMES[i]}.log" >&2
      exit 1
    fi
  done
done

"$PYTHON" launch/compare_runs.py "$OUT/multi" "$OUT/single"
