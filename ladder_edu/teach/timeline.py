"""Nsight-style timelines from traces: per rank a compute lane and a communication lane, one variant above the
other on the same time scale, so hidden and exposed communication can be seen.

The compute lane is the main thread: module regions, the start of each all-reduce (on a CPU, the main thread hands
the tensor to gloo), and the waits. Where the compute lane is white, the main thread is doing none of these: the
Python between regions, or the thread descheduled while gloo's threads run on the same cores. The communication
lane is gloo's threads (CPU), the NCCL kernels (GPU) or an emulated link's modeled all-reduces
(``perf/measure/emulated_profile.py``)."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from ..profiling.overlap import Interval, classify, load_trace
from .palette import MODULES as COLORS


def step_window(parts: dict, step: int = -1) -> tuple[float, float]:
    """(start, end) of one forward pass: from its first module region to the next pass's first one."""
    firsts = sorted(i.start for i in parts["compute"] if i.layer == 0 and i.name.endswith(("attn", "attn+mlp")))
    if not firsts:
        everything = parts["compute"] + parts["comm"]
        return min(i.start for i in everything), max(i.end for i in everything)
    k = range(len(firsts))[step]
    end = firsts[k + 1] if k + 1 < len(firsts) else max(i.end for i in parts["compute"] + parts["comm"])
    return firsts[k], end


def _select(intervals: list[Interval], lo: float, hi: float, layers) -> list[Interval]:
    keep = [i for i in intervals if i.end > lo and i.start < hi]
    if layers is not None:
        keep = [i for i in keep if i.layer is not None and layers[0] <= i.layer <= layers[1]]
    return keep


def draw_timeline(traces: dict[str, list[str]], step: int = -1, layers: tuple[int, int] | None = None,
                  ranks: list[int] | None = None, title: str = ""):
    """traces: {variant: [rank 0 trace path, rank 1 trace path, ...]}. Draws one profiled step (default: the last)
    of each variant, optionally only layers ``layers=(first, last)`` and only some ``ranks``."""
    rows = []
    for variant, paths in traces.items():
        parts = [classify(load_trace(p)) for p in paths]
        lo, hi = step_window(parts[0], step)
        for r, prt in enumerate(parts):
            if ranks is None or r in ranks:
                rows.append((variant, r, prt, lo, hi))
    fig, ax = plt.subplots(figsize=(12, 0.55 * 2 * len(rows) + 1.2))
    yticks, ylabels = [], []
    end_ms, start_ms = 0.0, float("inf")
    for k, (variant, r, prt, lo, hi) in enumerate(rows):
        base = (len(rows) - 1 - k) * 2.3
        main = prt["compute"] + prt["wait"] + prt.get("start", [])
        lanes = [("compute", main, base + 1.0), ("comm", prt["comm"], base)]
        last = max((i.end for i in _select(prt["compute"], lo, hi, layers)), default=hi)
        for lane, intervals, y in lanes:
            sel = _select(intervals, lo, hi, layers)
            if layers is not None and lane == "compute":      # a zoom ends with its last module: a wait of these
                sel = [i for i in sel if i.start <= last]     # layers that comes after it belongs to the next ones
            bars = [((i.start - lo) / 1e3, (i.end - i.start) / 1e3) for i in sel]
            ax.broken_barh(bars, (y, 0.85), facecolors=[COLORS[i.kind] for i in sel],      # back-to-back
                           edgecolor="white" if lane == "comm" else "none", linewidth=0.6)  # all-reduces apart
            if sel:
                end_ms = max(end_ms, max((i.end - lo) / 1e3 for i in sel))
                start_ms = min(start_ms, min((i.start - lo) / 1e3 for i in sel))
            yticks.append(y + 0.42)
            ylabels.append(f"{variant} r{r} {lane}")
        ax.axhline(base - 0.2, color="#EEEEEE", lw=0.8)
    ax.set_yticks(yticks, ylabels, fontsize=8)
    start_ms = 0.0 if layers is None or start_ms == float("inf") else start_ms
    ax.set_xlim(start_ms, end_ms + 0.02 * (end_ms - start_ms) if end_ms else 1)
    ax.set_xlabel("ms since the start of the step")
    kinds = ["attn", "mlp", "attn+mlp", "lm_head", "start", "wait", "allreduce"]
    ax.legend([Patch(color=COLORS[c]) for c in kinds], ["attention", "MLP", "attn+MLP", "LM head",
                                                         "starting an all-reduce", "waiting for an all-reduce",
                                                         "all-reduce (comm lane)"],
              loc="lower center", bbox_to_anchor=(0.5, 0.0), bbox_transform=fig.transFigure, ncol=7, fontsize=8,
              frameon=False)
    what = f"layers {layers[0]}-{layers[1]}" if layers else "one step"
    shown = sorted({r for _, r, *_ in rows})
    who = "every rank drawn" if ranks is None else f"rank{'s' if len(shown) > 1 else ''} {', '.join(map(str, shown))}"
    ax.set_title(title or f"Timeline of {what}, {who}: main thread (compute, start, wait; white = "
                          f"neither) and communication lane\n(an all-reduce's bar runs from its start on that rank "
                          f"to its end there: waiting for a slower rank to join is part of it)", fontsize=10)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))     # 0.45 inch below the axis for the legend
    return fig
