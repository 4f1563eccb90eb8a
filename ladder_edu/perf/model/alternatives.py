"""What ladder still buys once the all-reduce itself is faster, and the back-of-envelope step a student writes first.

**Systems alternatives** keep the function and make the collective cheaper: a one-shot or two-shot intra-node
all-reduce (vLLM's and SGLang's custom all-reduce, PyTorch's symmetric memory), NVLink SHARP multimem (NVLS), NCCL's
symmetric-memory kernels. At batch 1 a decode all-reduce is latency-bound, so what matters is its latency L. With
``fixed_allreduce(L)`` as the deployment's all-reduce (``Deployment.allreduce``), ``ladder_gain_curve`` gives the
performance model's speed-up of each variant over standard as L varies: ladder hides up to one all-reduce per
module, except the part every call costs the compute stream (``comm_us``), so its gain shrinks as L does and is
gone once L is that part alone; a fast all-reduce and ladder compete for the same time.

**Back of the envelope** (``envelope``): a decode step is about

    weight bytes per rank / HBM bandwidth  +  kernels x per-kernel cost  +  all-reduces x their cost

and with ladder, per module, about max(compute, communication) instead of their sum (``critical_path``: the rule
n max(c, a) + min(c, a)). The fitted model (``perfmodel``) refines each term; this is what a student can compute by
hand from the data sheet first.
"""
from __future__ import annotations

from ...models.config import ModelConfig
from ...models.registry import BASELINE, LADDER, PARALLEL
from .allreduce import fixed_allreduce
from .hardware import Hardware
from .perfmodel import predict

PUBLISHED_US = {
    # small-message all-reduce latency on 8x H100 (bf16), field notes section 9; docs/references.md has the sources
    "NCCL through torch": 22.0,           # ~20-25 us flat to 256 KB; 21.8 us at 8 KB (symm-mem-recipes)
    "NVLS multimem": 11.0,                # 512 KiB, SM 9.0 (vLLM issue 42324)
    "one-shot (symmetric memory)": 10.8,  # Triton one-shot at 8 KB (symm-mem-recipes)
}


def ladder_gain_curve(cfg: ModelConfig, hw: Hardware, tp: int, latencies_us, batch: int = 1,
                      variants=(LADDER, PARALLEL)) -> dict[str, list[float]]:
    """{variant: [speed-up in tokens/s over standard at each latency]} from the performance model."""
    out = {v: [] for v in variants}
    for lat in latencies_us:
        pred = predict(cfg, hw, tp, batch, variants=(BASELINE, *variants), allreduce=fixed_allreduce(lat))
        for v in variants:
            out[v].append(pred[v].speedup_vs_standard)
    return out


def envelope(cfg: ModelConfig, hw: Hardware, tp: int, kernels_per_layer: int, kernel_us: float,
             allreduce_us: float) -> dict[str, float]:
    """The back-of-envelope decode step at batch 1, in seconds: each term, standard's sum, and ladder's
    n max(c, a) + min(c, a) over its n = 2 x layers modules (c: a module's share of the weights and kernels).
    Weights: every parameter but the input embedding table (a step reads only its tokens' rows of it)."""
    streamed = cfg.num_params() - (0 if cfg.tie_embeddings else cfg.vocab_size * cfg.dim)   # a step reads only
    weight_bytes = streamed * hw.bytes_per_param / tp                                         # its tokens' rows
    stream = weight_bytes / (1e9 * hw.mem_gbps)
    kernels = cfg.n_layers * kernels_per_layer * 1e-6 * kernel_us
    n = 2 * cfg.n_layers
    a = 1e-6 * allreduce_us
    c = (stream + kernels) / n
    return {"weights / HBM bandwidth": stream, "kernels x per-kernel cost": kernels, "all-reduces x cost": n * a,
            BASELINE: stream + kernels + n * a, LADDER: n * max(c, a) + min(c, a), "module compute": c,
            "all-reduce": a, "weight bytes per rank": weight_bytes}
