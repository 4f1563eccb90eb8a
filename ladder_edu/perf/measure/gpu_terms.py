"""Measure the performance model's compute terms on this device, shape by shape (``calibrate-gpu --detail DIR``).

Two measurements, both written as JSON so the model's constants can cite them:

* ``projection_sweep``: the time of every projection a decode or prefill step runs (gpt-fast's fused ``wqkv``,
  ``wo``, fused ``w1/w3`` = gate+up, ``w2`` = down, and the LM head), for the papers' model shapes sharded at each
  TP degree, for 1-64 tokens (decode) and 1024 (prefill). Each kernel reads a *different* weight, cycling through
  at least ``min_bytes`` of them, so nothing stays in the 50 MB L2 cache, as in a real step where every weight is
  read once. On a GPU the kernels are recorded once as a CUDA graph and replayed, as gpt-fast's
  ``reduce-overhead`` decode runs them (no CPU launch cost); a row holds microseconds per kernel, the bandwidth
  (weight + activation bytes / time) and the FLOP rate.
* ``compiled_steps``: one decode step of this package's own model, compiled as gpt-fast compiles it
  (``models.compiled.CompiledDecode``: ``torch.compile`` + CUDA graphs), for rank 0's shard of a paper model at a
  TP degree with NO communication (the paper's *upper bound* variant, so one device is enough), with a few layers.
  Two layer counts give the time per layer and the rest of the step (LM head, sampling-free logits, embedding).

On a CPU both run too (no graphs, wall-clock), which is how the tests check them; only GPU numbers are committed.
"""
from __future__ import annotations

import gc
import math
import os
import statistics
import time

import torch

from ...models.config import get_config, variant_config
from ...models.registry import CEILING
from ...models.model import Transformer
from ...tp.parallel import TPGroup
from ...util import atomic
from .timing import Timer, compile_and_time, default_device, random_fill


def projection_shapes(cfg, tp: int) -> dict[str, tuple[int, int]]:
    """{kind: (out, in)} of rank 0's weight shards at TP ``tp`` (Megatron: column-parallel wqkv and w1/w3,
    row-parallel wo and w2; the LM head is replicated, as in the paper's code)."""
    hd = cfg.head_dim
    return {"wqkv": ((cfg.n_heads + 2 * cfg.n_kv_heads) * hd // tp, cfg.dim), "wo": (cfg.dim, cfg.n_heads * hd // tp),
            "w13": (2 * cfg.ffn_dim // tp, cfg.dim), "w2": (cfg.dim, cfg.ffn_dim // tp),
            "lm_head": (cfg.vocab_size, cfg.dim)}


def time_kernels(fn, device: torch.device, reps: int = 10) -> float:
    """Seconds per call of ``fn``; on a GPU ``fn`` is recorded as a CUDA graph and replayed ``reps`` times."""
    fn()
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start) / reps
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize(device)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        graph.replay()
    b.record()
    torch.cuda.synchronize(device)
    return a.elapsed_time(b) / 1e3 / reps


def time_projection(out_f: int, in_f: int, tokens: int, device, dtype=torch.float16, min_bytes: int = 1 << 30,
                    max_copies: int = 512, reps: int = 10) -> dict:
    """Microseconds per ``x @ W^T`` for x [tokens, in], W [out, in], cycling over distinct weights."""
    size = torch.finfo(dtype).bits // 8                   # bytes per value
    wbytes = out_f * in_f * size
    copies = max(2, min(max_copies, math.ceil(min_bytes / wbytes)))
    ws = [torch.randn(out_f, in_f, device=device, dtype=dtype) * 0.02 for _ in range(copies)]
    x = torch.randn(tokens, in_f, device=device, dtype=dtype)
    outs = [torch.empty(tokens, out_f, device=device, dtype=dtype) for _ in range(2)]

    def run():
        for i, w in enumerate(ws):
            torch.mm(x, w.t(), out=outs[i % 2])
    sec = time_kernels(run, torch.device(device), reps) / copies
    nbytes = wbytes + tokens * (in_f + out_f) * size
    del ws
    return {"out": out_f, "in": in_f, "tokens": tokens, "copies": copies, "us": 1e6 * sec,
            "gbps": nbytes / sec / 1e9, "tflops": 2 * out_f * in_f * tokens / sec / 1e12}


def projection_sweep(presets=("llama-3-8b", "llama-3-70b"), tps=(1, 2, 4, 8), tokens=(1, 4, 16, 64, 1024),
                     device=None, dtype=torch.float16, min_bytes: int = 1 << 30, reps: int = 10,
                     deadline: float = math.inf) -> list[dict]:
    """One row per (model, TP, projection, tokens); shapes met twice are timed once. Stops at ``deadline``
    (a ``time.time()``) with the rows it has."""
    device = default_device(device)
    rows, seen = [], {}
    for name in presets:
        cfg = get_config(name)
        for tp in tps:
            if tp not in cfg.valid_tp_degrees():
                continue
            for kind, (o, i) in projection_shapes(cfg, tp).items():
                for t in tokens:
                    if time.time() > deadline:
                        return rows
                    if kind == "lm_head" and tp != tps[0]:
                        continue
                    key = (o, i, t)
                    if key not in seen:
                        seen[key] = time_projection(o, i, t, device, dtype, min_bytes, reps=reps)
                    rows.append({"model": name, "tp": tp, "kind": kind, **seen[key]})
    return rows


def small_kernel_us(device=None, n: int = 2000) -> float:
    """Microseconds of one tiny pointwise kernel (1024 floats, += 1) inside a CUDA graph of ``n`` of them."""
    device = default_device(device)
    small = torch.zeros(1024, device=device)

    def run():
        for _ in range(n):
            small.add_(1)
    return 1e6 * time_kernels(run, device, reps=5) / n


def shard_model(preset: str, tp: int, layers: int, device, dtype=torch.float16, seed: int = 0) -> Transformer:
    """Rank 0's shard of ``preset`` at TP ``tp`` with ``layers`` layers and no all-reduces (the upper bound
    variant: no process group is needed), weights ~ N(0, init_std) made on ``device``."""
    cfg = get_config(preset).replace(n_layers=layers, ladder_layers=0)
    cfg.check_tp(tp)
    model = Transformer(variant_config(cfg, CEILING), TPGroup(0, tp, None), dtype, torch.device(device))
    return random_fill(model, cfg.init_std, seed).eval()


def time_compiled_step(model: Transformer, batch: int, cache: int, steps: int = 30, prompt: int = 1024,
                       profile: bool = False) -> dict:
    """Compile ``model``'s prefill (``torch.compile``, static shapes, as gpt-fast's ``--compile_prefill``) and its
    decode step (``CompiledDecode``: CUDA graphs on a GPU) and time them. Decode is timed two ways: each step
    alone (``median_us``: CPU launch work included) and ``steps`` steps back to back with one synchronisation at
    the end (``pipelined_us``: the CPU runs ahead, as in gpt-fast's generation loop)."""
    from ...models.compiled import CompiledDecode, positions
    device = model.embed_tokens.weight.device
    model.setup_cache(batch, cache)
    t_pre = min(prompt, cache)
    ids = torch.randint(0, model.cfg.vocab_size, (batch, t_pre), device=device)
    prefill = torch.compile(model, fullgraph=True, dynamic=False)
    pre = []
    with torch.no_grad():
        for r in range(4):
            with Timer(device) as timer:
                prefill(ids, positions(0, t_pre, device))
            pre += [timer.seconds] if r else []
    tokens = torch.randint(0, model.cfg.vocab_size, (batch, 1), device=device)
    step = CompiledDecode(model)
    out = {"prefill_tokens": t_pre, "prefill_us": 1e6 * statistics.median(pre),
           **compile_and_time(lambda s: step(tokens, cache // 2 + s), device, steps)}
    if profile:
        try:
            out["kernels"] = profile_kernels(lambda: step(tokens, cache // 2), device)
        except Exception as e:                       # a profiler that cannot attach costs the list, not the run
            out["kernels_error"] = repr(e)
    return out


def profile_kernels(fn, device, reps: int = 5) -> list[dict]:
    """[{name, calls, us}] per call of ``fn``: the device kernels torch.profiler saw, longest first."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(reps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    rows = []
    for e in prof.key_averages():
        us = (e.device_time_total if device.type == "cuda" else e.self_cpu_time_total) / reps
        if us > 0 and (device.type != "cuda" or e.device_type.name == "CUDA"):
            rows.append({"name": e.key[:120], "calls": e.count / reps, "us": us})
    return sorted(rows, key=lambda r: -r["us"])


def step_sweep(configs, measure, head: dict, device: torch.device, deadline: float = math.inf,
               on_row=None) -> list[dict]:
    """[{**head, tp, batch, layers, **measure(tp, batch, layers)}] for each (tp, batch, layers) in ``configs``
    until ``deadline``; an error (out of memory, a compiler failure) is recorded in its row and the sweep goes
    on; memory is freed between rows."""
    rows = []
    for tp, batch, layers in configs:
        if time.time() > deadline:
            break
        torch._dynamo.reset()
        row = {**head, "tp": tp, "batch": batch, "layers": layers}
        try:
            row.update(measure(tp, batch, layers))
        except (RuntimeError, torch.OutOfMemoryError) as e:
            row["error"] = repr(e)[:300]
        rows.append(row)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if on_row:
            on_row(rows)
    return rows


def compiled_steps(preset: str, configs, cache: int = 1536, device=None, dtype=torch.float16,
                   deadline: float = math.inf, on_row=None, profile=()) -> list[dict]:
    """[{tp, batch, layers, median_us, ...}] for each (tp, batch, layers) in ``configs``, until ``deadline``;
    the configs in ``profile`` also get their decode step's kernel list."""
    device = default_device(device)

    def measure(tp, batch, layers):
        model = shard_model(preset, tp, layers, device, dtype)
        return time_compiled_step(model, batch, cache, profile=(tp, batch, layers) in profile)

    return step_sweep(configs, measure, {"model": preset, "cache": cache}, device, deadline, on_row)


def device_name(device) -> str:
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def write_json(path: str, obj) -> None:
    atomic.write_json(path, obj)
