"""Pictures for the recovery story (notebook 05) and the from-scratch comparison."""
from __future__ import annotations

import matplotlib.pyplot as plt

RUN_COLORS = {"plain": "#4C72B0", "distill": "#55A868", "control": "#8C8C8C", "original": "#333333",
              "converted": "#C44E52"}


TARGET = 45 / 50
"""The recovery's probe target (docs/recovery.md): 45 of the 50 answers the original gives."""


def plot_ladder_sweep(ks: list[int], ppls: list[float], n_layers: int, speeds: list[float] | None = None):
    """Both sides of converting the top k layers, without any training: held-out perplexity (left) and, given
    ``speeds``, the predicted tokens/s speed-up the same k buys (right)."""
    fig, axes = plt.subplots(1, 2 if speeds else 1, figsize=(10 if speeds else 6, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(ks, ppls, "o-", color=RUN_COLORS["converted"])
    ax.set_xticks(ks)
    ax.set_title("What it costs: held-out perplexity (log scale)", fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel(f"top k of {n_layers} layers made ladder (no training)")
    ax.set_ylabel("perplexity")
    ax.grid(alpha=0.3)
    if speeds:
        b = axes[0, 1]
        b.plot(ks, speeds, "o-", color=RUN_COLORS["distill"])
        b.set_xticks(ks)
        b.set_title("What it buys: predicted speed-up (Llama-3-8B's shape, TP 8)", fontsize=9)
        b.set_xlabel(f"top k of {n_layers} layers made ladder")
        b.set_ylabel("tokens/s over standard")
        b.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_from_scratch(result: dict):
    """Validation perplexity of each architecture trained from scratch: one dot per seed, a dash at the mean (no
    bars: the axis does not start at zero, so a bar's length would mean nothing)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, (arch, r) in enumerate(result["archs"].items()):
        ax.plot([i - 0.2, i + 0.2], [r["mean_ppl"]] * 2, color="black", lw=2, label="mean" if i == 0 else None)
        ax.plot([i] * len(r["ppl"]), r["ppl"], "o", color="#777777", label="one seed" if i == 0 else None)
    ax.set_xticks(range(len(result["archs"])), list(result["archs"]))
    ax.set_xlim(-0.6, len(result["archs"]) - 0.4)
    ax.set_ylabel("validation perplexity per byte")
    ax.set_title("Trained from scratch: compare the gaps with the spread between seeds", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_frontier(result: dict, key: str = "llama-3-8b TP8 b1"):
    """Accuracy kept (probe score / the original's) against the predicted speed-up of the hybrid model, one point
    per k: converted (open) and recovered (filled)."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    base = result["original"]["probe_correct"]
    for p in result["points"]:
        x = p["predicted"][key]
        y = p["converted"]["probe_correct"] / base
        ax.scatter(x, y, s=45, facecolors="none", edgecolors="#C44E52")
        ax.annotate(f"k={p['k']}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        if "recovered" in p:
            yr = p["recovered"]["probe_correct"] / base
            ax.scatter(x, yr, s=45, color="#4C72B0")
            ax.plot([x, x], [y, yr], color="#BBBBBB", lw=0.8, zorder=0)
    ax.axhline(TARGET, color="black", lw=0.6, ls="--")
    ax.set_xlabel(f"predicted tokens/s speed-up over standard ({key.replace(' b', ', batch ')}, H100 NVLink)")
    ax.set_ylabel("probe answers kept (vs the original)")
    ax.set_title("top k layers ladder: open = converted, filled = recovered", fontsize=9)
    fig.tight_layout()
    return fig


def plot_layer_costs(result: dict):
    """The cost of converting each layer alone (KL to the original on text it wrote, log scale), the chosen
    layers filled and the top k outlined: which layers matter, and that the top k are not the cheapest."""
    scores = {int(j): float(v) for j, v in result["choice"]["scores"].items()}
    chosen, k = set(result["chosen"]), result["k"]
    n = max(scores) + 1
    top = set(range(n - k, n))
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    for j, v in sorted(scores.items()):
        ax.scatter(j, v, s=60, marker="s", color=RUN_COLORS["distill"] if j in chosen else "#DDDDDD",
                   edgecolors=RUN_COLORS["converted"] if j in top else "#999999", linewidths=1.4)
    ax.set_yscale("log")
    ax.set_xticks(range(0, n, 2))
    ax.set_xlabel("layer converted alone")
    ax.set_ylabel("KL to the original (nats/token)")
    ax.set_title(f"filled: the {len(chosen)} layers chosen greedily; red outline: the top {k}", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_chosen_frontier(result: dict, key: str = "llama-3-8b TP8 b1"):
    """Probe answers kept against the predicted speed-up, one column per k: the top k converted (red ring), the
    chosen k converted (green ring), the chosen k distilled (green dot)."""
    fig, ax = plt.subplots(figsize=(6.6, 4))
    base = result["original"]["probe_correct"]
    marks = (("top", dict(facecolors="none", edgecolors=RUN_COLORS["converted"]), "top k, converted"),
             ("chosen", dict(facecolors="none", edgecolors=RUN_COLORS["distill"]), "chosen k, converted"),
             ("chosen+distill", dict(color=RUN_COLORS["distill"]), "chosen k, distilled"))
    for name, style, label in marks:
        pts = [(p["predicted"][key], p["rows"][name]["probe_correct"] / base, p["k"]) for p in result["points"]
               if name in p.get("rows", {})]
        if pts:
            ax.scatter([x for x, _, _ in pts], [y for _, y, _ in pts], s=45, label=label, **style)
    for p in result["points"]:
        ax.annotate(f"k={p['k']}", (p["predicted"][key], -0.1), fontsize=7, ha="center")
    ax.axhline(TARGET, color="black", lw=0.6, ls="--", label=f"target: {round(50 * TARGET)} of 50 answers")
    ax.set_ylim(-0.14, 1.05)
    ax.set_xlabel(f"predicted tokens/s speed-up over standard ({key.replace(' b', ', batch ')}, H100 NVLink)")
    ax.set_ylabel("probe answers kept (vs the original)")
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 0.06))
    fig.tight_layout()
    return fig


def plot_repair(report: list[dict]):
    """Each converted module's relative output error to the original (|h - h_original|^2 / |h_original|^2), before
    and after its closed-form refit, on the calibration text, in the order the modules were repaired."""
    fig, ax = plt.subplots(figsize=(7.2, 3.2))
    names = [f"L{r['layer']}.{r['module']}" for r in report]
    x = range(len(report))
    ax.bar([i - 0.2 for i in x], [r["before"] for r in report], 0.4, color=RUN_COLORS["converted"],
           label="converted (stale input)")
    ax.bar([i + 0.2 for i in x], [r["after"] for r in report], 0.4, color=RUN_COLORS["distill"],
           label="output projection refit")
    ax.set_xticks(list(x), names, rotation=90, fontsize=7)
    ax.set_ylabel("relative output error")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


STAGE_COLORS = {"chosen+distill": "#55A868", "repaired+distill": "#C44E52", "chosen+match": "#8172B2",
                "chosen+match+distill": "#4C72B0", "chosen+progressive": "#CCB974", "chosen+distill:replies": "#64B5CD"}


def stage_history(histories: dict[str, dict], name: str) -> tuple[list[dict], list[dict]]:
    """(train, eval) records of one stage of ``convert``, stepped from the chosen model's start: a progressive
    stage's groups one after another, a stage that starts from another trained stage after that stage's steps."""
    from ..recovery.convert import TRAINED
    base = TRAINED[name].start if name in TRAINED else ""
    offset = len(stage_history(histories, base)[0]) if base in histories else 0
    h = histories[name]
    parts = [h] if "train" in h else [h[g] for g in sorted(h)]
    train, evals = [], []
    for part in parts:
        train += [{**e, "step": e["step"] + offset} for e in part["train"]]
        evals += [{**e, "step": e["step"] + offset} for e in part["eval"]]
        offset += len(part["train"])
    return train, evals


def plot_distill_runs(histories: dict[str, dict]):
    """Left: the distillation loss (KL to the original) per step of each run that distills (per-module matching
    has a loss of another kind and is left out). Right: the loss on held-out replies the original wrote, at each
    evaluation. Steps count from the chosen model: a stage that starts from another continues after its steps."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    for run in histories:
        train, evals = stage_history(histories, run)
        if run != "chosen+match":
            a.plot([e["step"] for e in train], [e["loss"] for e in train], color=STAGE_COLORS.get(run), lw=1,
                   label=run)
        b.plot([e["step"] for e in evals], [e["loss"] for e in evals], "o-", color=STAGE_COLORS.get(run),
               label=run, ms=3)
    a.set(title="KL to the original (training batches)", xlabel="step")
    b.set(title="loss on held-out replies of the original", xlabel="step")
    for ax in (a, b):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
