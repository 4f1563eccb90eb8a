"""A torch.profiler trace of the emulated rank, with the modeled link as its communication lane.

``profile_emulated`` profiles rank 0's shard (``emulate.py``) exactly as ``profiling/trace.py`` profiles real
ranks: the same module regions (``L3.attn``, ``L3.attn:all_reduce``, ``L3.attn:wait``), warm-up steps, then
profiled ones. The link has no thread to trace, so its log (each all-reduce's issue, start and end,
``ModeledGroup.record_log``) is written into the trace as ``modeled:all_reduce`` events on a row of their own.
The two clocks meet where each all-reduce is issued: the k-th issue is at the end of the k-th ``:all_reduce``
region, and the median of those differences places the log on the trace's clock (within a few microseconds).

The result is read like any trace: ``profiling.overlap.analyze`` counts the modeled all-reduces as communication
and ``teach.timeline.draw_timeline`` draws them. What it shows is measured compute and MODELED communication:
the timeline of a machine whose link is the model and needs no CPU.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics

import torch

from ...models.config import ModelConfig
from ...models.registry import BASELINE
from ...models.variants import run_step
from ...profiling.overlap import START_RE, classify, load_trace
from ...profiling.trace import quiet_profiler_stderr
from ...util.atomic import atomic_write
from ..model import critical_path as cp
from .emulate import emulated_rank_model, variant_models

LINK_ROW = "modeled link (no CPU)"


def add_link_events(trace: dict, log: list[tuple[float, float, float]]) -> dict:
    """``trace`` with one ``modeled:all_reduce`` event per entry of ``log`` (perf_counter seconds), matched to the
    trace's all-reduce start regions from the last backwards (the profiler records only the active steps)."""
    events = trace["traceEvents"]
    starts = sorted((e for e in events if e.get("ph") == "X" and START_RE.match(e.get("name", ""))),
                    key=lambda e: e["ts"])
    if not starts or len(log) < len(starts):
        raise ValueError(f"cannot align the link's log ({len(log)} all-reduces) with the trace's "
                         f"{len(starts)} all-reduce start regions")
    log = log[-len(starts):]
    offset = statistics.median(e["ts"] + e["dur"] - 1e6 * issued for e, (issued, _, _) in zip(starts, log))
    pid = starts[0]["pid"]
    added = [{"ph": "X", "cat": "modeled", "name": "modeled:all_reduce", "pid": pid, "tid": LINK_ROW,
              "ts": 1e6 * start + offset, "dur": 1e6 * (end - start)} for _, start, end in log]
    return dict(trace, traceEvents=events + added)


def profile_emulated(cfg: ModelConfig, variants, tp: int, out_dir: str, link, *, steps: int = 4, warmup: int = 2,
                     context: int = 16, batch: int = 1, seed: int = 0) -> dict[str, list[str]]:
    """Profile each variant of rank 0's shard at TP ``tp`` on this machine's CPU with every all-reduce taking
    ``link(nbytes)`` seconds; returns {variant: [trace path]} (one rank), the traces under
    ``out_dir/emulated/<variant>.pt.trace.json``."""
    cfg.check_tp(tp)
    base, group = emulated_rank_model(cfg, BASELINE, None, tp, "cpu", "float32", seed, link)
    models = variant_models(base, cfg, variants, "float32", batch, context + warmup + steps + 1)
    prompt = torch.randint(0, cfg.vocab_size, (batch, context), generator=torch.Generator().manual_seed(seed))
    out = {}
    for variant in variants:
        path = os.path.join(out_dir, "emulated", f"{variant}.pt.trace.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        model = models[variant]
        with torch.no_grad():
            model(prompt)
            log = group.record_log()
            schedule = torch.profiler.schedule(wait=0, warmup=warmup, active=steps, repeat=1)
            with quiet_profiler_stderr(), torch.profiler.profile(
                    activities=[torch.profiler.ProfilerActivity.CPU], schedule=schedule,
                    on_trace_ready=lambda p, path=path: p.export_chrome_trace(path)) as prof:
                for i in range(warmup + steps):
                    run_step(model, "decode", variant, prompt, context, i)
                    prof.step()
            group.log = None
        if log:
            trace = add_link_events(load_trace(path), log)
            with atomic_write(path) as f:
                json.dump(trace, f)
        out[variant] = [path]
    return out


def layer_compute(trace_path: str) -> tuple[float, float, float]:
    """From a trace of steps without communication: the median seconds of one attention region and of one MLP
    region, and the median fraction of a step (``ProfilerStep#``) from its first module's start to its last
    module's end (the layer stack; the rest is the embedding before it and the norm and head after it)."""
    trace = load_trace(trace_path)
    parts = classify(trace)
    compute = parts["compute"]
    attn = [1e-6 * (i.end - i.start) for i in compute if i.kind == "attn"]
    mlp = [1e-6 * (i.end - i.start) for i in compute if i.kind == "mlp"]
    if not attn or not mlp:
        raise ValueError(f"{trace_path} has no attention and MLP regions: profile standard or upper_bound")
    fractions = []
    for e in trace["traceEvents"]:
        if e.get("ph") == "X" and e.get("name", "").startswith("ProfilerStep#"):
            inside = [i for i in compute if i.layer is not None and e["ts"] <= i.start and i.end <= e["ts"] + e["dur"]]
            if inside:
                fractions.append((max(i.end for i in inside) - min(i.start for i in inside)) / e["dur"])
    if not fractions:
        raise ValueError(f"{trace_path} has no profiled steps (ProfilerStep#) with module regions")
    return statistics.median(attn), statistics.median(mlp), statistics.median(fractions)


def bookkeeping_s(standard_s: float, upper_bound_s: float, comm_s: float, n_allreduces: int) -> float:
    """Seconds of compute-lane work each all-reduce adds besides its wait (starting it, the wait's own Python, the
    residual add of its result), from standard's step, which waits for every all-reduce on its critical path:
    (standard - upper bound) / all-reduces - the modeled all-reduce; never below 0."""
    return max(0.0, (standard_s - upper_bound_s) / n_allreduces - comm_s)


def predicted_steps(cfg: ModelConfig, upper_bound_s: float, trace_path: str, comm_s: float,
                    variants, overhead_s: float = 0.0) -> dict[str, float]:
    """Each variant's decode step as the critical path predicts it for this schedule, in seconds. Measured: the step
    without communication (``upper_bound_s``), and from a trace of it (``layer_compute``) the share of the layer
    stack and how it splits between attention and MLP. Per module c_attn and c_mlp are that share of
    ``upper_bound_s`` in the trace's proportion (everything between two modules, the residual add and the
    bookkeeping, counts with them: the link runs under it too); modeled: every all-reduce ``comm_s`` long. The
    step is then the part outside the stack plus the critical path of its modules (``critical_path.modules``), each
    communicating module's compute lengthened by ``overhead_s`` (``bookkeeping_s``)."""
    t_attn, t_mlp, stack = layer_compute(trace_path)
    scale = stack * upper_bound_s / (cfg.n_layers * (t_attn + t_mlp))
    t_attn, t_mlp = scale * t_attn, scale * t_mlp
    outside = (1 - stack) * upper_bound_s
    def mods(v):
        return [dataclasses.replace(m, compute=m.compute + overhead_s) if m.comm else m
                for m in cp.modules(v, cfg.n_layers, t_attn, t_mlp, comm_s)]
    return {v: outside + cp.finish(_lanes(mods(v))) for v in variants}


def _lanes(mods) -> cp.Lanes:
    lanes = cp.Lanes()
    for m in mods:
        cp.step(lanes, m, 0.0)
    return lanes
