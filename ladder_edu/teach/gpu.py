"""Notebook 03's GPU section: the committed trace of the graph-captured emulated rank, or where it would come from.

``docs/gpu/run.sh`` writes ``trace/<variant>.gpu.trace.json.gz`` (``perf.measure.graphed_profile``); unpacked into
``docs/gpu/<gpu>/trace/``, ``show_gpu_trace`` prints each trace's overlap report and draws its timeline.
``python -m ladder_edu.teach.gpu --gpu h100-nvlink --out DIR`` (on a CUDA machine) writes those traces, their
``overlap.txt`` and ``timeline.png``.
"""
from __future__ import annotations

import glob
import os

import torch

import argparse

from ..models.config import get_config
from ..models.registry import BASELINE, LADDER
from ..models.spec import RunSpec
from ..perf.measure.graphed_profile import profile_graphed
from ..perf.model.hardware import get_hardware
from ..profiling.overlap import analyze, load_trace, report_table
from .timeline import draw_timeline

HOW = ("No GPU trace is committed in this repository yet. On a CUDA machine, `OUT=DIR bash docs/gpu/run.sh` "
       "writes one (its step `gputrace`: python -m ladder_edu.teach.gpu --gpu h100-nvlink "
       "--out DIR/trace); unpacked into docs/gpu/<gpu>/trace/, this cell shows its overlap report and timeline.")


def gpu_traces(folder: str) -> dict[str, list[str]]:
    """{variant: [trace path]} of one trace folder, standard first."""
    paths = sorted(glob.glob(os.path.join(folder, "*.gpu.trace.json.gz")), key=lambda p: LADDER in os.path.basename(p))
    return {os.path.basename(p).split(".")[0]: [p] for p in paths}


def show_gpu_trace(folders: list[str]):
    """Print the overlap report of each folder's traces and return the timeline of the first; print ``HOW`` and
    return None when there is none."""
    found = [(f, traces) for f in folders if (traces := gpu_traces(f))]
    if not found:
        print(HOW)
        return None
    for folder, traces in found:
        reports = {v: [analyze(load_trace(p[0]), rank=0)] for v, p in traces.items()}
        print(f"{folder} (compute measured on that GPU, all-reduces MODELED):\n{report_table(reports)}\n")
    folder, traces = found[0]
    return draw_timeline(traces, title=f"Rank 0 on the GPU of {folder}: compute stream (measured) and "
                                       f"communication stream (MODELED all-reduces), one CUDA-graph replay")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="GPU trace of the graph-captured emulated rank (needs CUDA)")
    p.add_argument("--preset", default="llama-3-70b")
    p.add_argument("--tp", type=int, default=8)
    p.add_argument("--gpu", default="h100-nvlink", help="the hardware whose all-reduces are modeled")
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    spec = RunSpec(get_config(a.preset), a.tp, (BASELINE, LADDER), context=a.context, dtype="bfloat16")
    traces = profile_graphed(spec, get_hardware(a.gpu), a.out)
    reports = {v: [analyze(load_trace(p[0]), rank=0)] for v, p in traces.items()}
    with open(os.path.join(a.out, "overlap.txt"), "w") as f:
        f.write(f"{torch.cuda.get_device_name()}: rank 0 of {a.preset} at TP {a.tp}, one CUDA graph per step, "
                f"all-reduces MODELED for {a.gpu}; one replay\n{report_table(reports)}\n")
    draw_timeline(traces, step=0, title=f"{a.preset} TP {a.tp}, rank 0 on {torch.cuda.get_device_name()}: compute "
                  f"stream (measured) and communication stream (MODELED all-reduces)").savefig(
        os.path.join(a.out, "timeline.png"), dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
