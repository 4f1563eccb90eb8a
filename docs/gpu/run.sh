#!/usr/bin/env bash
# One GPU session, one call: everything docs/gpu reports, within about 9 minutes of device time on one GPU.
# Run from the repository root on a CUDA machine with torch. Before it, on a machine with the internet:
#   third_party/gpt-fast/model.py   gpt-fast's model (github.com/pytorch-labs/gpt-fast; ignored, never committed)
#   .whl/                           the wheels the GPU machine lacks (bash docs/gpu/wheels.sh), installed with
#                                   --no-index --no-deps into /tmp/site when present
# Every step writes into ${WORK:-/tmp/gpu-report} (emptied first); after each step the folder is packed into
# ${OUT:-docs/gpu/out}/results.tar.gz (so a call stopped at its limit still returns what finished), next to
# report.log (every step, its limit and exit status) and env.txt. Unpack with
#   mkdir -p docs/gpu/<gpu> && tar xzf results.tar.gz -C docs/gpu/<gpu>
# The steps, most wanted first:
#   graphed.json, graphed.log
#                       the 70B TP=8 rank (all 80 layers) captured in a CUDA graph: standard, parallel, ladder,
#                       upper bound, next to the performance model and the HBM floor
#   trace/              a torch.profiler trace of that rank (standard and ladder, one replay each): compute stream
#                       and the modeled communication stream, its overlap report and timeline.png (notebook 03)
#   preset.json, projections.json, steps.json, gptfast-steps.json, compare.json, calibrate.log
#                       calibrate-gpu --detail --gpt-fast: the hardware preset, every projection shape, compiled
#                       70B-shard steps of this package and of gpt-fast alternating, per layer side by side
#   test_gpu.log        tests/test_gpu.py (NCCL at TP 1, CUDA-graph decode, the emulated 70B rank eager and
#                       graph-captured) and tests/test_gptfast.py
#   profile/, hta.log   an NCCL profile at TP 1 and this package's overlap report next to HTA's
#   notebooks.log       notebooks 01-03 under nbval (quick mode) on the GPU
#   with 2+ GPUs also: nccl-check-<arch>.log, nccl-bench.log, nccl-profile/, labs.log (real NCCL TP)
# Each step has a time limit (550 s in all); a failing step is logged and the next one runs. GPU=<preset> picks the
# preset of this GPU for the graphed rank's model (default: by the GPU's name: h200-nvlink, else h100-nvlink).
# PY=<python> (default python3, the one that holds torch on the lent machines).
set -uo pipefail
dest=${OUT:-docs/gpu/out}; out=${WORK:-/tmp/gpu-report}; py=${PY:-python3}; rm -rf "$out"
mkdir -p "$dest" "$out"; dest=$(cd "$dest" && pwd); out=$(cd "$out" && pwd)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor LADDER_EDU_QUICK=1
log="$out/report.log"; : > "$log"
pack() {                                   # atomically: a kill during tar leaves the last archive whole
    tar czf "$dest/.results.tmp" -C "$out" . && mv "$dest/.results.tmp" "$dest/results.tar.gz"
    cp "$log" "$dest/report.log"
}
step() {                                   # step NAME SECONDS COMMAND...: run it under a limit, log how it ended
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
    echo "   $name: exit $? after $((SECONDS - t0))s" | tee -a "$log"
    pack
}
if [ -d .whl ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>&1 | tail -2
    export PYTHONPATH=$PWD:/tmp/site
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee "$out/env.txt"
cp "$out/env.txt" "$dest/env.txt"
gpus=$(nvidia-smi -L | wc -l)
gpu=${GPU:-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -q H200 && echo h200-nvlink \
        || echo h100-nvlink)}
gf=""; [ -f third_party/gpt-fast/model.py ] && gf="--gpt-fast third_party/gpt-fast"

step graphed 80 "$py" -m ladder_edu bench --emulate-tp 8 --graph --preset llama-3-70b --gpu "$gpu" \
    --arch standard,parallel,ladder,upper_bound --context 1024 --steps 20 --rounds 6 --json "$out/graphed.json"
step gputrace 45 "$py" -m ladder_edu.teach.gpu --gpu "$gpu" --out "$out/trace"
step calibrate 170 "$py" -m ladder_edu calibrate-gpu --out "$out/preset.json" --detail "$out" --budget 100 $gf
step test_gpu 120 "$py" -m pytest -o addopts="" tests/test_gpu.py tests/test_gptfast.py -rs -q -s
step profile 40 "$py" -m ladder_edu profile --backend nccl --tp 1 --arch standard,ladder --out "$out/profile"
step hta 30 "$py" - "$out/profile/traces" <<'EOF'
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
step notebooks 100 "$py" -m pytest -o addopts="--nbval-lax --nbval-current-env -p no:cacheprovider" -q \
    notebooks/01_*.ipynb notebooks/02_*.ipynb notebooks/03_*.ipynb
if [ "$gpus" -ge 2 ]; then
    for arch in standard parallel ladder; do
        step "nccl-check-$arch" 30 "$py" -m ladder_edu check --backend nccl --tp "$gpus" --arch "$arch"
    done
    step nccl-bench 90 "$py" -m ladder_edu bench --backend nccl --tp "$gpus" --preset small --json "$out/nccl-bench.json"
    step nccl-profile 40 "$py" -m ladder_edu profile --backend nccl --tp "$gpus" --out "$out/nccl-profile"
    step labs 90 "$py" -m pytest -o addopts="" -q tests/test_labs.py
fi
echo "done: $dest/results.tar.gz" | tee -a "$log"
pack
