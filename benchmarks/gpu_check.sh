#!/usr/bin/env bash
# One prepared GPU check (at most 8 minutes): install rnncast with the `gpu` extra into a fresh
# virtual environment, then compare the cuDNN kernels with the CPU kernels and time the train
# step against Keras fit on the GPU (benchmarks/gpu_check.py). Needs a GPU machine that can
# reach PyPI (TensorFlow's CUDA wheels are several GB).
#
#   bash benchmarks/gpu_check.sh [--batch-size 256]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${RNNCAST_GPU_VENV:-/tmp/rnncast-gpu}"
started=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet -e '.[gpu]'
echo "install: $(( $(date +%s) - started )) s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# What is left of the 8 minutes goes to the check.
left=$(( 480 - ($(date +%s) - started) ))
timeout "$left" "$venv/bin/python" benchmarks/gpu_check.py "$@"
