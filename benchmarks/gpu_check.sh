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
# A prepared environment (RNNCAST_GPU_VENV holding TensorFlow's CUDA build) skips the download.
if ! "$venv/bin/python" -c "import tensorflow" 2>/dev/null; then
  if ! "$venv/bin/pip" install --quiet -e '.[gpu]'; then
    echo "gpu_check: could not install the gpu extra into $venv (TensorFlow's CUDA wheels, several GB, come from PyPI); on a machine without PyPI, point RNNCAST_GPU_VENV at a virtual environment that already holds tensorflow[and-cuda] 2.21" >&2
    exit 2
  fi
elif ! "$venv/bin/python" -c "import rnncast" 2>/dev/null; then
  if ! "$venv/bin/pip" install --quiet --no-deps -e .; then
    echo "gpu_check: $venv holds TensorFlow but not rnncast, and installing it failed; install it there first (pip install --no-deps -e .)" >&2
    exit 2
  fi
fi
echo "install: $(( $(date +%s) - started )) s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# What is left of the 8 minutes goes to the check.
left=$(( 480 - ($(date +%s) - started) ))
timeout "$left" "$venv/bin/python" benchmarks/gpu_check.py "$@"
