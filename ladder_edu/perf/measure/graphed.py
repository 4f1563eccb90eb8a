"""The emulated rank captured whole in a CUDA graph: what ladder hides on a 70B TP=8 rank, shown on one GPU.

Eager, the emulated rank (``emulate.py``) is bound by kernel launches: Python issues a 70B TP=8 shard's ~30 kernels
per layer more slowly than the GPU runs them, so the GPU idles between kernels, the modeled all-reduces hide in
that idle time whatever the architecture, and standard and ladder take the same time. Captured in one CUDA graph,
a decode step replays without launches, the GPU is busy with the shard's kernels back to back, and the only way to
be faster is to hide communication. The graph holds, in the order the model's layer loop issues them:

* the shard's kernels on the capture stream (the compute stream);
* for each all-reduce, an event recorded on the compute stream where the real path starts its collective (the
  fork), a spin kernel (``torch.cuda._sleep``) of the modeled duration on a second stream, standing for NCCL's
  kernel (all modeled all-reduces run one after another on that stream, as collectives on one communicator do),
  and an event the compute stream waits on exactly where the real path waits (``comm.Pending.wait``, the due rule:
  standard waits before the next module, ladder one module later).

A replay's time is then max(compute, communication) wherever the graph lets the two overlap, and their sum where
it does not: the critical path the performance model (``perf/model/critical_path.py``) computes, with this
package's compute measured and the communication modeled. Each variant's step (median and p10-p90 over interleaved
rounds) is reported next to the performance model's step for the same deployment and the HBM floor (weight bytes
read per step per rank over the GPU's HBM bandwidth). The model counts gpt-fast's fused kernels, the graph replays
this package's eager kernels (more of them), so the step times differ by the kernels' fixed costs; the speedups
over standard are what the two should agree on. The communication is MODELED, and every output says so.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ...models.config import BENCH_VARIANTS
from ...models.registry import BASELINE, require
from ...models.model import Transformer
from ...models.spec import RunSpec
from ...models.variants import run_step
from ..model.hardware import Hardware
from ..model.deployment import Deployment
from ..model.perfmodel import forward_time
from .bench import DecodeBenchmark, summarize
from .emulate import emulated_rank_model, variant_models
from .timing import Timer, interleaved


def streamed_bytes(model: Transformer) -> int:
    """Bytes of weights a decode step reads on this rank: every parameter but the embedding table (a step reads
    only the rows of its tokens), unless the LM head shares it."""
    skip = model.embed_tokens.weight
    tied = any(p is skip for n, p in model.named_parameters() if not n.startswith("embed_tokens"))
    return sum(p.numel() * p.element_size() for p in model.parameters() if tied or p is not skip)


def capture_decode_step(model: Transformer, variant: str, prompt: torch.Tensor, context: int,
                        warmup: int = 2) -> tuple[torch.cuda.CUDAGraph, float, list]:
    """One decode step at position ``context`` recorded as a CUDA graph (warmed up on a side stream first, as
    CUDA graph capture requires), the modeled all-reduce seconds the graph holds, and where its streams fork and
    join (``ModeledGroup.schedule``). Replaying it rewrites the same cache slot: every replay is the same step."""
    group = model.tp.group                       # an emulate.ModeledGroup
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            run_step(model, "decode", variant, prompt, context, 0)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    before = group.modeled_seconds
    schedule = group.record_schedule()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            run_step(model, "decode", variant, prompt, context, 0)
    finally:
        group.schedule = None                    # stop recording
    torch.cuda.synchronize()
    return graph, group.modeled_seconds - before, schedule


@dataclass
class GraphedRank:
    """The replayed steps, the model's steps for the same deployment, the HBM floor, what was modeled."""
    bench: DecodeBenchmark
    predicted_ms: dict[str, float]          # perfmodel.forward_time of each variant, same shapes and layers
    modeled_comm_ms: float                  # all-reduce time of one standard step (all of it on its critical path)
    hbm_floor_ms: float                     # streamed_bytes / the GPU preset's HBM bandwidth
    device: str
    hardware: str
    schedules: dict[str, list]              # per variant: ("start", k) / ("wait", k) as captured in its graph

    def predicted_speedup(self, variant: str) -> float:
        return self.predicted_ms[BASELINE] / self.predicted_ms[variant]

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        b = self.bench
        lines = [f"decode step of rank 0's 1/{b.tp} shard of {b.preset}, captured in a CUDA graph on {self.device}; "
                 f"all-reduces MODELED for {self.hardware} ({self.modeled_comm_ms:.3f} ms per standard step)",
                 f"  {'variant':<12} {'replayed ms':>11} {'p10-p90':>15} {'speedup':>8} {'model ms':>9} "
                 f"{'model speedup':>13}"]
        for r in b.rows:
            sp = f"{r.speedup_vs_standard:.3f}x" if r.speedup_vs_standard else "-"
            lines.append(f"  {r.variant:<12} {r.median_ms:11.3f} {r.p10_ms:7.3f}-{r.p90_ms:<7.3f} {sp:>8} "
                         f"{self.predicted_ms[r.variant]:9.3f} {self.predicted_speedup(r.variant):12.3f}x")
        lines.append(f"  HBM floor (weights read per step / HBM bandwidth): {self.hbm_floor_ms:.3f} ms; "
                     f"upper_bound skips every all-reduce: a speed ceiling, not a valid model.")
        return "\n".join(lines)


def graphed_benchmark(spec: RunSpec, hw: Hardware, device=None) -> GraphedRank:
    """Replay each variant's captured decode step ``spec.steps`` times per round, variants interleaved (alternate
    rounds reversed); a sample is one round's mean step time (``spec``: variants, default ``BENCH_VARIANTS``; TP,
    batch, context, rounds, warm-up, seed, dtype). Needs CUDA."""
    cfg, tp, batch, context, replays = spec.cfg, spec.tp, spec.batch, spec.context, spec.steps
    variants, dtype = list(spec.variants or BENCH_VARIANTS), spec.dtype
    if not torch.cuda.is_available():
        raise RuntimeError("the graph-captured emulated rank needs a CUDA GPU; on a CPU run the eager emulated "
                           "rank (ladder-edu bench --emulate-tp N without --graph)")
    require(variants, BENCH_VARIANTS, "the graph-captured rank (decode steps of a Megatron shard)")
    base, group = emulated_rank_model(cfg, BASELINE, hw, tp, device or "cuda", dtype, spec.seed)
    dev = base.embed_tokens.weight.device
    cache = context + 8
    graphs, comm, schedules = {}, {}, {}
    try:
        prompt = torch.randint(0, cfg.vocab_size, (batch, context + 1), device=dev)
        with torch.no_grad():
            for v, m in variant_models(base, cfg, variants, dtype, batch, cache).items():
                m(prompt[:, :context], start=0)                        # fill the cache: attention reads it
                graphs[v], comm[v], schedules[v] = capture_decode_step(m, v, prompt, context)

            def measure(v: str) -> list[float]:
                with Timer(dev) as timer:
                    for _ in range(replays):
                        graphs[v].replay()
                return [timer.seconds / replays]

            times = interleaved(variants, spec.rounds, spec.warmup, measure)
    finally:
        group.close()
    bench = summarize(cfg, tp, f"1 GPU, CUDA graph, all-reduces MODELED as {hw.name}", batch, context, times,
                      "n/a", "decode", compiled="CUDA graph of the eager step", rounds=spec.rounds)
    predicted = {v: 1e3 * forward_time(v, Deployment(cfg, hw, tp, batch), 1, cache) for v in variants}
    return GraphedRank(bench, predicted, 1e3 * comm.get(BASELINE, max(comm.values())), 1e3 * streamed_bytes(base) / (hw.mem_gbps * 1e9),
                       torch.cuda.get_device_name(dev), hw.name, schedules)
