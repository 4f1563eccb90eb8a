"""This machine as a performance-model preset: micro-benchmarks on CPU ranks (gloo), float32."""
from __future__ import annotations

from ...models.config import PRESETS
from ..model.hardware import Efficiency, Hardware, Link
from ..model.kernels import kernel_counts
from .timing import slowest_rank_median


def measure_machine_worker(dim: int = 512, hidden: int = 1408, iters: int = 20) -> dict:
    """Runs on every rank at once (so ranks share memory bandwidth as in a real run); micro-benchmarks only.

    memory: matrix-vector products over 16 distinct [hidden, dim] weights (more than the caches hold), bytes/s;
    flops: a [256, dim] x [dim, hidden] matrix product; all-reduce: 2 KiB and 4 MiB messages (latency, bandwidth);
    kernel cost: one decode step of a 1-layer, dim-64 model (its bytes are negligible) per kernel it launches;
    interference: from the overlap probe (probe.py) with a burst of the size of one module: the share of an
    overlappable all-reduce that did not hide.
    """
    import torch
    import torch.distributed as dist

    from ...models.build import init_weights
    from ...models.model import Transformer
    from ...tp.parallel import TPGroup
    from ...profiling.probe import probe_worker

    def timed(fn, n=iters):
        return slowest_rank_median(fn, n)

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
    counts = kernel_counts("standard")
    per_step = sum(sum(c.values()) for c in counts.values())
    msg = 4 * large.numel()
    return {"mem_gbps": 16 * hidden * dim * 4 / t_mem / 1e9, "tflops": 2 * 256 * dim * hidden / t_flop / 1e12,
            "link_latency_us": 1e6 * t_small / (n - 1),
            "link_gbps": 2 * (n - 1) / n * msg / max(t_large - t_small, 1e-9) / 1e9,
            "kernel_us": 1e6 * max(t_tiny - t_small * 2, 0.0) / per_step, "interference": 1.0 - overlap}


def calibrate_this_machine(world: int = 2, comm_priority: str = "auto", iters: int = 20) -> Hardware:
    """A Hardware preset for this machine from micro-benchmarks on ``world`` gloo ranks (float32, 4 bytes)."""
    from ...tp import launch
    m = launch.run(measure_machine_worker, world, iters=iters,
                   options=launch.LaunchOptions(comm_priority=comm_priority))[0]
    eff = Efficiency(mem_eff=1.0, skinny_eff=1.0, flop_eff=1.0, kernel_us=m["kernel_us"], skinny_us=m["kernel_us"],
                     small_us=m["kernel_us"], kv_repeat=1.0, comm_us=0.0, skew_us=0.0,
                     interference=m["interference"])      # one measured cost per kernel; every K/V read from memory
    link = Link("measured", m["link_gbps"], 1.0, hop_us=m["link_latency_us"],
                source=f"gloo on {world} CPU ranks, measured now (ladder-edu predict --gpu this-machine)")
    return Hardware("this-machine", m["mem_gbps"], m["tflops"], link, None, gpus_per_node=world, eff=eff,
                    bytes_per_param=4,
                    note="calibrated by micro-benchmarks on this machine (calibrate.measure_machine_worker)")
