#!/usr/bin/env bash
# One GPU session, one call: everything docs/gpu reports, within about 8 minutes of device time on one GPU.
# Run from the repository root on a CUDA machine with torch. Before it, on a machine with the internet:
#   third_party/gpt-fast/model.py   gpt-fast's model (github.com/pytorch-labs/gpt-fast; ignored, never committed)
#   .whl/                           optional wheelhouse (pip download HolisticTraceAnalysis nbval ...), installed
#                                   with --no-index when present
# Writes into ${OUT:-docs/gpu/out}: env.txt, report.log (every step, its limit and exit status) and per step:
#   test_gpu.log        tests/test_gpu.py (NCCL at TP 1, CUDA-graph decode, the emulated 70B rank eager and
#                       graph-captured) and tests/test_gptfast.py
#   preset.json, projections.json, steps.json, gptfast-steps.json, compare.json, calibrate.log
#                       calibrate-gpu --detail --gpt-fast: the hardware preset, every projection shape, compiled
#                       70B-shard steps of this package and of gpt-fast alternating, per layer side by side
#   graphed.json, graphed.log
#                       the 70B TP=8 rank (all 80 layers) captured in a CUDA graph: standard, parallel, ladder,
#                       upper bound, next to the performance model and the HBM floor
#   profile/, hta.log   an NCCL profile at TP 1 and this package's overlap report next to HTA's
#   notebooks.log       notebooks 01-03 under nbval (quick mode) on the GPU
#   with 2+ GPUs also: nccl-check-<arch>.log, nccl-bench.log, nccl-profile/, labs.log (real NCCL TP)
# Each step has a time limit; a failing step is logged and the next one runs. GPU=<preset> picks the preset of
# this GPU for the graphed rank's model (default: by the GPU's name: h200-nvlink, else h100-nvlink).
set -uo pipefail
out=${OUT:-docs/gpu/out}; mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor LADDER_EDU_QUICK=1
log="$out/report.log"; : > "$log"
step() {                                   # step NAME SECONDS COMMAND...: run it under a limit, log how it ended
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
    echo "   $name: exit $? after $((SECONDS - t0))s" | tee -a "$log"
}
[ -d .whl ] && python -m pip install -q --no-index --find-links .whl -e . HolisticTraceAnalysis nbval 2>&1 | tail -2
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee "$out/env.txt"
gpus=$(nvidia-smi -L | wc -l)
gpu=${GPU:-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -q H200 && echo h200-nvlink \
        || echo h100-nvlink)}
gf=""; [ -f third_party/gpt-fast/model.py ] && gf="--gpt-fast third_party/gpt-fast"

step test_gpu 100 python -m pytest -o addopts="" tests/test_gpu.py tests/test_gptfast.py -rs -q -s
step calibrate 170 python -m ladder_edu calibrate-gpu --out "$out/preset.json" --detail "$out" --budget 130 $gf
step graphed 80 python -m ladder_edu bench --emulate-tp 8 --graph --preset llama-3-70b --gpu "$gpu" \
    --arch standard,parallel,ladder,upper_bound --context 1024 --steps 20 --rounds 6 --json "$out/graphed.json"
step profile 40 python -m ladder_edu profile --backend nccl --tp 1 --arch standard,ladder --out "$out/profile"
step hta 30 python - "$out/profile/traces" <<'EOF'
import glob, os, sys
from ladder_edu.profiling.overlap import analyze, load_trace
for d in sorted(glob.glob(os.path.join(sys.argv[1], "*"))):
    for path in sorted(glob.glob(os.path.join(d, "rank*.pt.trace.json"))):
        print(path, "ladder_edu:", analyze(load_trace(path)))
    try:                                         # HTA reads a folder of rank traces
        from hta.trace_analysis import TraceAnalysis
        print(d, "HTA:", TraceAnalysis(trace_dir=d).get_comm_comp_overlap(visualize=False).to_dict("records"))
    except Exception as e:                       # HTA missing or refusing the trace: say so, go on
        print(d, "HTA:", repr(e)[:300])
EOF
step notebooks 70 python -m pytest -o addopts="--nbval-lax --nbval-current-env -p no:cacheprovider" -q \
    notebooks/01_*.ipynb notebooks/02_*.ipynb notebooks/03_*.ipynb
if [ "$gpus" -ge 2 ]; then
    for arch in standard parallel ladder; do
        step "nccl-check-$arch" 30 python -m ladder_edu check --backend nccl --tp "$gpus" --arch "$arch"
    done
    step nccl-bench 90 python -m ladder_edu bench --backend nccl --tp "$gpus" --preset small --json "$out/nccl-bench.json"
    step nccl-profile 40 python -m ladder_edu profile --backend nccl --tp "$gpus" --out "$out/nccl-profile"
    step labs 90 python -m pytest -o addopts="" -q tests/test_labs.py
fi
echo "done: $out" | tee -a "$log"
