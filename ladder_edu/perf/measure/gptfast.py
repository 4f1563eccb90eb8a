"""gpt-fast's own decode step on the shapes ``compiled_steps`` times for this package: the reference to match.

gpt-fast (github.com/pytorch-labs/gpt-fast, the code base of the Ladder paper's benchmarks) is not a dependency
and is never committed here: its ``model.py`` is imported from a snapshot directory the caller names
(``ladder-edu calibrate-gpu --gpt-fast DIR``; ``docs/gpu/run.sh`` carries one to the GPU machine as an ignored
path). Rank 0's shard is made as gpt-fast's ``apply_tp`` (its tp.py) makes it (``tp.py`` itself is not imported: it pulls
in the tokenizer's packages): the q, k and v rows of ``wqkv`` and the rows of ``w1``, ``w3`` split column-wise, the
columns of ``wo`` and ``w2`` row-wise, the head counts and ``config`` divided by the TP degree; without the
all-reduce hooks (the upper bound, as ``compiled_steps``, so one device is enough), random weights. The step is
gpt-fast's ``model(x, input_pos)`` compiled as its ``decode_one_token`` is (``mode="reduce-overhead"``,
``fullgraph=True``, attention through the math backend so inductor generates it), timed back to back; two layer
counts give the time per layer, as for this package.
"""
from __future__ import annotations

import importlib
import math
import os
import sys

import torch

from .timing import compile_and_time, default_device, per_layer_slope, random_fill


def load_model_module(gpt_fast_dir: str):
    """gpt-fast's ``model.py`` from ``gpt_fast_dir`` (ValueError naming the directory if it is not there)."""
    if not os.path.isfile(os.path.join(gpt_fast_dir, "model.py")):
        raise ValueError(f"{gpt_fast_dir!r} holds no gpt-fast model.py: pass the directory of a gpt-fast snapshot "
                         f"(github.com/pytorch-labs/gpt-fast)")
    sys.path.insert(0, os.path.abspath(gpt_fast_dir))
    try:
        sys.modules.pop("model", None)
        return importlib.import_module("model")
    finally:
        sys.path.pop(0)


def shard(gf, preset: str, tp: int, layers: int, device, dtype=torch.float16, seed: int = 0):
    """Rank 0's shard of gpt-fast's ``preset`` (its ``transformer_configs`` key, e.g. "llama-3-70b") at TP
    ``tp`` with ``layers`` layers, made directly at shard size on ``device`` (weights ~ N(0, 0.02), norms 1)."""
    args = gf.ModelArgs.from_name(preset)
    if args.n_head % tp or args.n_local_heads % tp or args.intermediate_size % tp:
        raise ValueError(f"TP={tp} does not divide {preset}'s {args.n_head} heads, {args.n_local_heads} kv heads "
                         f"and FFN {args.intermediate_size}")
    args.n_layer = layers
    with torch.device("meta"):
        model = gf.Transformer(args)
    for block in model.layers:
        a, f = block.attention, block.feed_forward
        kv = a.n_local_heads * a.head_dim
        a.wqkv.weight = torch.nn.Parameter(torch.empty((a.dim + 2 * kv) // tp, a.dim, device="meta"), False)
        a.wo.weight = torch.nn.Parameter(torch.empty(a.dim, a.dim // tp, device="meta"), False)
        a.n_head, a.dim, a.n_local_heads = a.n_head // tp, a.dim // tp, a.n_local_heads // tp
        a.head_dim = a.dim // a.n_head
        for w in (f.w1, f.w3):
            w.weight = torch.nn.Parameter(torch.empty(args.intermediate_size // tp, args.dim, device="meta"), False)
        f.w2.weight = torch.nn.Parameter(torch.empty(args.dim, args.intermediate_size // tp, device="meta"), False)
    model.config.n_head //= tp                           # tp._apply_tp_Transformer, before setup_caches
    model.config.dim //= tp
    model.config.n_local_heads //= tp
    model = model.to_empty(device=device).to(dtype)
    return random_fill(model, 0.02, seed).eval()


def time_step(model, batch: int, cache: int, steps: int = 30) -> dict:
    """Compile and time gpt-fast's decode forward at position cache // 2 + s (back to back, one synchronisation:
    ``pipelined_us``, as ``gpu_terms.time_compiled_step``)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    device = model.output.weight.device
    with torch.device(device):
        model.setup_caches(max_batch_size=batch, max_seq_length=cache)
    cuda = device.type == "cuda"
    step = torch.compile(model, mode="reduce-overhead" if cuda else None, fullgraph=True)
    x = torch.randint(0, model.config.vocab_size, (batch, 1), device=device)
    pos = torch.zeros(1, dtype=torch.long, device=device)    # filled on the device: a torch.tensor([...]) per step
    #                                                          would copy from the host and synchronise every step

    def run(s):
        pos.fill_(cache // 2 + s)
        return step(x, pos)

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        return compile_and_time(run, device, steps)


def gpt_fast_steps(gpt_fast_dir: str, preset: str, configs, cache: int = 1536, device=None, dtype=torch.float16,
                   deadline: float = math.inf, on_row=None) -> list[dict]:
    """[{tp, batch, layers, median_us, pipelined_us, ...}] of gpt-fast's step for each (tp, batch, layers), until
    ``deadline``; an error (out of memory, a compiler failure) is recorded in its row and the sweep goes on."""
    from .gpu_terms import step_sweep
    gf = load_model_module(gpt_fast_dir)
    device = default_device(device)

    def measure(tp, batch, layers):
        return time_step(shard(gf, preset, tp, layers, device, dtype), batch, cache)

    return step_sweep(configs, measure, {"code": "gpt-fast", "model": preset, "cache": cache}, device, deadline,
                      on_row)


def per_layer(rows: list[dict]) -> list[dict]:
    """[{tp, batch, per_layer_us, rest_us}] from pairs of rows that differ only in their layer count."""
    out = []
    ok = [r for r in rows if "pipelined_us" in r]
    for key in sorted({(r["tp"], r["batch"]) for r in ok}):
        pair = sorted((r for r in ok if (r["tp"], r["batch"]) == key), key=lambda r: r["layers"])
        if len(pair) >= 2 and pair[-1]["layers"] > pair[0]["layers"]:
            a, b = pair[0], pair[-1]
            slope, rest = per_layer_slope(a["layers"], a["pipelined_us"], b["layers"], b["pipelined_us"])
            out.append({"tp": key[0], "batch": key[1], "per_layer_us": slope, "rest_us": rest})
    return out


def compare(ours: list[dict], theirs: list[dict]) -> list[dict]:
    """Per (TP, batch) timed by both: this package's and gpt-fast's compiled step per layer and their ratio."""
    mine = {(r["tp"], r["batch"]): r for r in per_layer(ours)}
    out = []
    for r in per_layer(theirs):
        m = mine.get((r["tp"], r["batch"]))
        if m:
            out.append({"tp": r["tp"], "batch": r["batch"], "ours_us": m["per_layer_us"],
                        "gpt_fast_us": r["per_layer_us"], "ratio": m["per_layer_us"] / r["per_layer_us"]})
    return out
