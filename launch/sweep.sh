#!/usr/bin/env bash
# covseg_jax.sweep with the same arguments, run from the repository root (relative paths in
# the arguments are taken from there).
#
#   launch/sweep.sh --config=configs/segnet_multi.py --root=runs/sweeps/segnet_multi
#   launch/sweep.sh --config=configs/segnet_multi.py --experiments=7 --folds=5 \
#       --root=runs/sweeps/segnet_multi_cv
#
# Then: python -m covseg_jax.results runs/sweeps
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m covseg_jax.sweep "$@"
