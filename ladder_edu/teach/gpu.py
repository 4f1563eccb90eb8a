"""Notebook 03's GPU section: the committed trace of the graph-captured emulated rank, or where it would come from.

``docs/gpu/run.sh`` writes ``trace/<variant>.gpu.trace.json.gz`` (``perf.measure.graphed_profile``); unpacked into
``docs/gpu/<gpu>/trace/``, ``show_gpu_trace`` prints each trace's overlap report and draws its timeline.
"""
from __future__ import annotations

import glob
import os

from ..profiling.overlap import analyze, load_trace, report_table
from .timeline import draw_timeline

HOW = ("No GPU trace is committed in this repository yet. On a CUDA machine, `OUT=DIR bash docs/gpu/run.sh` "
       "writes one (its step `gputrace`: python -m ladder_edu.perf.measure.graphed_profile --gpu h100-nvlink "
       "--out DIR/trace); unpacked into docs/gpu/<gpu>/trace/, this cell shows its overlap report and timeline.")


def gpu_traces(folder: str) -> dict[str, list[str]]:
    """{variant: [trace path]} of one trace folder, standard first."""
    paths = sorted(glob.glob(os.path.join(folder, "*.gpu.trace.json.gz")), key=lambda p: "ladder" in p)
    return {os.path.basename(p).split(".")[0]: [p] for p in paths}


def show_gpu_trace(folders: list[str]):
    """Print the overlap report of each folder's traces and return the timeline of the first; print ``HOW`` and
    return None when there is none."""
    found = [(f, gpu_traces(f)) for f in folders if gpu_traces(f)]
    if not found:
        print(HOW)
        return None
    for folder, traces in found:
        reports = {v: [analyze(load_trace(p[0]), rank=0)] for v, p in traces.items()}
        print(f"{folder} (compute measured on that GPU, all-reduces MODELED):\n{report_table(reports)}\n")
    folder, traces = found[0]
    return draw_timeline(traces, title=f"Rank 0 on the GPU of {folder}: compute stream (measured) and "
                                       f"communication stream (MODELED all-reduces), one CUDA-graph replay")
