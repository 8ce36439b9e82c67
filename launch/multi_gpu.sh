#!/usr/bin/env bash
# Trains on several GPUs of one machine: a single process drives every visible GPU, the
# parameters are replicated and the global batch (train.batch_size) is split over the GPUs, so
# it must be a multiple of their number. No jax.distributed: one process sees all local GPUs.
#
#   bash launch/multi_gpu.sh CONFIG WORKDIR [--config.FIELD=VALUE ...]
#   bash launch/multi_gpu.sh configs/segnet_multi.py runs/segnet_multi
#   CUDA_VISIBLE_DEVICES=0,1 bash launch/multi_gpu.sh configs/unet_multi.py:exp5 runs/unet_exp5
#
# CUDA_VISIBLE_DEVICES picks the GPUs (default: all of them). PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# < 2)); then
  echo "usage: bash launch/multi_gpu.sh CONFIG WORKDIR [--config.FIELD=VALUE ...]" >&2
  exit 2
fi
CONFIG=$1
WORKDIR=$2
shift 2
echo "GPUs: ${CUDA_VISIBLE_DEVICES:-all}" >&2
exec "${PYTHON:-python}" -m covseg_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"
