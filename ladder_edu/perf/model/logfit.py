"""The performance model against the Ladder authors' per-variant logs (``logs.py``): calibration, validation on
both sizes, cross-validation across sizes, TP degrees and batch sizes, and a prediction interval.

Two constants come from the logs (``hardware.FROM_LOGS``), each a physical term read off the variants the authors
timed side by side (decode per step, 8B at TP 2/4/8 and 70B at TP 4/8, batch 1-64, H100 NVLink, CUDA graphs):

* ``comm_us``: the median over cells of what one all-reduce adds to standard's step beyond NCCL's own model and its
  buffer copy (``logs.comm_us_samples``: standard - upper bound, per all-reduce);
* ``interference_floor``: the compute slow-down beside a decode-sized all-reduce, the value that makes the
  model's ladder decode speed-ups (standard's step over ladder's, what is modeled per step) match the logs' best in
  mean absolute error (a grid over its bounds). Read directly off ladder against the upper bound (``logs.floor_samples``) it is about 0.25 for both
  sizes; the fitted value is lower because the model's compute is slower than the logs' (``validate`` prints the
  no-communication step beside the logged one), so a module hides more of an all-reduce in the model.

``validate`` gives, per model size, the mean |error| of each variant's speed-up per decode step and in tokens/s, and
the error of the no-communication step and of the prefill (the prefill is too short: "What the model gets wrong" in
docs/performance-model.md); ``scaling_rows`` splits the no-communication step into the part that does not shrink
with TP and the part that does, from the logs and from the model; ``cross_validate`` refits on 70B and predicts 8B, refits on 8B and predicts 70B, and leaves out each TP
degree and each batch size; ``speedup_interval`` turns the folds' constants into a range for a predicted speed-up.
"""
from __future__ import annotations

import statistics

from ...models.config import get_config
from ...models.registry import BASELINE, CEILING, LADDER, PARALLEL
from .hardware import BOUNDS, HARDWARE, Hardware
from .logs import DECODE, LOGS, PREFILL, SYNC_DROP, TOKENS, cells, comm_us_samples
from .perfmodel import predict
from .syncdrop import predict_sync_drop

MODELS = ("llama-3-8b", "llama-3-70b")
COMPARED = (LADDER, PARALLEL, SYNC_DROP, CEILING)
GRID = tuple(round(0.025 * k, 3) for k in range(int(BOUNDS["interference_floor"][1] / 0.025) + 1))


def rows(hw: Hardware, data, compared=COMPARED) -> list[dict]:
    """Per logged cell (TP >= 2) and variant: the logs' and the model's decode speed-up over standard (standard's
    step / the variant's: what is modeled per step), the same in tokens/s (prompt 1024, 512 new tokens, as the
    logs ran), and the decode and prefill times of both (the parallel block built as the authors built it,
    sync-drop from ``syncdrop.py``), for the variants in ``compared``."""
    out = []
    for m, tp, b, row in data:
        if tp < 2:
            continue
        variants = tuple(v for v in (BASELINE,) + tuple(compared) if v in row and v != SYNC_DROP)
        pred = predict(get_config(m), hw, tp, b, variants=variants, parallel_block="authors")
        if SYNC_DROP in row and SYNC_DROP in compared:
            pred[SYNC_DROP] = predict_sync_drop(get_config(m), hw, tp, b)
        for v in [v for v in compared if v in pred]:
            out.append({"model": m, "tp": tp, "batch": b, "variant": v,
                        "log_speedup": row[BASELINE][DECODE] / row[v][DECODE],
                        "model_speedup": pred[BASELINE].decode_s / pred[v].decode_s,
                        "log_tokens_speedup": row[v][TOKENS] / row[BASELINE][TOKENS],
                        "model_tokens_speedup": pred[v].speedup_vs_standard,
                        "log_decode_ms": row[v][DECODE], "model_decode_ms": 1e3 * pred[v].decode_s,
                        "log_prefill_ms": row[v][PREFILL], "model_prefill_ms": 1e3 * pred[v].prefill_s})
    return out


def mae(rs, variant=LADDER, key: str = "speedup") -> float:
    """Mean |model - log| of ``variant``'s decode speed-up (``key="tokens_speedup"``: in tokens/s)."""
    picked = [r for r in rs if r["variant"] == variant]
    return statistics.mean(abs(r[f"model_{key}"] - r[f"log_{key}"]) for r in picked) if picked else float("nan")


def calibrate(data=None, base: Hardware | None = None) -> Hardware:
    """``base`` (default: the H100 NVLink preset) with ``comm_us`` and ``interference_floor`` calibrated on
    ``data`` (default: every logged cell), as the module docstring says."""
    base = base or HARDWARE["h100-nvlink"]
    data = data or cells()
    hw = base.with_(comm_us=round(statistics.median(comm_us_samples(base, data)), 3))
    laddered = [c for c in data if LADDER in c[3]]
    best = min(GRID, key=lambda s: mae(rows(hw.with_(interference_floor=s), laddered, (LADDER,))))
    return hw.with_(interference_floor=best)


def validate(hw: Hardware | None = None) -> dict:
    """Per model size: each variant's mean |speed-up error| and the no-communication step's mean relative error."""
    hw = hw or HARDWARE["h100-nvlink"]
    out = {}
    for m in MODELS:
        rs = rows(hw, cells(models=(m,)))
        ub = [r for r in rs if r["variant"] == CEILING]
        out[m] = {"speedup_mae": {v: mae(rs, v) for v in COMPARED},
                  "tokens_speedup_mae": {v: mae(rs, v, "tokens_speedup") for v in COMPARED},
                  "no_comm_step_error": statistics.mean(r["model_decode_ms"] / r["log_decode_ms"] - 1 for r in ub),
                  "prefill_error": statistics.mean(r["model_prefill_ms"] / r["log_prefill_ms"] - 1 for r in rs),
                  "cells": len(ub)}
    return out


def per_step_split(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(F, W) of the least-squares line t = F + W / TP through (TP, ms) points: F is the part of a step that does
    not shrink with TP (per-kernel and per-step costs), W the part that does (bytes and flops split over ranks)."""
    n = len(points)
    sx, sy = sum(1 / t for t, _ in points), sum(y for _, y in points)
    sxx, sxy = sum(1 / t ** 2 for t, _ in points), sum(y / t for t, y in points)
    w = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return (sy - w * sx) / n, w


def scaling_rows(hw: Hardware | None = None, batches=(1, 4, 64)):
    """For 8B (TP 1, 2, 4, 8): the no-communication step split into F + W / TP, from the logs and from the model."""
    hw = hw or HARDWARE["h100-nvlink"]
    cfg, out = get_config("llama-3-8b"), []
    for b in batches:
        logged = [(tp, LOGS["llama-3-8b"][tp, b][CEILING][DECODE]) for tp in (1, 2, 4, 8)]
        modeled = [(tp, 1e3 * predict(cfg, hw, tp, b, variants=(CEILING,))[CEILING].decode_s) for tp in (1, 2, 4, 8)]
        out.append(("llama-3-8b", b, per_step_split(logged), per_step_split(modeled)))
    return out


def folds() -> list[tuple[str, list, list]]:
    """(name, calibration cells, held-out cells): across sizes, then each TP degree and each batch size out."""
    out = [("fit 70B, predict 8B", cells(models=("llama-3-70b",)), cells(models=("llama-3-8b",))),
           ("fit 8B, predict 70B", cells(models=("llama-3-8b",)), cells(models=("llama-3-70b",)))]
    for tp in (2, 4, 8):
        out.append((f"leave TP {tp} out", [c for c in cells() if c[1] != tp], cells(tps=(tp,))))
    for b in (1, 4, 8, 16, 32, 64):
        out.append((f"leave batch {b} out", [c for c in cells() if c[2] != b], cells(batches=(b,))))
    return out


def cross_validate() -> list[dict]:
    """Per fold: the constants calibrated without the held-out cells and ladder's held-out mean |speed-up error|."""
    result = []
    for name, train, test in folds():
        hw = calibrate(train)
        result.append({"fold": name, "comm_us": hw.eff.comm_us, "interference_floor": hw.eff.interference_floor,
                       "held_out_ladder_mae": mae(rows(hw, test, (LADDER,)))})
    return result


def preset_is_calibrated(hw: Hardware | None = None) -> bool:
    """True when ``hw``'s log constants are what ``calibrate`` gives on every logged cell."""
    hw = hw or HARDWARE["h100-nvlink"]
    fresh = calibrate(base=hw)
    return (abs(fresh.eff.comm_us - hw.eff.comm_us) < 1e-3
            and abs(fresh.eff.interference_floor - hw.eff.interference_floor) < 1e-9)


# ``cross_validate()``'s constants per fold, kept so that ``predict`` can give an interval at once;
# tests/test_logfit.py recomputes them and checks they are these.
FOLD_CONSTANTS: list[tuple[str, float, float]] = [
    ('fit 70B, predict 8B', 5.328, 0.05),
    ('fit 8B, predict 70B', 4.13, 0.1),
    ('leave TP 2 out', 5.136, 0.125),
    ('leave TP 4 out', 5.232, 0.1),
    ('leave TP 8 out', 3.792, 0.125),
    ('leave batch 1 out', 4.61, 0.1),
    ('leave batch 4 out', 4.426, 0.1),
    ('leave batch 8 out', 4.15, 0.1),
    ('leave batch 16 out', 4.61, 0.1),
    ('leave batch 32 out', 4.426, 0.1),
    ('leave batch 64 out', 4.841, 0.125),
]


def speedup_interval(cfg, hw: Hardware, tp: int, batch: int, variant: str = LADDER, **kw) -> tuple[float, float]:
    """The range of ``variant``'s predicted speed-up over the folds' log constants (``FOLD_CONSTANTS``)."""
    values = [predict(cfg, hw.with_(comm_us=c, interference_floor=s), tp, batch, variants=(BASELINE, variant),
                      **kw)[variant].speedup_vs_standard for _, c, s in FOLD_CONSTANTS]
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def report(hw: Hardware | None = None, cv: list[dict] | None = None) -> str:
    """What ``predict --validate`` prints about the logs: per size, each variant's mean |speed-up error| and the
    no-communication step's error; then every cross-validation fold."""
    lines = ["Performance model vs the authors' logs (decode speed-up over standard per step; in tokens/s)"]
    for m, r in validate(hw).items():
        lines.append(f"  {m} ({r['cells']} cells): mean |error| per step " + ", ".join(
            f"{v} {e:.3f}" for v, e in r["speedup_mae"].items()) + "; in tokens/s " + ", ".join(
            f"{v} {e:.3f}" for v, e in r["tokens_speedup_mae"].items()))
        lines.append(f"    the step without communication {100 * r['no_comm_step_error']:+.1f}% and the prefill "
                     f"{100 * r['prefill_error']:+.1f}% against the logs")
    for m, b, (lf, lw), (mf, mw) in scaling_rows(hw):
        lines.append(f"    {m} batch {b}, no communication over TP 1-8 = F + W / TP: logs F {lf:.2f} ms, W {lw:.2f} ms;"
                     f" model F {mf:.2f} ms, W {mw:.2f} ms")
    for f in cv or []:
        lines.append(f"  {f['fold']:22s} comm_us {f['comm_us']:.2f}, interference_floor "
                     f"{f['interference_floor']:.3f}: held-out ladder mean |error| {f['held_out_ladder_mae']:.3f}")
    return "\n".join(lines)
