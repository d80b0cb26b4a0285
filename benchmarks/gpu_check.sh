#!/usr/bin/env bash
# GPU check (issue 19): install if needed, then measure every trainable method on the GPU.
#   bash benchmarks/gpu_check.sh          # on a machine with one CUDA GPU, < 8 minutes
#   bash benchmarks/gpu_check.sh --dry    # the same code path on the CPU at tiny sizes (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=disabled PYTHONUNBUFFERED=1
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ]; then make install >/dev/null; fi
exec "$PY" benchmarks/gpu_check.py "$@"
