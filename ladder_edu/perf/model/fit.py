"""Fit the performance model's three remaining communication constants to the Ladder paper's Llama-3-70B table,
and cross-validate (the others are measured on a GPU or calibrated on the authors' logs, not fitted here).

Data: tokens/s of Llama-3-70B, prompt 1024, 512 new tokens, fp16, gpt-fast with CUDA graphs, 8x H100 SXM, with
NVLink and with NCCL_P2P_DISABLE=1 ("no NVLink"); TP 2/4/8 x batch 1/4/16/64 (Ladder Residual, arXiv 2501.06589,
inference results; from the authors'
``tools/plot-70b.py``). It is the only table fitted; every other size, TP degree and node count is predicted.

Fitted: the ``hardware.Efficiency`` fields neither one GPU nor the logs give (``PARAMS``: the compute slow-down
beside a large all-reduce with and without NVLink, a step through host memory; ``hardware.MEASURED`` and
``hardware.FROM_LOGS`` are held), each squashed into its physical range
``hardware.BOUNDS`` (a value stuck at a bound would say the model misses something). Loss: mean squared log error
of tokens/s, plus that of the speedups over standard (the quantity the model is for). ``cross_validate`` refits
without each batch size (leave-one-batch-out) and without each TP degree (leave-one-TP-out), reports the error on
the left-out cells, and the spread of each constant over the folds (its uncertainty).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, replace

from ...models.config import PRESETS
from ...models.registry import BASELINE, BENCH_VARIANTS
from .hardware import EFF_FIELDS, FROM_LOGS, HARDWARE, MEASURED, Efficiency, squash, unsquash
from .perfmodel import predict

TP = (2, 4, 8)
# (interconnect, batch) -> variant -> tokens/s at TP 2, 4, 8 (None: not run)
PAPER_70B = {
    ("h100-nvlink", 1): {"standard": (35.42, 59.41, 77.39), "ladder": (36.69, 67.51, 101.22),
                         "upper_bound": (38.24, 69.04, 110.59), "parallel": (36.67, 65.4, 94.22)},
    ("h100-nvlink", 4): {"standard": (120.58, 185.01, 258.56), "ladder": (126.09, 204.3, 331.45),
                         "upper_bound": (130.77, 213.73, 355.8), "parallel": (123.66, 201.62, 307.34)},
    ("h100-nvlink", 16): {"standard": (None, 585.23, 843.15), "ladder": (None, 635.98, 1003.52),
                          "upper_bound": (None, 665.07, 1109.65), "parallel": (None, 628.23, 973.74)},
    ("h100-nvlink", 64): {"standard": (None, 1249.67, 1940.99), "ladder": (None, 1358.65, 2242.1),
                          "upper_bound": (None, 1433.53, 2474.49), "parallel": (None, 1311.54, 2259.38)},
    ("h100-no-p2p", 1): {"standard": (33.77, 53.35, 51.66), "ladder": (36.94, 66.6, 82.59),
                         "parallel": (36.12, 61.93, 72.36)},
    ("h100-no-p2p", 4): {"standard": (106.6, 158.77, 173.62), "ladder": (125.55, 204.24, 271.82),
                         "parallel": (116.83, 183.53, 241.08)},
    ("h100-no-p2p", 16): {"standard": (None, 518.41, 546.68), "ladder": (None, 598.71, 738.56),
                          "parallel": (None, 583.48, 744.33)},
    ("h100-no-p2p", 64): {"standard": (None, 1199.62, 1454.42), "ladder": (None, 1313.44, 1864.05),
                          "parallel": (None, 1276.66, 1873.71)},
}
BATCHES = (1, 4, 16, 64)
COMPARED = tuple(v for v in BENCH_VARIANTS if v != BASELINE)
"""The variants whose speed-up over the baseline the paper's table gives."""
PARAMS = tuple(f for f in EFF_FIELDS if f not in MEASURED + FROM_LOGS)
"""Fitted: the communication constants neither one GPU (``MEASURED``) nor the authors' logs (``FROM_LOGS``, NVLink
only) give; those are held at their values."""


def cells(batches=BATCHES, tps=TP) -> list[tuple[str, int, int, str, float]]:
    """[(interconnect, batch, tp, variant, tokens/s)] of the paper's table for these batch sizes and TP degrees."""
    return [(hw, b, tp, v, row[i]) for (hw, b), variants in PAPER_70B.items() if b in batches
            for v, row in variants.items() for i, tp in enumerate(TP) if tp in tps and row[i] is not None]


def _to_eff(x, base: Efficiency) -> Efficiency:
    return replace(base, **{name: squash(name, z) for name, z in zip(PARAMS, x)})


def _from_eff(eff: Efficiency) -> list[float]:
    return [unsquash(name, getattr(eff, name)) for name in PARAMS]


def predictions(eff: Efficiency, data) -> dict[tuple, float]:
    """{(interconnect, batch, tp, variant): model tokens/s} for the cells in ``data``."""
    cfg, out = PRESETS["llama-3-70b"], {}
    groups: dict[tuple, set] = {}
    for hw, b, tp, v, _ in data:
        groups.setdefault((hw, b, tp), {BASELINE}).add(v)
    for (hw, b, tp), variants in groups.items():
        pred = predict(cfg, replace(HARDWARE[hw], eff=eff), tp, b, variants=tuple(sorted(variants)))
        out.update({(hw, b, tp, v): p.tokens_per_s for v, p in pred.items()})
    return out


def loss(eff: Efficiency, data) -> float:
    """Mean squared log error of the speedups over standard (what the model is for) plus a quarter of that of
    tokens/s (which anchors the absolute scale), over ``data``."""
    pred = predictions(eff, data)
    paper = {(hw, b, tp, v): t for hw, b, tp, v, t in data}
    logs = {k: math.log(pred[k]) - math.log(t) for k, t in paper.items()}
    ratios = [logs[k] - logs[k[:3] + (BASELINE,)] for k in paper if k[3] != BASELINE]
    return 0.25 * sum(e * e for e in logs.values()) / len(logs) + sum(r * r for r in ratios) / len(ratios)


def nelder_mead(f, x0, step=0.6, iters=400, tol=1e-9):
    """Minimise f from x0 (a small, standard Nelder-Mead)."""
    pts = [list(x0)] + [[x + (step if i == j else 0) for j, x in enumerate(x0)] for i in range(len(x0))]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = sorted(range(len(pts)), key=vals.__getitem__)
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        if vals[-1] - vals[0] < tol:
            break
        centre = [sum(p[j] for p in pts[:-1]) / (len(pts) - 1) for j in range(len(x0))]
        refl = [c + (c - w) for c, w in zip(centre, pts[-1])]
        fr = f(refl)
        if fr < vals[0]:
            exp = [c + 2 * (c - w) for c, w in zip(centre, pts[-1])]
            fe = f(exp)
            pts[-1], vals[-1] = (exp, fe) if fe < fr else (refl, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = refl, fr
        else:
            con = [c + 0.5 * (w - c) for c, w in zip(centre, pts[-1])]
            fc = f(con)
            if fc < vals[-1]:
                pts[-1], vals[-1] = con, fc
            else:
                pts = [pts[0]] + [[b + 0.5 * (p - b) for p, b in zip(q, pts[0])] for q in pts[1:]]
                vals = [vals[0]] + [f(p) for p in pts[1:]]
    best = min(range(len(pts)), key=vals.__getitem__)
    return pts[best], vals[best]


def fit(data=None, start: Efficiency | None = None, restarts: int = 2, iters: int = 400) -> tuple[Efficiency, float]:
    """Fit the efficiencies on ``data`` (default: the whole table); returns (Efficiency, training loss)."""
    data = data or cells()
    base = start or HARDWARE["h100-nvlink"].eff
    x, best = _from_eff(base), math.inf
    for _ in range(restarts):
        x, v = nelder_mead(lambda z: loss(_to_eff(z, base), data), x, iters=iters)
        best = min(best, v)
    return _to_eff(x, base), best


def speedup_errors(eff: Efficiency, data) -> list[dict]:
    """Per cell: paper and model speedup over standard (tokens/s), for every non-standard variant in ``data``."""
    pred = predictions(eff, data)
    paper = {(hw, b, tp, v): t for hw, b, tp, v, t in data}
    return [{"interconnect": k[0], "batch": k[1], "tp": k[2], "variant": k[3],
             "paper_speedup": t / paper[k[:3] + (BASELINE,)],
             "model_speedup": pred[k] / pred[k[:3] + (BASELINE,)],
             "paper_tokens_per_s": t, "model_tokens_per_s": pred[k]}
            for k, t in paper.items() if k[3] != BASELINE]


def mae(rows) -> float:
    return sum(abs(r["model_speedup"] - r["paper_speedup"]) for r in rows) / max(1, len(rows))


def cross_validate(iters: int = 250) -> dict:
    """Leave-one-batch-out and leave-one-TP-out: refit without the held-out cells, score them. Returns the
    held-out speedup MAE per fold and overall, and each constant's mean and spread over the folds."""
    folds = [("batch", b, cells(tuple(x for x in BATCHES if x != b)), cells((b,))) for b in BATCHES] + \
            [("tp", t, cells(BATCHES, tuple(x for x in TP if x != t)), cells(BATCHES, (t,))) for t in TP]
    out, fitted = {"folds": []}, []
    start = HARDWARE["h100-nvlink"].eff
    for kind, left_out, train, test in folds:
        eff, _ = fit(train, start, restarts=1, iters=iters)
        rows = speedup_errors(eff, test)
        fitted.append(eff)
        out["folds"].append({"left_out": f"{kind} {left_out}", "speedup_mae": mae(rows), "rows": rows,
                             "params": asdict(eff)})
    for kind in ("batch", "tp"):
        rows = [r for f in out["folds"] if f["left_out"].startswith(kind) for r in f["rows"]]
        out[f"leave_one_{kind}_out_mae"] = mae(rows)
        out[f"leave_one_{kind}_out_by_variant"] = {v: mae([r for r in rows if r["variant"] == v])
                                                  for v in COMPARED}
    out["params"] = {p: {"mean": statistics.mean(getattr(e, p) for e in fitted),
                         "spread": statistics.pstdev(getattr(e, p) for e in fitted)} for p in PARAMS}
    return out


def validate(eff: Efficiency | None = None) -> dict:
    """The whole table against the model with ``eff`` (default: the presets' fitted values): per-cell rows and
    the speedup MAE per variant."""
    eff = eff or HARDWARE["h100-nvlink"].eff
    rows = speedup_errors(eff, cells())
    return {"params": asdict(eff), "rows": rows, "speedup_mae": mae(rows),
            "by_variant": {v: mae([r for r in rows if r["variant"] == v]) for v in COMPARED},
            "tokens_mape": sum(abs(r["model_tokens_per_s"] / r["paper_tokens_per_s"] - 1) for r in rows) / len(rows)}
