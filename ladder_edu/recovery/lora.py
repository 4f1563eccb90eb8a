"""Low-rank adapters (LoRA, Hu et al. 2022) on the converted layers, with torch.nn.utils.parametrize.

Each projection weight W [out, in] of the adapted layers is frozen and read through a parametrization

    W' = W + (alpha / r) * B A,      A [r, in] ~ N(0, 1/in),   B [out, r] = 0

so training starts exactly at the converted model and only r (in + out) numbers per projection learn (a fused
projection, q, k, v or gate, up, gets one adapter per part: what the separate projections would learn). ``merge``
folds B A into W (``remove_parametrizations(..., leave_parametrized=True)``): the saved model is an ordinary one,
with no trace of the adapters, that ``ladder-edu evaluate`` and TP serving read like any other.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..tp.parallel import ColumnParallelLinear, FusedColumnParallelLinear, RowParallelLinear


class LowRankDelta(nn.Module):
    """The parametrization W -> W + (alpha / r) B A."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float, generator=None):
        super().__init__()
        self.A = nn.Parameter(torch.randn(rank, in_features, generator=generator) / math.sqrt(in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.scale * (self.B @ self.A)).to(weight.dtype)


class PartsLowRankDelta(nn.Module):
    """One adapter per part of a fused projection (``FusedColumnParallelLinear``: q, k, v or gate, up), so a fused
    weight learns exactly what its separate projections would: W -> W + [s B_1 A_1; s B_2 A_2; ...]."""

    def __init__(self, parts: list[int], in_features: int, rank: int, alpha: float, generator=None):
        super().__init__()
        self.parts = nn.ModuleList(LowRankDelta(out, in_features, rank, alpha, generator) for out in parts)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + torch.cat([p.scale * (p.B @ p.A) for p in self.parts]).to(weight.dtype)


def add_lora(model, first: int, rank: int, alpha: float | None = None, seed: int = 0) -> int:
    """Freeze ``model.layers[first:]`` and put an adapter of rank ``rank`` on each of their projections; returns
    the number of adapted projections. ``alpha`` defaults to 2 r (scale 2)."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    gen = torch.Generator().manual_seed(seed)
    n = 0
    for layer in model.layers[first:]:
        layer.requires_grad_(False)
        for module in layer.modules():
            if isinstance(module, FusedColumnParallelLinear):
                parts = list(module.parts.values())
                parametrize.register_parametrization(
                    module, "weight", PartsLowRankDelta(parts, module.weight.shape[1], rank, alpha or 2.0 * rank, gen))
                n += len(parts)
            elif isinstance(module, (ColumnParallelLinear, RowParallelLinear)):
                out_f, in_f = module.weight.shape
                parametrize.register_parametrization(
                    module, "weight", LowRankDelta(out_f, in_f, rank, alpha or 2.0 * rank, gen))
                n += 1
    return n


def merge_lora(model) -> None:
    """Fold every adapter into its weight and remove it (the model becomes a plain one again)."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
