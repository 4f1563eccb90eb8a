"""Pictures of the performance model: the paper's speedups next to the model's, predicted speedups, and the model
next to a measurement on this machine."""
from __future__ import annotations

import matplotlib.pyplot as plt

from ..perf.perfmodel import Hardware, forward_time, predict

VARIANT_COLORS = {"standard": "#8C8C8C", "parallel": "#8172B3", "ladder": "#4C72B0", "upper_bound": "#DDDDDD",
                  "kraken": "#55A868", "iso": "#C44E52"}
MARKERS = {"ladder": "o", "parallel": "s", "upper_bound": "^"}


def plot_validation(report: dict):
    """Model vs paper speedup for every cell of the 70B table; filled = fitted, open = held out."""
    fig, ax = plt.subplots(figsize=(5.6, 5))
    for r in report["rows"]:
        if r["variant"] == "standard":
            continue
        color = "#C44E52" if r["interconnect"] == "h100-no-p2p" else "#4C72B0"
        ax.scatter(r["paper_speedup"], r["model_speedup"], marker=MARKERS[r["variant"]], s=40,
                   facecolors="none" if r["held_out"] else color, edgecolors=color)
    lo, hi = 0.98, 1.65
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.fill_between([lo, hi], [lo - 0.05, hi - 0.05], [lo + 0.05, hi + 0.05], color="#EEEEEE")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("paper: speedup over standard (tokens/s)")
    ax.set_ylabel("model")
    ax.set_title(f"Llama-3-70B, 8x H100; blue NVLink, red no P2P; o ladder, s parallel, ^ upper bound\n"
                 f"filled: fitted (batch 1, 16), open: held out (batch 4, 64); "
                 f"held-out MAE {report['held_out_speedup_mae']:.3f}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_prediction(cfg, hw: Hardware, tp: int, batch: int, ax=None):
    """Bars of predicted speedup over standard (tokens/s), with the decode communication share in the title."""
    pred = predict(cfg, hw, tp, batch)
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    names = list(pred)
    ax.bar(names, [pred[v].speedup_vs_standard for v in names], color=[VARIANT_COLORS[v] for v in names],
           edgecolor="black")
    for i, v in enumerate(names):
        ax.text(i, pred[v].speedup_vs_standard + 0.01, f"{pred[v].speedup_vs_standard:.2f}x", ha="center",
                fontsize=9)
    share = 1 - pred["upper_bound"].decode_s / pred["standard"].decode_s
    ax.set_ylim(0.8, max(1.2, 1.1 * max(p.speedup_vs_standard for p in pred.values())))
    ax.set_ylabel("speedup over standard")
    ax.set_title(f"{cfg.name}, TP={tp}, batch {batch}, {hw.name}: communication {100 * share:.0f}% of a "
                 f"standard decode step", fontsize=9)
    return ax.figure


def plot_model_vs_measured(bench, cfg, hw: Hardware):
    """Measured decode ms/token (bars, p10-p90 whiskers) with the calibrated model's prediction (black marks)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    names = [r.variant for r in bench.rows]
    ax.bar(names, [r.median_ms for r in bench.rows], color=[VARIANT_COLORS[v] for v in names], edgecolor="black",
           yerr=[[r.median_ms - r.p10_ms for r in bench.rows], [r.p90_ms - r.median_ms for r in bench.rows]],
           capsize=4, label="measured")
    model = [1e3 * forward_time(v, cfg, hw, bench.tp, bench.batch, 1, bench.context + 8) for v in names]
    ax.scatter(names, model, marker="_", s=900, color="black", linewidths=3, label="model", zorder=3)
    ax.set_ylabel("ms per decoded token")
    ax.set_title(f"this machine: {cfg.name}, TP={bench.tp} ({bench.backend}), measured vs calibrated model",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
