"""Build any architecture's model from full weights: the one place that knows Kraken is a different class.

``build_model(cfg, full, tp)`` returns rank ``tp.rank``'s shard of the model ``cfg`` describes (a
:class:`~ladder_edu.models.model.Transformer` for standard, parallel and ladder, a
:class:`~ladder_edu.models.kraken.KrakenTransformer` for Kraken) holding the same weights on any TP degree.
``init_weights(cfg, seed)`` makes those full weights: W ~ N(0, init_std) (as the ladder benchmarks used), norms = 1.
"""
from __future__ import annotations

import torch

from ..tp.parallel import TPGroup
from .config import ModelConfig
from .kraken import KrakenTransformer
from .model import Transformer


def model_class(cfg: ModelConfig) -> type:
    """KrakenTransformer for ``arch="kraken"``, else Transformer."""
    return KrakenTransformer if cfg.arch == "kraken" else Transformer


def build_model(cfg: ModelConfig, full: dict, tp: TPGroup | None = None, dtype=torch.float32, device=None):
    """Rank ``tp.rank``'s model of ``cfg`` from the full (single-device) state dict ``full``."""
    return model_class(cfg).from_full_state_dict(cfg, full, tp, dtype, device)


def init_weights(cfg: ModelConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full, deterministic state dict for ``cfg``: weights ~ N(0, init_std), norms = 1."""
    gen = torch.Generator().manual_seed(seed)
    shapes = model_class(cfg)(cfg, dtype=torch.float32, device=torch.device("meta")).state_dict()
    full = {}
    for name, t in shapes.items():
        if name.endswith("norm.weight"):
            full[name] = torch.ones(t.shape)
        else:
            full[name] = torch.randn(t.shape, generator=gen) * cfg.init_std
    return full
