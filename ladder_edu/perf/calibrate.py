"""Fit the performance model's constants to the Ladder paper's Llama-3-70B table, and validate on held-out cells.

Data: tokens/s of Llama-3-70B, prompt 1024, 512 new tokens, fp16, gpt-fast with CUDA graphs, 8x H100 SXM, with
NVLink and with NCCL_P2P_DISABLE=1 ("no NVLink"); TP 2/4/8 x batch 1/4/16/64 (papers.md 1.8(f), from the authors'
``tools/plot-70b.py``). The split is fixed in advance: the constants are fitted on batch 1 and 16, and every batch 4
and 64 cell is held out. Fitted (10 constants, shared by all fitted cells): mem_eff, flop_eff, module and step
overhead (one H100), and per-hop latency, link efficiency and overlap for each of the two interconnects. The loss
is the squared log error of tokens/s plus that of the speedups over standard, on the fit cells.
"""
from __future__ import annotations

import math

from ..models.config import PRESETS
from .perfmodel import HARDWARE, Hardware, predict

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
FIT_BATCHES, HELD_OUT_BATCHES = (1, 16), (4, 64)
PARAMS = ("mem_eff", "flop_eff", "module_overhead_us", "step_overhead_us", "nvl_latency_us", "nvl_eff",
          "nvl_overlap", "p2p_latency_us", "p2p_eff", "p2p_overlap")


def cells(batches):
    """[(interconnect, batch, tp, variant, tokens/s)] of the paper's table for these batch sizes."""
    return [(hw, b, tp, v, row[i]) for (hw, b), variants in PAPER_70B.items() if b in batches
            for v, row in variants.items() for i, tp in enumerate(TP) if row[i] is not None]


def _squash(x, kind):          # unconstrained -> valid range
    return 1 / (1 + math.exp(-x)) if kind == "unit" else math.exp(x)


def hardware_from(theta) -> dict[str, Hardware]:
    p = dict(zip(PARAMS, theta))
    common = dict(mem_eff=p["mem_eff"], flop_eff=p["flop_eff"], module_overhead_us=p["module_overhead_us"],
                  step_overhead_us=p["step_overhead_us"])
    return {k: HARDWARE[k].with_(link_latency_us=p[f"{short}_latency_us"], link_eff=p[f"{short}_eff"],
                                 overlap=p[f"{short}_overlap"], **common)
            for k, short in (("h100-nvlink", "nvl"), ("h100-no-p2p", "p2p"))}


KINDS = ("unit", "unit", "pos", "pos", "pos", "unit", "unit", "pos", "unit", "unit")


def _theta(x):
    return [_squash(v, k) for v, k in zip(x, KINDS)]


def loss(theta, data) -> float:
    """Mean squared log error of predicted vs measured tokens/s, plus the same for the speedups over standard
    (the quantity the model is for), both over the fit cells only."""
    hws, cfg = hardware_from(theta), PRESETS["llama-3-70b"]
    logs = {}
    for hw, b, tp, v, tps in data:
        logs[hw, b, tp, v] = (math.log(predict(cfg, hws[hw], tp, b, variants=(v,))[v].tokens_per_s), math.log(tps))
    absolute = sum((m - t) ** 2 for m, t in logs.values()) / len(logs)
    ratios = [((m - logs[k[:3] + ("standard",)][0]) - (t - logs[k[:3] + ("standard",)][1])) ** 2
              for k, (m, t) in logs.items() if k[3] != "standard"]
    return absolute + sum(ratios) / len(ratios)


def nelder_mead(f, x0, step=0.5, iters=600, tol=1e-10):
    """Minimise f from x0 (a small, standard Nelder-Mead; enough for 8 smooth-ish parameters)."""
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


def fit(restarts: int = 3) -> tuple[dict[str, float], float]:
    """Fit the 10 constants on the fit cells; returns ({name: value}, training loss)."""
    data = cells(FIT_BATCHES)
    x = [1.4, 0.4, math.log(20.0), math.log(50.0), math.log(5.0), 0.5, 2.0, math.log(20.0), 0.0, 2.0]  # a start
    best = (x, float("inf"))
    for _ in range(restarts):
        x, v = nelder_mead(lambda z: loss(_theta(z), data), best[0])
        best = (x, v) if v < best[1] else best
    return dict(zip(PARAMS, _theta(best[0]))), best[1]


def validate(params: dict[str, float]) -> dict:
    """Per-cell tokens/s error and speedup errors on fitted and held-out cells."""
    hws, cfg = hardware_from([params[p] for p in PARAMS]), PRESETS["llama-3-70b"]
    rows = []
    for (hw, b), variants in PAPER_70B.items():
        for i, tp in enumerate(TP):
            if variants["standard"][i] is None:
                continue
            pred = predict(cfg, hws[hw], tp, b, variants=tuple(variants))
            for v, row in variants.items():
                rows.append({"interconnect": hw, "batch": b, "tp": tp, "variant": v,
                             "held_out": b in HELD_OUT_BATCHES, "paper_tokens_per_s": row[i],
                             "model_tokens_per_s": pred[v].tokens_per_s,
                             "paper_speedup": row[i] / variants["standard"][i],
                             "model_speedup": pred[v].speedup_vs_standard})
    def mae(sel):
        errs = [abs(r["model_speedup"] - r["paper_speedup"]) for r in rows if sel(r) and r["variant"] != "standard"]
        return sum(errs) / len(errs)
    return {"params": params, "rows": rows,
            "held_out_speedup_mae": mae(lambda r: r["held_out"]),
            "fit_speedup_mae": mae(lambda r: not r["held_out"]),
            "held_out_tokens_mape": sum(abs(r["model_tokens_per_s"] / r["paper_tokens_per_s"] - 1)
                                        for r in rows if r["held_out"]) / sum(r["held_out"] for r in rows)}


def measure_machine_worker(dim: int = 512, hidden: int = 1408, iters: int = 20) -> dict:
    """Runs on every rank at once (so ranks share memory bandwidth as in a real run); micro-benchmarks only.

    memory: matrix-vector products over 16 distinct [hidden, dim] weights (more than the caches hold), bytes/s;
    flops: a [256, dim] x [dim, hidden] matrix product; all-reduce: 2 KiB and 4 MiB messages (latency, bandwidth);
    module overhead: one decode step of a 1-layer, dim-64 model (its bytes are negligible) / 2 modules;
    overlap: the overlap probe (probe.py) with a burst of the size of one module.
    """
    import statistics
    import time

    import torch
    import torch.distributed as dist

    from ..models.build import init_weights
    from ..models.model import Transformer
    from ..tp.parallel import TPGroup
    from ..profiling.probe import probe_worker

    def timed(fn, n=iters):
        ts = []
        for _ in range(n):
            dist.barrier()
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        t = torch.tensor([statistics.median(ts)], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

    ws, x = [torch.randn(hidden, dim) for _ in range(16)], torch.randn(1, dim)
    t_mem = timed(lambda: [x @ w.T for w in ws])
    a, b = torch.randn(256, dim), torch.randn(hidden, dim)
    t_flop = timed(lambda: a @ b.T)
    small, large = torch.randn(dim), torch.randn(1 << 20)
    t_small, t_large = timed(lambda: dist.all_reduce(small)), timed(lambda: dist.all_reduce(large))
    n = dist.get_world_size()
    cfg = PRESETS["tiny"].replace(n_layers=1, n_heads=n, n_kv_heads=n, dim=16 * n, ffn_dim=16 * n)
    tiny = Transformer.from_full_state_dict(cfg, init_weights(cfg), TPGroup.from_dist())
    tiny.setup_cache(1, 32)
    tok = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        t_tiny = timed(lambda: tiny(tok, start=5))
    probe = probe_worker(sizes=(3,), iters=iters, modules=16, dim=dim, hidden=hidden)["rows"][0]
    hideable = 16 * min(probe["compute_ms"], probe["allreduce_ms"])
    overlap = min(1.0, max(0.0, (probe["blocking_ms"] - probe["lagged_ms"]) / hideable)) if hideable else 0.0
    msg = 4 * large.numel()
    return {"mem_gbps": 16 * hidden * dim * 4 / t_mem / 1e9, "tflops": 2 * 256 * dim * hidden / t_flop / 1e12,
            "link_latency_us": 1e6 * t_small / (n - 1),
            "link_gbps": 2 * (n - 1) / n * msg / max(t_large - t_small, 1e-9) / 1e9,
            "module_overhead_us": 1e6 * max(t_tiny - t_small * 2, 0.0) / 2, "overlap": overlap}


def calibrate_this_machine(world: int = 2, comm_priority: str = "auto", iters: int = 20) -> Hardware:
    """A Hardware preset for this machine from micro-benchmarks on ``world`` gloo ranks (float32, 4 bytes)."""
    from ..tp import launch
    m = launch.run(measure_machine_worker, world, comm_priority=comm_priority, iters=iters)[0]
    return Hardware("this-machine", m["mem_gbps"], m["tflops"], m["link_gbps"], link_latency_us=m["link_latency_us"],
                    mem_eff=1.0, flop_eff=1.0, link_eff=1.0, overlap=m["overlap"],
                    module_overhead_us=m["module_overhead_us"], step_overhead_us=0.0, bytes_per_param=4,
                    note="calibrated by micro-benchmarks on this machine (calibrate.measure_machine_worker)")
