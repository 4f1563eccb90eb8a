"""The step without communication, calibrated on the Ladder authors' logs: what gpt-fast's compiled decode step
and prefill cost on the H100s behind the paper's table, kernel by kernel.

The logs time a no-all-reduce variant (``upper_bound``) of Llama-3-8B at TP 1, 2, 4, 8 and Llama-3-70B at TP 4, 8,
batch 1-64 (``logs.py``). Across TP its decode step is F + W / TP: a part that does not shrink with TP (the fixed
cost of every kernel, the replicated LM head) and a part that does (the weight shards and the KV cache); across
batch it adds the KV cache and the switch from GEMVs (one token) to skinny GEMMs. ``perfmodel`` prices every kernel
as a fixed part plus a roofline part, so the constants of that sum are what the 34 cells determine
(``DECODE_PARAMS``):

* ``skinny_us``, ``small_us``: the fixed part of a skinny GEMM and of any kernel but a matmul;
* ``mem_eff``, ``skinny_eff``: the fraction of peak HBM bandwidth a GEMV and a skinny GEMM stream weights at;
* ``kv_repeat``: how much of gpt-fast's K/V repeat (each of a K/V head's query heads re-reads its cache) reaches
  HBM rather than L2, which the growth with batch measures.

and the prefill's cells give ``flop_eff``, the share of tensor peak gpt-fast's compiled prefill reaches.

The decode constants minimise the mean squared relative error of the step (Levenberg-Marquardt on each constant
squashed into its ``hardware.BOUNDS``); ``flop_eff`` then minimises the prefill's (a golden-section search). The
model's kernels are counted from this package's code (``kernels.py``), so these constants are gpt-fast's step
described by this package's kernel list. Measured on single kernels of an H100 (``calibrate-gpu``,
docs/gpu/h100/h100.json) a GEMV reaches less of the bandwidth (0.85 against 0.95, the bound, here) and a prefill
GEMM more of the FLOP/s (0.77 against 0.40: gpt-fast's prefill is far from its matmuls' peak).
"""
from __future__ import annotations

import math

from ...models.config import get_config
from ...models.registry import CEILING
from .deployment import Deployment
from .hardware import BOUNDS, HARDWARE, STEP_FROM_LOGS, Hardware, squash, unsquash
from .logs import DECODE, PREFILL, cells
from .perfmodel import forward_time, static_cache

DECODE_PARAMS = ("skinny_us", "small_us", "mem_eff", "skinny_eff", "kv_repeat")
PREFILL_PARAMS = ("flop_eff",)
STEP = STEP_FROM_LOGS
"""The constants of the step without communication calibrated here. A GEMV's fixed part, ``kernel_us``, is not: on
the logs it trades one for one with ``small_us`` (every layer has the same number of each), so it stays at its
single-kernel measurement on an H100 (3.42 us, ``calibrate-gpu``)."""
START = {"skinny_us": 3.417, "small_us": 2.46, "mem_eff": 0.852, "skinny_eff": 0.854, "kv_repeat": 1.0}
"""Where the calibration starts: an H100's single-kernel measurements (``calibrate-gpu``, docs/gpu/h100), with a
skinny GEMM's fixed part that of a GEMV and every K/V read from HBM."""
PROMPT, GENERATE = 1024, 512        # the logs' benchmark


def _step_ms(hw: Hardware, model: str, tp: int, batch: int, new_tokens: int) -> float:
    dep = Deployment(get_config(model), hw, tp, batch)
    return 1e3 * forward_time(CEILING, dep, new_tokens, static_cache(PROMPT, GENERATE))


def errors(hw: Hardware, data=None, phase: int = DECODE) -> list[float]:
    """Per logged cell (every TP, the no-communication variant): model / log - 1 of the decode step
    (``phase=DECODE``) or of the prefill (``PREFILL``)."""
    new = 1 if phase == DECODE else PROMPT
    return [_step_ms(hw, m, tp, b, new) / row[CEILING][phase] - 1 for m, tp, b, row in (data or cells())]


def levenberg_marquardt(residuals, x0: list[float], iters: int = 40, h: float = 1e-4) -> list[float]:
    """Minimise the sum of squared ``residuals(x)`` from ``x0`` (forward-difference Jacobian, damped Gauss-Newton
    steps; the damping grows when a step does not lower the sum)."""
    import numpy as np
    x, lam = np.array(x0, float), 1e-2
    r = np.array(residuals(x))
    for _ in range(iters):
        jac = np.stack([(np.array(residuals(x + h * e)) - r) / h for e in np.eye(len(x))], axis=1)
        a, g = jac.T @ jac, jac.T @ r
        while lam < 1e8:
            step = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), -g)
            r_new = np.array(residuals(x + step))
            if r_new @ r_new < r @ r:
                x, r, lam = x + step, r_new, max(lam / 3, 1e-6)
                break
            lam *= 4
        else:
            break
        if np.abs(step).max() < 1e-5:
            break
    return [float(v) for v in x]


def golden(f, lo: float, hi: float, tol: float = 1e-4) -> float:
    """The minimiser of a unimodal ``f`` on [lo, hi]."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    while b - a > tol:
        c, d = b - g * (b - a), a + g * (b - a)
        a, b = (a, d) if f(c) < f(d) else (c, b)
    return (a + b) / 2


def calibrate_step(data=None, base: Hardware | None = None) -> Hardware:
    """``base`` (default: the H100 NVLink preset) with ``STEP`` calibrated on ``data`` (default: every logged
    cell) as the module docstring says, from ``START`` whatever ``base`` holds; values rounded as the presets."""
    base, data = base or HARDWARE["h100-nvlink"], data or cells()
    with_ = lambda z: base.with_(**{n: squash(n, v) for n, v in zip(DECODE_PARAMS, z)})  # noqa: E731
    z = levenberg_marquardt(lambda z: errors(with_(z), data), [unsquash(n, START[n]) for n in DECODE_PARAMS])
    hw = base.with_(**{n: round(squash(n, v), 3) for n, v in zip(DECODE_PARAMS, z)})
    flop = golden(lambda f: sum(e * e for e in errors(hw.with_(flop_eff=f), data, PREFILL)), *BOUNDS["flop_eff"])
    return hw.with_(flop_eff=round(flop, 3))


def summary(hw: Hardware | None = None, data=None) -> dict:
    """Mean and largest |relative error| of the no-communication decode step and prefill against the logs."""
    hw = hw or HARDWARE["h100-nvlink"]
    out = {}
    for name, phase in (("decode", DECODE), ("prefill", PREFILL)):
        e = [abs(x) for x in errors(hw, data, phase)]
        out[name] = {"mean": sum(e) / len(e), "max": max(e)}
    return out
