"""The variants that benchmarks and profiles compare, built on one rank, and the one step they time.

A *variant* is an architecture plus how it communicates (``config.variant_config``): standard, parallel, ladder,
upper_bound (standard that never all-reduces: a speed ceiling, not a model), kraken, and for prefill iso (the
standard model, its prompt split into chunks whose compute and all-reduces interleave).
"""
from __future__ import annotations

import torch

from ..tp.parallel import TPGroup
from .build import build_model, init_weights
from .config import ModelConfig, variant_config
from .registry import get_variant
from .iso import iso_prefill


def example_tokens(cfg: ModelConfig, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """A deterministic random prompt (the ladder benchmarks also used random token ids)."""
    return torch.randint(0, cfg.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed + 1))


def variant_model(cfg: ModelConfig, variant: str, tp: TPGroup, full: dict, seed: int = 0, dtype=torch.float32,
                  device=None):
    """Rank ``tp.rank``'s model of a variant. Every variant but Kraken shares the weights ``full``; Kraken is a
    different model (``kraken_config``) with its own weights from the same seed."""
    vcfg = variant_config(cfg, variant, tp.size)
    weights = init_weights(vcfg, seed) if vcfg.arch == "kraken" else full
    return build_model(vcfg, weights, tp, dtype, device)


def run_step(model, phase: str, variant: str, prompt: torch.Tensor, context: int, i: int):
    """One timed step: an ISO prefill, an ordinary prefill of ``prompt``, or decode step ``i`` after ``context``."""
    if phase == "prefill" and get_variant(variant).layout == "chunked":
        return iso_prefill(model, prompt)
    if phase == "prefill":
        return model(prompt, start=0)
    return model(prompt[:, -1:], start=context + i)
