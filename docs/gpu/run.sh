#!/usr/bin/env bash
# The GPU session behind docs/gpu/*: run from the repository root on a CUDA machine with torch installed.
# Writes into ${OUT:-docs/gpu/out}: the GPU tests' log, the calibrated hardware preset (h100.json), the projection
# sweep (projections.json) and the compiled 70B-shard decode steps (steps.json). TESTS=0 skips the GPU tests.
set -uo pipefail
out=${OUT:-docs/gpu/out}; mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee "$out/env.txt"
[ "${TESTS:-1}" = 1 ] && timeout 150 python -m pytest -o addopts="" tests/test_gpu.py -rs -q -s 2>&1 | tee "$out/test_gpu.log"
python -m ladder_edu calibrate-gpu --out "$out/h100.json" --detail "$out" --budget "${BUDGET:-200}" 2>&1 \
  | tee "$out/calibrate.log"
