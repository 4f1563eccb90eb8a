"""Pictures for the notebooks (matplotlib): how weights are sharded, how each architecture's data flows, what
the idealised schedule looks like, and measured decode times. Every function returns a matplotlib Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle

from ..perf.model.critical_path import simulate, total_time
from ..models.registry import BENCH_VARIANTS
from ..util.noise import short

from .palette import LABELS, MODULES as KIND_COLORS, RANKS as RANK_COLORS, VARIANTS


def _matrix(ax, x, y, rows, cols, label, split=None, tp=1, cell=0.35):
    """Draw a rows x cols matrix at (x, y); split='cols' or 'rows' colors its blocks by owning rank."""
    for r in range(rows):
        for c in range(cols):
            owner = c * tp // cols if split == "cols" else r * tp // rows if split == "rows" else None
            color = RANK_COLORS[owner] if owner is not None else "#DDDDDD"
            ax.add_patch(Rectangle((x + c * cell, y - (r + 1) * cell), cell, cell, facecolor=color,
                                   edgecolor="white", alpha=0.85))
    ax.text(x + cols * cell / 2, y + 0.15, label, ha="center", va="bottom", fontsize=10)
    return x + cols * cell


def draw_sharding(tp: int = 2):
    """Megatron's two splits of Y = X A (A = W^T, shape in x out), colored by the rank that owns each block."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, kind in zip(axes, ("column", "row")):
        ax.set_axis_off()
        ax.set_xlim(-0.2, 7.8)
        ax.set_ylim(-2.6, 0.9)
        x_split = "cols" if kind == "row" else None
        end = _matrix(ax, 0, 0, 3, 4, "X (tokens x in)", x_split, tp)
        ax.text(end + 0.15, -0.7, "x", fontsize=14, va="center")
        end = _matrix(ax, end + 0.6, 0, 4, 6, "A (in x out)", "cols" if kind == "column" else "rows", tp)
        ax.text(end + 0.15, -0.7, "=", fontsize=14, va="center")
        _matrix(ax, end + 0.6, 0, 3, 6, "Y (tokens x out)", "cols" if kind == "column" else None, tp)
        title = ("ColumnParallelLinear: rank r owns columns of A,\ncomputes its slice of Y; no communication"
                 if kind == "column" else
                 "RowParallelLinear: rank r owns rows of A and the matching\ncolumns of X; Y = sum of partial "
                 "sums = AllReduce")
        ax.set_title(title, fontsize=10)
    handles = [Rectangle((0, 0), 1, 1, color=RANK_COLORS[r]) for r in range(tp)] + [Rectangle((0, 0), 1, 1,
                                                                                           color="#DDDDDD")]
    fig.legend(handles, [f"rank {r}" for r in range(tp)] + ["whole (every rank holds all of it)"],
               loc="lower center", ncol=tp + 1, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _stream_reads(arch: str, n_modules: int):
    """For each module i (1-based), the index of the residual stream r_j it reads and whether it is fused."""
    if arch == "ladder":
        return [max(i - 2, 0) for i in range(1, n_modules + 1)]
    return [i - 1 for i in range(1, n_modules + 1)]


def draw_dataflow(archs=("standard", "parallel", "ladder"), n_layers: int = 2):
    """Residual stream r_0, r_1, ... (horizontal line) and which r_j each module reads (arrow up to the module)
    and where its all-reduced output is added (arrow down)."""
    fig, axes = plt.subplots(len(archs), 1, figsize=(11, 2.3 * len(archs)))
    axes = [axes] if len(archs) == 1 else axes
    for ax, arch in zip(axes, archs):
        ax.set_axis_off()
        if arch == "parallel":
            names = [f"L{i}: attn+mlp" for i in range(n_layers)]
            kinds = ["attn+mlp"] * n_layers
        else:
            names = [f"L{i}.{m}" for i in range(n_layers) for m in ("attn", "mlp")]
            kinds = ["attn", "mlp"] * n_layers
        n = len(names)
        step = 10 / n
        ax.set_xlim(-0.6, 10.8)
        ax.set_ylim(-0.9, 1.9)
        ax.plot([0, 10.3], [0, 0], color="black", lw=2)
        for j in range(n + 1):
            ax.plot(j * step, 0, "o", color="black")
            ax.text(j * step, -0.35, f"r{j}", ha="center", va="top", fontsize=9)
        for i, (name, kind, read) in enumerate(zip(names, kinds, _stream_reads(arch, n))):
            cx = (i + 0.5) * step
            ax.add_patch(Rectangle((cx - step * 0.38, 0.9), step * 0.76, 0.55, facecolor=KIND_COLORS[kind],
                                   alpha=0.8, edgecolor="black"))
            ax.text(cx, 1.17, name, ha="center", va="center", color="white", fontsize=9)
            stale = arch == "ladder" and read < i
            ax.add_artist(FancyArrowPatch((read * step, 0.05), (cx - step * 0.2, 0.9), arrowstyle="-|>",
                                          mutation_scale=12, color="#C44E52" if stale else "black",
                                          linestyle="--" if stale else "-"))
            ax.add_artist(FancyArrowPatch((cx + step * 0.2, 0.9), ((i + 1) * step, 0.05), arrowstyle="-|>",
                                          mutation_scale=12, color="gray"))
            ax.text((i + 0.95) * step, 0.55, "AR", fontsize=7, color="gray", ha="left")
        label = {"standard": "standard: module i reads r_(i-1), which needs AllReduce(i-1) first",
                 "parallel": "parallel block: attention and MLP read the same r, one AllReduce per layer",
                 "ladder": "ladder: module i reads r_(i-2) (red dashed), so AllReduce(i-1) overlaps module i"}
        ax.set_title(label.get(arch, arch), fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def draw_schedule(variants=BENCH_VARIANTS, n_layers: int = 3,
                  t_attn: float = 1.0, t_mlp: float = 1.0, t_comm: float = 0.8):
    """Idealised Gantt chart, one compute lane and one communication lane per variant, on one time axis."""
    fig, ax = plt.subplots(figsize=(11, 0.9 * 2 * len(variants) + 0.6))
    yticks, ylabels, used = [], [], {}
    for k, v in enumerate(variants):
        events = simulate(v, n_layers, t_attn, t_mlp, t_comm)
        base = (len(variants) - 1 - k) * 2.4
        if not any(e.lane != "compute" for e in events):
            ax.text(0.1, base + 0.4, "no all-reduce (the ceiling: communication skipped)", va="center", fontsize=8,
                    color="#666666")
        for e in events:
            used[e.kind] = KIND_COLORS[e.kind]
            y = base + (1.0 if e.lane == "compute" else 0.0)
            ax.broken_barh([(e.start, e.end - e.start)], (y, 0.8), facecolors=KIND_COLORS[e.kind],
                           edgecolor="white")
        ax.text(total_time(events) + 0.1, base + 1.0, f"{total_time(events):.1f}", va="bottom", fontsize=9)
        yticks += [base + 0.4, base + 1.4]
        ylabels += [f"{v}  comm", f"{v}  compute"]
    ax.set_yticks(yticks, ylabels)
    ax.set_ylim(-0.3, (len(variants) - 1) * 2.4 + 2.1)
    ax.set_xlabel("time (units of one module's compute)")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in used.values()]
    fig.legend(handles, [LABELS[k] for k in used], loc="lower center", ncol=len(used), fontsize=8, frameon=False)
    ax.set_title(f"Idealised schedule: {n_layers} layers, attention {t_attn:g}, MLP {t_mlp:g}, all-reduce "
                 f"{t_comm:g}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_decode(bench):
    """Bar chart of measured decode ms/token (median, whiskers = p10-p90) from a bench.DecodeBenchmark."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [r.variant for r in bench.rows]
    med = [r.median_ms for r in bench.rows]
    err = [[r.median_ms - r.p10_ms for r in bench.rows], [r.p90_ms - r.median_ms for r in bench.rows]]
    colors = [VARIANTS[n] for n in names]
    ax.bar(names, med, yerr=err, color=colors, capsize=4, edgecolor="black")
    for i, r in enumerate(bench.rows):
        verdict = "" if r.verdict is None or r.variant == names[0] else "\n" + short(r.verdict)
        ax.text(i, r.median_ms / 2, f"{r.speedup_vs_standard:.2f}x{verdict}", ha="center", fontsize=9)
    ax.set_ylabel("ms per decoded token")
    ax.set_title(f"decode, {bench.preset}, TP={bench.tp} ({bench.backend}); median, p10-p90\nlabels: speedup (median "
                 f"per-round ratio) and its reading", fontsize=9)
    fig.tight_layout()
    return fig


def plot_bench(results):
    """Grouped bars: per measured configuration, each variant's median (whiskers p10-p90) from bench results."""
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(results) + 2), 3.4))
    variants = [r.variant for r in results[0].rows]
    width = 0.8 / len(variants)
    colors = VARIANTS
    for k, v in enumerate(variants):
        rows = [r.row(v) for r in results]
        xs = [i + (k - (len(variants) - 1) / 2) * width for i in range(len(results))]
        ax.bar(xs, [r.median_ms for r in rows], width, color=colors.get(v, "#55A868"), edgecolor="black", label=v,
               yerr=[[r.median_ms - r.p10_ms for r in rows], [r.p90_ms - r.median_ms for r in rows]], capsize=3)
    ax.set_xticks(range(len(results)), [f"TP{r.tp} b{r.batch} ctx{r.context}" for r in results])
    unit = "ms per prefill" if results[0].phase == "prefill" else "ms per token"
    ax.set_ylabel(unit)
    ax.set_title(f"{results[0].phase}, {results[0].preset} ({results[0].backend}); median, p10-p90", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_compiled_overlap(overlaps: dict[str, list[int]]):
    """One row of bars per compiled variant: the matmuls issued while each all-reduce is in flight
    (``compiled.overlapped_matmuls``). Zero means the all-reduce is waited on before any compute."""
    fig, axes = plt.subplots(len(overlaps), 1, figsize=(8, 1.3 * len(overlaps) + 0.6), sharex=True, squeeze=False)
    for ax, (name, counts) in zip(axes[:, 0], overlaps.items()):
        ax.bar(range(len(counts)), counts, color=KIND_COLORS["attn"], edgecolor="black")
        exposed = [i for i, c in enumerate(counts) if c == 0]
        ax.plot(exposed, [0.3] * len(exposed), "x", color=KIND_COLORS["allreduce"], markersize=9, mew=2.5)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9, labelpad=12)
        ax.set_ylim(0, max(1, *counts) + 1)
    axes[-1, 0].set_xlabel("all-reduce, in program order (red x: no compute overlaps it)")
    axes[0, 0].set_title("compiled decode, in the generated code: matmuls issued between\neach "
                         "all-reduce's start and its wait", fontsize=10)
    fig.supylabel("matmuls (a static count)", fontsize=9)
    fig.tight_layout()
    return fig
