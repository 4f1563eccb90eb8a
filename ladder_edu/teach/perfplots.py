"""Pictures of the performance model: the paper's speedups next to the model's, predicted speedups, and the model
next to a measurement on this machine."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from ..perf.model.hardware import Hardware
from ..models.registry import BASELINE, CEILING
from ..perf.model.deployment import Deployment
from ..perf.model.perfmodel import forward_time, predict

from .palette import BREAKDOWN, HIDDEN, MARKERS, VARIANTS as VARIANT_COLORS


def plot_validation(report: dict, cv: dict | None = None):
    """Model vs paper speedup for every cell of the 70B table (``perf.model.fit.validate``); with ``cv``
    (``perf.model.fit.cross_validate``), open markers are each cell's prediction from the fold that left it out."""
    fig, ax = plt.subplots(figsize=(5.6, 5))
    held = {(r["interconnect"], r["batch"], r["tp"], r["variant"]): r["model_speedup"]
            for f in (cv or {}).get("folds", []) if f["left_out"].startswith("batch") for r in f["rows"]}
    for r in report["rows"]:
        color = "#C44E52" if r["interconnect"] == "h100-no-p2p" else "#4C72B0"
        ax.scatter(r["paper_speedup"], r["model_speedup"], marker=MARKERS[r["variant"]], s=40, color=color)
        key = (r["interconnect"], r["batch"], r["tp"], r["variant"])
        if key in held:
            ax.scatter(r["paper_speedup"], held[key], marker=MARKERS[r["variant"]], s=40, facecolors="none",
                       edgecolors=color)
    lo, hi = 0.98, 1.75
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.fill_between([lo, hi], [lo - 0.05, hi - 0.05], [lo + 0.05, hi + 0.05], color="#EEEEEE", zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("paper: speedup over standard (tokens/s)")
    ax.set_ylabel("model")
    from matplotlib.lines import Line2D
    keys = [Line2D([], [], ls="none", marker=MARKERS[v], color="#555555", label=v)
            for v in dict.fromkeys(r["variant"] for r in report["rows"])]
    keys += [Line2D([], [], ls="none", marker="s", color=c, label=n)
             for c, n in (("#4C72B0", "NVLink"), ("#C44E52", "no NVLink (no P2P)"))]
    keys.append(Line2D([], [], ls="none", marker="h", color="#555555", label="filled: fitted on the whole table"))
    if cv:
        keys.append(Line2D([], [], ls="none", marker="h", mfc="none", color="#555555",
                           label=f"open: left out of the fit (batch CV, MAE {cv['leave_one_batch_out_mae']:.3f})"))
    keys.append(Patch(color="#EEEEEE", label="within 0.05 of the paper"))
    ax.legend(handles=keys, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_title(f"Llama-3-70B on H100s (TP 2-8): model against paper\n(in-sample MAE {report['speedup_mae']:.3f})",
                 fontsize=9)
    fig.set_size_inches(8.4, 5)
    fig.tight_layout()
    return fig


def plot_breakdown(parts: dict[str, dict], title: str = "", ax=None):
    """Stacked bars: one decode step of each variant, split by kernel class and communication
    (``explain.breakdown``); hidden communication is drawn beside the bar, hatched, since it costs no time.
    ``ax``: draw into this axes (a grid of breakdowns) instead of a new figure."""
    colors = BREAKDOWN
    fig, ax = plt.subplots(figsize=(7, 3.6)) if ax is None else (ax.figure, ax)
    names = list(parts)
    bottom = [0.0] * len(names)
    for key, color in colors.items():
        vals = [1e3 * max(0.0, parts[v][key]) for v in names]
        ax.bar(range(len(names)), vals, 0.6, bottom=bottom, color=color, label=key, edgecolor="black", lw=0.4)
        bottom = [b + x for b, x in zip(bottom, vals)]
    hidden = [1e3 * max(0.0, parts[v]["hidden communication"]) for v in names]
    ax.set_xticks(range(len(names)), names)
    ax.bar([i + 0.39 for i in range(len(names))], hidden, width=0.14, color=HIDDEN, hatch="//",
           edgecolor="black", lw=0.4, label="hidden communication (under compute)")
    ax.set_ylabel("ms per decode step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_sweep(grid: dict, batch: int = 1, variant: str = "ladder"):
    """Heat maps of the predicted speedup over standard: model size x TP degree, one panel per interconnect."""
    import math
    hws = list(dict.fromkeys(k[0] for k in grid))
    models = list(dict.fromkeys(k[1] for k in grid))
    tps = sorted({k[2] for k in grid})
    fig, axes = plt.subplots(1, len(hws), figsize=(4.2 * len(hws) + 1.4, 3.6), squeeze=False, sharey=True)
    for n, (ax, h) in enumerate(zip(axes[0], hws)):
        data = [[grid[h, m, t] if grid[h, m, t] else math.nan for t in tps] for m in models]
        im = ax.imshow(data, cmap="viridis", vmin=1.0, vmax=2.0, aspect="auto")
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                if v == v:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 1.6 else "black",
                            fontsize=8)
        ax.set_xticks(range(len(tps)), [f"TP {t}" for t in tps])
        if n == 0:
            ax.set_yticks(range(len(models)), models)
        ax.tick_params(axis="y", labelleft=n == 0)
        ax.set_title(h, fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label=f"{variant} speedup (tokens/s)")
    fig.suptitle(f"{variant} vs standard, batch {batch} (TP 16 spans 2 nodes; blank: TP cannot shard "
                 f"that model)", fontsize=9)
    return fig


def plot_prediction(cfg, hw: Hardware, tp: int, batch: int, ax=None):
    """Bars of predicted speedup over standard (tokens/s), with the decode communication share in the title."""
    pred = predict(cfg, hw, tp, batch)
    own = ax is None
    ax = ax or plt.subplots(figsize=(6.4, 3.2))[1]
    names = list(pred)
    ax.bar(names, [pred[v].speedup_vs_standard - 1 for v in names], bottom=1.0,
           color=[VARIANT_COLORS[v] for v in names], edgecolor="black")
    ax.axhline(1.0, color="black", lw=0.8)
    for i, v in enumerate(names):
        ax.text(i, pred[v].speedup_vs_standard + 0.01, f"{pred[v].speedup_vs_standard:.2f}x", ha="center",
                fontsize=9)
    share = 1 - pred[CEILING].decode_s / pred[BASELINE].decode_s
    ax.set_ylim(0.8, max(1.2, 1.1 * max(p.speedup_vs_standard for p in pred.values())))
    ax.set_ylabel("speedup over standard\n(bars from 1.0: the gain)")
    ax.set_title(f"{cfg.name}, TP={tp}, batch {batch}, {hw.name}:\nskipping every all-reduce "
                 f"saves {100 * share:.0f}% of a standard decode step", fontsize=9)
    if own:
        ax.figure.tight_layout()
    return ax.figure


def modelled_ms(bench, cfg, hw: Hardware) -> dict[str, float]:
    """{variant: the calibrated model's ms per decoded token} for the benchmark's shape (mid-run context)."""
    return {r.variant: 1e3 * forward_time(r.variant, Deployment(cfg, hw, bench.tp, bench.batch), 1, bench.context + 8)
            for r in bench.rows}


def model_vs_measured(bench, cfg, hw: Hardware) -> str:
    """A table: measured median and p10-p90, the model, the model's miss in % of the median, and whether the
    model lies inside the measured p10-p90 range."""
    model = modelled_ms(bench, cfg, hw)
    lines = [f"  {'variant':12s} {'measured':>9s} {'p10-p90':>13s} {'model':>7s} {'miss':>6s}  inside p10-p90"]
    for r in bench.rows:
        m = model[r.variant]
        lines.append(f"  {r.variant:12s} {r.median_ms:9.2f} {r.p10_ms:6.2f}-{r.p90_ms:<6.2f} {m:7.2f} "
                     f"{100 * (m / r.median_ms - 1):+5.0f}%  {'yes' if r.p10_ms <= m <= r.p90_ms else 'no'}")
    return "\n".join(lines)


def plot_model_vs_measured(bench, cfg, hw: Hardware):
    """Measured decode ms/token (bars, p10-p90 whiskers) with the calibrated model's prediction (black marks)."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = [r.variant for r in bench.rows]
    ax.bar(names, [r.median_ms for r in bench.rows], color=[VARIANT_COLORS[v] for v in names], edgecolor="black",
           yerr=[[r.median_ms - r.p10_ms for r in bench.rows], [r.p90_ms - r.median_ms for r in bench.rows]],
           capsize=4, label="measured")
    model = list(modelled_ms(bench, cfg, hw).values())
    ax.scatter(names, model, marker="D", s=40, color="black", label="calibrated model", zorder=3)
    ax.set_ylabel("ms per decoded token")
    ax.set_title(f"this machine: {cfg.name}, TP={bench.tp} ({bench.backend}), measured vs calibrated model",
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_gpu_measurements(rows: list[dict], comparison: list[dict], hw: Hardware):
    """Left: every one-token projection timed on a GPU (``gpu_terms.projection_sweep`` rows) against its bytes,
    with the model's line ``kernel_us + bytes / (peak * mem_eff)``. Right: this package's compiled decode step per
    layer (``gpu_preset.compiled_step_comparison``) next to the model's layer for gpt-fast's kernels."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.2))
    colors = {"llama-3-8b": "#55A868", "llama-3-70b": "#4C72B0"}
    for name, color in colors.items():
        pts = [(2 * r["out"] * r["in"] / 1e6, r["us"]) for r in rows if r["tokens"] == 1 and r["model"] == name]
        a.scatter(*zip(*pts), s=18, color=color, label=f"{name} shards, TP 1-8")
    xs = [10 ** (k / 10) for k in range(0, 36)]
    a.plot(xs, [hw.eff.kernel_us + x * 1e12 / (hw.mem_gbps * 1e9 * hw.eff.mem_eff) for x in xs], color="black",
           lw=1, label=f"model: {hw.eff.kernel_us:.2f} us + bytes / {hw.eff.mem_eff:.3f} of peak")
    a.set(xscale="log", yscale="log", xlabel="weight shard (MB)", ylabel="one-token GEMV (us)",
          title="Projections in a CUDA graph")
    a.legend(frameon=False, fontsize=8)
    labels = [f"TP {c['tp']}\nbatch {c['batch']}" for c in comparison]
    x = range(len(comparison))
    b.bar([i - 0.2 for i in x], [c["layer_us"] for c in comparison], 0.4, color="#8C8C8C",
          label="this package, compiled (measured)")
    b.bar([i + 0.2 for i in x], [c["model_layer_us"] for c in comparison], 0.4, color="#4C72B0",
          label="model (gpt-fast's kernels)")
    b.set_xticks(list(x), labels, fontsize=8)
    b.set(ylabel="us per layer (70B shard, no all-reduce)", title="A decode step, per layer")
    b.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
