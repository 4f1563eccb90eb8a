"""The performance model against the Ladder authors' per-variant logs (``logs.py``): calibration, validation on
both sizes, cross-validation across sizes, TP degrees and batch sizes, and a prediction interval.

The constants read off the logs (``hardware.FROM_LOGS``) are physical terms, each taken from the variants the
authors timed side by side (8B at TP 1/2/4/8 and 70B at TP 4/8, batch 1-64, H100 NVLink, CUDA graphs):

* the step without communication (``stepfit.py``: the fixed part of a skinny GEMM and of a small kernel, the
  bandwidth a GEMV and a skinny GEMM reach, how many K/V reads reach HBM, the prefill's share of tensor peak),
  from the no-all-reduce variant's decode steps and prefills;
* ``comm_us`` and ``skew_us``: what one all-reduce adds to standard's step beyond NCCL's own model and its buffer
  copy (``logs.comm_us_samples``: standard - no all-reduce, per all-reduce), as a call's cost on the compute stream
  plus a cost per rank beyond the first (the Theil-Sen line over TP - 1: the ranks arrive apart). The first is
  what ladder cannot hide: with the copy it is the 4-6 us per all-reduce ladder leaves on its step at every TP
  (``logs.unhidden_per_allreduce``), however long the collective.

``validate`` gives, per model size, the mean |error| of each variant's speed-up per decode step and in tokens/s, and
the error of the no-communication step and of the prefill; ``scaling_rows`` splits the no-communication step into
the part that does not shrink with TP and the part that does, from the logs and from the model; ``cross_validate``
refits every log constant on 70B and predicts 8B, refits on 8B and predicts 70B, and leaves out each TP degree and
each batch size; ``speedup_interval`` turns the folds' constants into a range for a predicted speed-up.
"""
from __future__ import annotations

import statistics

from ...models.config import get_config
from ...models.registry import BASELINE, CEILING, LADDER, PARALLEL
from .hardware import FROM_LOGS, HARDWARE, Hardware
from .alternatives import PUBLISHED_US
from .logs import DECODE, LOGS, PREFILL, SYNC_DROP, TOKENS, allreduce_parts, cells, comm_us_samples
from .perfmodel import predict
from .stepfit import STEP, calibrate_step, summary
from .syncdrop import predict_sync_drop

MODELS = ("llama-3-8b", "llama-3-70b")
COMPARED = (LADDER, PARALLEL, SYNC_DROP, CEILING)


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
    """``base`` (default: the H100 NVLink preset) with every log constant (``hardware.FROM_LOGS``) calibrated on
    ``data`` (default: every logged cell): the step without communication first (``stepfit``), then ``comm_us``
    and ``skew_us``, as the module docstring says. Ladder's cells are not used: they are what is predicted."""
    data = data or cells()
    base = calibrate_step(data, base)
    launch, skew = theil_sen([(tp - 1, us) for tp, us in comm_us_samples(base, data)])
    return base.with_(comm_us=round(launch, 3), skew_us=round(skew, 3))


def theil_sen(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the Theil-Sen line through (x, y) points: the median of the pairwise slopes, then the
    median intercept (robust to a few cells where NCCL's own model is off). One x only: (median y, 0)."""
    slopes = [(y2 - y1) / (x2 - x1) for x1, y1 in points for x2, y2 in points if x2 > x1]
    slope = max(0.0, statistics.median(slopes)) if slopes else 0.0
    return statistics.median(y - slope * x for x, y in points), slope


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
        step = summary(hw, test)
        result.append({"fold": name, "constants": {k: getattr(hw.eff, k) for k in FROM_LOGS},
                       "held_out_ladder_mae": mae(rows(hw, test, (LADDER,))),
                       "held_out_step_error": step["decode"]["mean"], "held_out_prefill_error": step["prefill"]["mean"]})
    return result


def preset_is_calibrated(hw: Hardware | None = None) -> bool:
    """True when ``hw``'s log constants are what ``calibrate`` gives on every logged cell."""
    hw = hw or HARDWARE["h100-nvlink"]
    fresh = calibrate(base=hw)
    return all(abs(getattr(fresh.eff, k) - getattr(hw.eff, k)) < 1e-3 for k in FROM_LOGS)


# ``cross_validate()``'s constants per fold, kept so that ``predict`` can give an interval at once;
# tests/test_logfit.py recomputes them and checks they are these.
FOLD_CONSTANTS: list[tuple[str, dict[str, float]]] = [
    ('fit 70B, predict 8B', {'skinny_us': 5.711, 'small_us': 1.985, 'mem_eff': 0.95, 'skinny_eff': 0.816,
                            'kv_repeat': 0.825, 'flop_eff': 0.435, 'comm_us': 2.514, 'skew_us': 0.617}),
    ('fit 8B, predict 70B', {'skinny_us': 7.44, 'small_us': 2.307, 'mem_eff': 0.95, 'skinny_eff': 0.888,
                            'kv_repeat': 0.703, 'flop_eff': 0.372, 'comm_us': 3.134, 'skew_us': 0.498}),
    ('leave TP 2 out', {'skinny_us': 7.201, 'small_us': 2.265, 'mem_eff': 0.95, 'skinny_eff': 0.869,
                       'kv_repeat': 0.727, 'flop_eff': 0.402, 'comm_us': 2.779, 'skew_us': 0.524}),
    ('leave TP 4 out', {'skinny_us': 7.71, 'small_us': 2.229, 'mem_eff': 0.95, 'skinny_eff': 0.892,
                       'kv_repeat': 0.713, 'flop_eff': 0.392, 'comm_us': 3.273, 'skew_us': 0.502}),
    ('leave TP 8 out', {'skinny_us': 6.895, 'small_us': 2.29, 'mem_eff': 0.95, 'skinny_eff': 0.847,
                       'kv_repeat': 0.687, 'flop_eff': 0.38, 'comm_us': 3.396, 'skew_us': 0.302}),
    ('leave batch 1 out', {'skinny_us': 9.858, 'small_us': 1.227, 'mem_eff': 0.95, 'skinny_eff': 0.867,
                          'kv_repeat': 0.717, 'flop_eff': 0.399, 'comm_us': 4.532, 'skew_us': 0.471}),
    ('leave batch 4 out', {'skinny_us': 7.672, 'small_us': 2.253, 'mem_eff': 0.95, 'skinny_eff': 0.861,
                          'kv_repeat': 0.692, 'flop_eff': 0.394, 'comm_us': 3.095, 'skew_us': 0.454}),
    ('leave batch 8 out', {'skinny_us': 7.268, 'small_us': 2.248, 'mem_eff': 0.95, 'skinny_eff': 0.867,
                          'kv_repeat': 0.718, 'flop_eff': 0.393, 'comm_us': 2.835, 'skew_us': 0.452}),
    ('leave batch 16 out', {'skinny_us': 7.107, 'small_us': 2.249, 'mem_eff': 0.95, 'skinny_eff': 0.865,
                           'kv_repeat': 0.718, 'flop_eff': 0.394, 'comm_us': 3.276, 'skew_us': 0.496}),
    ('leave batch 32 out', {'skinny_us': 7.155, 'small_us': 2.25, 'mem_eff': 0.95, 'skinny_eff': 0.866,
                           'kv_repeat': 0.713, 'flop_eff': 0.395, 'comm_us': 2.995, 'skew_us': 0.511}),
    ('leave batch 64 out', {'skinny_us': 7.15, 'small_us': 2.242, 'mem_eff': 0.95, 'skinny_eff': 0.872,
                           'kv_repeat': 0.755, 'flop_eff': 0.398, 'comm_us': 2.786, 'skew_us': 0.611}),
]


def speedup_interval(cfg, hw: Hardware, tp: int, batch: int, variant: str = LADDER, **kw) -> tuple[float, float]:
    """The range of ``variant``'s predicted speed-up over the folds' log constants (``FOLD_CONSTANTS``)."""
    values = [predict(cfg, hw.with_(**constants), tp, batch, variants=(BASELINE, variant), **kw)[variant]
              .speedup_vs_standard for _, constants in FOLD_CONSTANTS]
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def report(hw: Hardware | None = None, cv: list[dict] | None = None) -> str:
    """What ``predict --validate`` prints about the logs: the step without communication, per size each variant's
    mean |speed-up error|, the split of the step over TP; then every cross-validation fold."""
    hw = hw or HARDWARE["h100-nvlink"]
    step = summary(hw)
    lines = ["Performance model vs the authors' logs (decode speed-up over standard per step; in tokens/s)",
             "  the step without communication, calibrated on the logs: " + ", ".join(
                 f"{k} {getattr(hw.eff, k):g}" for k in STEP) + f"; mean |error| {100 * step['decode']['mean']:.1f}% "
             f"per decode step (largest {100 * step['decode']['max']:.1f}%), {100 * step['prefill']['mean']:.1f}% "
             f"per prefill (largest {100 * step['prefill']['max']:.1f}%)",
             f"  an all-reduce call beyond NCCL's model: comm_us {hw.eff.comm_us:g} us on the compute stream + skew_us "
             f"{hw.eff.skew_us:g} us x (TP - 1) on the communication lane; one all-reduce in standard's step, logs "
             f"against the model (NCCL's own model + call + skew + copy; NCCL through torch measured on 8 H100s: "
             f"{PUBLISHED_US['NCCL through torch']:g} us at 8 KB):"]
    for m, tp, b in (("llama-3-8b", 2, 1), ("llama-3-8b", 8, 1), ("llama-3-8b", 8, 64), ("llama-3-70b", 8, 1),
                     ("llama-3-70b", 8, 64)):
        p = allreduce_parts(hw, m, tp, b)
        lines.append(f"    {m} TP {tp} batch {b:2d}: logs {p['logs']:.1f} us; model {p['nccl']:.1f} + {p['call']:.1f} + "
                     f"{p['skew']:.1f} + {p['copy']:.1f} = {p['nccl'] + p['call'] + p['skew'] + p['copy']:.1f} us")
    for m, r in validate(hw).items():
        lines.append(f"  {m} ({r['cells']} cells): mean |error| per step " + ", ".join(
            f"{v} {e:.3f}" for v, e in r["speedup_mae"].items()) + "; in tokens/s " + ", ".join(
            f"{v} {e:.3f}" for v, e in r["tokens_speedup_mae"].items()))
        lines.append(f"    the step without communication {100 * r['no_comm_step_error']:+.1f}% and the prefill "
                     f"{100 * r['prefill_error']:+.1f}% against the logs on average")
    for m, b, (lf, lw), (mf, mw) in scaling_rows(hw):
        lines.append(f"    {m} batch {b}, no communication over TP 1-8 = F + W / TP: logs F {lf:.2f} ms, W {lw:.2f} ms;"
                     f" model F {mf:.2f} ms, W {mw:.2f} ms")
    for f in cv or []:
        c = f["constants"]
        lines.append(f"  {f['fold']:20s} held out: ladder mean |error| {f['held_out_ladder_mae']:.3f}, step "
                     f"{100 * f['held_out_step_error']:.1f}%, prefill {100 * f['held_out_prefill_error']:.1f}% "
                     f"(comm_us {c['comm_us']:.2f}, skew_us {c['skew_us']:.2f}, "
                     f"small_us {c['small_us']:.2f}, skinny_us {c['skinny_us']:.2f})")
    return "\n".join(lines)
