"""Capture torch.profiler traces on every rank, and merge them into one trace with a row per rank.

``profile(cfg, variants, tp, phase, out_dir)`` writes, for each variant:

    out_dir/traces/<variant>/rank<r>.pt.trace.json   one Chrome/Perfetto trace per rank; the folder out_dir/traces
                                                     is also a TensorBoard log dir (torch-tb-profiler reads
                                                     *.pt.trace.json files, one run per variant)
    out_dir/<variant>.merged.trace.json              all ranks in one trace, a process row per rank

Every module region is named (``L3.attn``, ``L3.attn:all_reduce``, ``L3.attn:wait``; see ``comm.region``), and on
CUDA the same names are NVTX ranges, so ``nsys profile`` shows them too. Ranks meet at a barrier before every
profiled step, and each step is a ``ProfilerStep#`` of the profiler's schedule, after warm-up steps.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile

import torch
import torch.distributed as dist

from ..tp import launch
from ..models.config import ModelConfig
from ..models.spec import RunSpec
from ..models.build import init_weights
from ..models.variants import example_tokens, run_step, variant_model
from ..tp.parallel import TPGroup
from ..util.atomic import atomic_write

USDT_RE = re.compile(r"USDT:\S+ \S+ \S+ \S+\] profiler_(start|stop)")


@contextlib.contextmanager
def quiet_profiler_stderr():
    """torch 2.13's profiler writes "USDT: ... profiler_start/stop" lines to stderr (fd 2) at every start and stop,
    whatever the log level; drop exactly those and pass the rest of stderr through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = USDT_RE.sub("", tmp.read().decode(errors="replace"))
            rest = "".join(line for line in rest.splitlines(keepends=True) if line.strip())
            if rest:
                sys.stderr.write(rest)


def profile_worker(spec: RunSpec, out_dir: str) -> dict:
    """Runs on every rank: for each variant, warm up, then profile ``steps`` steps; returns the trace paths."""
    cfg, phase, steps, warmup, context, batch, seed = (spec.cfg, spec.phase, spec.steps, spec.warmup, spec.context,
                                                       spec.batch, spec.seed)
    variants = spec.variants
    tp = TPGroup.from_dist()
    device = launch.current_device()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    full = init_weights(cfg, seed)
    prompt = example_tokens(cfg, batch, context, seed).to(device)
    paths = {}
    for variant in variants:
        model = variant_model(cfg, variant, tp, full, seed, device=device)
        model.setup_cache(batch, context + warmup + steps + 2)
        path = os.path.join(out_dir, "traces", variant, f"rank{tp.rank}.pt.trace.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with torch.no_grad():
            model(prompt)                                            # fills the KV cache
            schedule = torch.profiler.schedule(wait=0, warmup=warmup, active=steps, repeat=1)
            with quiet_profiler_stderr(), torch.profiler.profile(
                    activities=activities, schedule=schedule,
                    on_trace_ready=lambda p, path=path: p.export_chrome_trace(path)) as prof:
                for i in range(warmup + steps):
                    dist.barrier(group=tp.group)
                    run_step(model, phase, variant, prompt, context, i)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    prof.step()
        paths[variant] = path
        del model
    dist.barrier(group=tp.group)                                     # every trace is on disk before rank 0 returns
    return paths


def merge_traces(paths: list[str], out_path: str) -> str:
    """One Chrome trace holding every rank's events, each rank its own process row named "rank r".

    Ranks on one machine share its clock, so their timestamps line up; across machines they only roughly do.
    """
    merged, meta = [], {}
    for rank, path in enumerate(paths):
        with open(path) as f:
            data = json.load(f)
        meta = meta or {k: v for k, v in data.items() if k not in ("traceEvents", "distributedInfo")}
        pid = f"rank {rank}"
        for e in data["traceEvents"]:
            if e.get("ph") == "M" and e.get("name") in ("process_name", "process_sort_index", "process_labels"):
                continue
            merged.append(dict(e, pid=pid))
        merged.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": pid}})
        merged.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": rank}})
    with atomic_write(out_path) as f:
        json.dump(dict(meta, traceEvents=merged), f)
    return out_path


def profile(cfg: ModelConfig, variants, tp: int, phase: str, out_dir: str, *,
            options: launch.LaunchOptions | None = None, **run) -> dict[str, list[str]]:
    """Profile each variant on ``tp`` ranks; returns {variant: [rank 0 trace, rank 1 trace, ...]} and writes the
    merged traces next to them (module docstring). ``run``: other :class:`~ladder_edu.models.spec.RunSpec` fields
    (steps, default 4; warmup, default 2; context, batch, seed)."""
    run = {"steps": 4, "warmup": 2, **run}
    spec = RunSpec(cfg, tp, tuple(variants), phase, **run)
    spec.check_fits(spec.context + spec.warmup + spec.steps + 2, f"context {spec.context} + {spec.warmup} warm-up "
                    f"+ {spec.steps} profiled steps + 2")
    os.makedirs(out_dir, exist_ok=True)
    per_rank = launch.run(profile_worker, tp, spec, os.path.abspath(out_dir),
                          options=options or launch.LaunchOptions(timeout_s=120.0))
    out = {v: [r[v] for r in per_rank] for v in spec.variants}
    for v, paths in out.items():
        merge_traces(paths, os.path.join(out_dir, f"{v}.merged.trace.json"))
    return out
