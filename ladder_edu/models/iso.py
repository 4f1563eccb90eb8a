"""ISO (Xiao & Su, 2024): overlap communication with computation *within a sequence*, for an unchanged model.

A prefill of T tokens is split into chunks at positions 0 < s_1 < ... < T. Every module runs chunk by chunk, and
each chunk keeps its own residual stream and its own pending all-reduces (the standard rule, lag 0, per chunk):

    L0.attn on chunk A  -> AR(A) starts
    L0.attn on chunk B  -> AR(B) starts        (runs while AR(A) is in flight)
    L0.mlp  on chunk A  -> needs AR(A) first   (AR(B) in flight meanwhile)
    L0.mlp  on chunk B  -> needs AR(B) first
    ...

Causality: chunk B's queries attend to chunk A's keys and values, so chunk A's attention (which writes them to the
KV cache) runs first in every layer. Under Megatron TP each rank holds its heads' keys and values locally, so this
needs no communication. The model and its weights are unchanged, so the result equals the unchunked prefill up to
rounding, and so does the KV cache it leaves behind.

Later chunks attend to more keys, so equal halves are not balanced. ``balanced_split`` picks the split point that
equalises an estimate of the two chunks' compute: per token, 2 x the layer's parameters in FLOPs; per query at
position p, 4 x (p+1) x head_dim x heads for the attention scores and values.
"""
from __future__ import annotations

from collections import deque

import torch

from ..tp.comm import all_reduce_async, region
from .config import ModelConfig
from .model import Transformer


def chunk_cost(cfg: ModelConfig, start: int, end: int) -> float:
    """Estimated FLOPs of one layer for the queries at positions [start, end) (whole model, not per rank)."""
    params = cfg.dim * cfg.head_dim * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) + 3 * cfg.dim * cfg.ffn_dim
    keys = (start + 1 + end) * (end - start) / 2                  # sum of (p + 1) over the chunk's queries
    return 2 * params * (end - start) + 4 * keys * cfg.head_dim * cfg.n_heads


def balanced_split(cfg: ModelConfig, length: int) -> int:
    """The split point s that makes chunk_cost(0, s) and chunk_cost(s, length) closest (s > length/2 when the
    attention cost matters)."""
    if length < 2:
        raise ValueError(f"ISO needs a prompt of at least 2 tokens to split, got {length}")
    return min(range(1, length), key=lambda s: abs(chunk_cost(cfg, 0, s) - chunk_cost(cfg, s, length)))


def chunk_bounds(length: int, splits) -> list[tuple[int, int]]:
    points = [0, *splits, length]
    if any(b <= a for a, b in zip(points, points[1:])):
        raise ValueError(f"ISO split points must be increasing and inside (0, {length}), got {list(splits)}")
    return list(zip(points, points[1:]))


@torch.no_grad()
def iso_prefill(model: Transformer, tokens: torch.Tensor, splits=None) -> torch.Tensor:
    """Logits [B, T, vocab] of a prefill from position 0, computed chunk-interleaved (module docstring).

    ``splits``: the split positions (default: one, at ``balanced_split``). The model must be a standard one;
    its KV cache (allocated here if missing) ends up as after an ordinary prefill."""
    cfg = model.cfg
    if cfg.arch != "standard" or cfg.ladder_layers:
        raise ValueError(f"ISO overlaps the prefill of an unchanged *standard* model; got arch={cfg.arch!r}"
                         f"{f', ladder_layers={cfg.ladder_layers}' if cfg.ladder_layers else ''}")
    model.check_tokens(tokens, 0)
    B, T = tokens.shape
    bounds = chunk_bounds(T, [balanced_split(cfg, T)] if splits is None else splits)
    if model.first_cache() is None:
        model.setup_cache(B, T)
    rope = (model.rope_cos, model.rope_sin)
    xs = [model.embed_tokens(tokens[:, a:b]) for a, b in bounds]
    pending = [deque() for _ in bounds]
    for layer in model.layers:
        for k in range(2):                                    # attention, then MLP
            for c, (a, _) in enumerate(bounds):               # earlier chunks first: causality
                while pending[c]:
                    xs[c] = xs[c] + pending[c].popleft().wait()
                name, module = layer.steps(a, rope)[k]
                label = f"L{layer.index}.{name}"
                with region(label):
                    out = module(xs[c])
                pending[c].append(all_reduce_async(out, model.tp, cfg.comm, label))
    for c in range(len(bounds)):
        while pending[c]:
            xs[c] = xs[c] + pending[c].popleft().wait()
    return model.head(torch.cat(xs, dim=1))
