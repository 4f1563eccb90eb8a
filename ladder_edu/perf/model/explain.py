"""Why the model predicts what it does: a decode step taken apart, and speedups over a grid.

``breakdown`` splits one decode step of each variant into the time of each kernel class (weight streaming,
attention over the KV cache, the fixed cost of small kernels, the LM head and sampling), the slow-down of compute
under overlapping all-reduces, and the communication that stays exposed or hides. ``sweep`` predicts ladder's (or
any variant's) speedup over standard for every model size x TP degree x interconnect.
"""
from __future__ import annotations

from ...models.config import BENCH_VARIANTS, PRESETS, ModelConfig
from ...models.registry import BASELINE, LADDER
from .allreduce import fixed_allreduce
from .hardware import HARDWARE, Hardware
from .deployment import Deployment
from .perfmodel import forward, predict, static_cache

SWEEP_MODELS = ("1b", "3b", "llama-3-8b", "34b", "llama-3-70b", "llama-3.1-405b")
SWEEP_TPS = (2, 4, 8, 16)
SWEEP_HARDWARE = ("h100-nvlink", "h100-no-p2p")


def breakdown(cfg: ModelConfig, hw: Hardware, tp: int, batch: int = 1, prompt: int = 1024, generate: int = 512,
              nodes: int = 1, variants=BENCH_VARIANTS, ladder_layers: int | None = None) -> dict[str, dict]:
    """{variant: {part: seconds per decode step, "total": seconds, "algorithm": NCCL's pick}}."""
    cfg.check_tp(tp)
    out = {}
    for v in variants:
        p = forward(v, Deployment(cfg, hw, tp, batch, nodes, ladder_layers), 1, static_cache(prompt, generate))
        out[v] = dict(p.parts, total=p.seconds, algorithm=p.algo)
    return out


def breakdown_table(parts: dict[str, dict]) -> str:
    names = [k for k in next(iter(parts.values())) if k not in ("total", "algorithm")]
    lines = [f"  {'per decode step (us)':26s}" + "".join(f"{v:>13s}" for v in parts)]
    for n in names + ["total"]:
        lines.append(f"  {n:26s}" + "".join(f"{1e6 * p[n]:13.1f}" for p in parts.values()))
    algo = next(iter(parts.values()))["algorithm"]
    lines.append(f"  all-reduce as NCCL would run it: {algo}; 'hidden communication' ran under compute")
    return "\n".join(lines)


def sweep(batch: int = 1, variant: str = "ladder", models=SWEEP_MODELS, tps=SWEEP_TPS, hardware=SWEEP_HARDWARE,
          prompt: int = 1024, generate: int = 512) -> dict[tuple[str, str, int], float | None]:
    """{(hardware, model, tp): speedup of ``variant`` over standard in tokens/s}; None where the TP degree cannot
    shard the model. TP above a node's GPU count spans nodes (8 GPUs per node)."""
    from .perfmodel import predict
    out = {}
    for h in hardware:
        hw = HARDWARE[h]
        for m in models:
            cfg = PRESETS[m]
            for tp in tps:
                nodes = max(1, tp // hw.gpus_per_node)
                if tp not in cfg.valid_tp_degrees() or (nodes > 1 and hw.inter is None):
                    out[h, m, tp] = None
                    continue
                p = predict(cfg, hw, tp, batch, prompt, generate, variants=("standard", variant), nodes=nodes)
                out[h, m, tp] = p[variant].speedup_vs_standard
    return out


def sweep_table(grid: dict, variant: str = "ladder", batch: int = 1) -> str:
    hws = sorted({k[0] for k in grid}, key=list(HARDWARE).index)
    models = list(dict.fromkeys(k[1] for k in grid))
    tps = sorted({k[2] for k in grid})
    lines = [f"{variant} speedup over standard (tokens/s), batch {batch}; TP 16 = 2 nodes of 8"]
    for h in hws:
        lines.append(f"  {h:16s}" + "".join(f"{'TP ' + str(t):>8s}" for t in tps))
        for m in models:
            cells = [grid[h, m, t] for t in tps]
            lines.append(f"    {m:14s}" + "".join(f"{c:8.2f}" if c else f"{'-':>8s}" for c in cells))
    return "\n".join(lines)


def ablation(cfg: ModelConfig, hw: Hardware, tp: int, batch: int = 1, variant: str = LADDER) -> list[dict]:
    """What each term contributes to ``variant``'s predicted speed-up over standard: the speed-up with every term,
    then with one term removed at a time (an all-reduce call's launch and rank skew, ``comm_us`` and ``skew_us``;
    the compute slow-down beside a large all-reduce, ``interference``; the kernels' fixed
    costs ``kernel_us``, ``skinny_us`` and ``small_us``; the all-reduce itself, an all-reduce of 0 s)."""
    def speedup(h: Hardware, allreduce="nccl") -> float:
        return predict(cfg, h, tp, batch, variants=(BASELINE, variant), allreduce=allreduce)[variant].speedup_vs_standard
    full = speedup(hw)
    out = [{"term": "all terms", "speedup": full, "change": 0.0}]
    for term, h, ar in (("call cost (comm_us, skew_us)", hw.with_(comm_us=0.0, skew_us=0.0), "nccl"),
                        ("interference", hw.with_(interference=0.0, shm_interference=0.0), "nccl"),
                        ("kernels' fixed costs", hw.with_(kernel_us=0.0, skinny_us=0.0, small_us=0.0), "nccl"),
                        ("the all-reduce itself", hw, fixed_allreduce(0.0))):
        s = speedup(h, ar)
        out.append({"term": f"without {term}", "speedup": s, "change": s - full})
    return out


def ablation_table(rows: list[dict], variant: str = LADDER) -> str:
    return "\n".join([f"  {variant} speed-up over standard, one term removed at a time:"] +
                     [f"    {r['term']:40s} {r['speedup']:6.3f}x  ({r['change']:+.3f})" for r in rows])
