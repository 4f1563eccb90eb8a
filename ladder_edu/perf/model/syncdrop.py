"""Sync-drop: one all-reduce per layer, the attention's dropped (SPD, arXiv 2502.20727; the Ladder authors'
``ensemble`` variant, timed in their logs as one all-reduce per layer).

Each rank adds its own attention partial sum to its stream and the MLP's all-reduce makes the stream whole again
(the authors' ``gpt_ensemble_TP.py`` all-reduces mlp_r + (x + attn_r) / n): a different function from standard,
like ladder, so it needs training; this package models its speed, not its model. On the critical path a layer
is the attention without communication and the MLP with one all-reduce that the next layer's attention waits for
(lag 0): half of standard's all-reduces, none hidden, like the parallel block, but with standard's two norms.
"""
from __future__ import annotations

from ...models.config import ModelConfig
from ...models.registry import BASELINE
from . import critical_path as cp
from .deployment import Deployment
from .hardware import Hardware
from .logs import SYNC_DROP
from .perfmodel import Prediction, forward_time, head_cost, interference, module_cost, static_cache


def sync_drop_time(dep: Deployment, new_tokens: int, keys: int) -> float:
    """Seconds of one forward pass of the sync-drop model (``keys``: the keys each query reads)."""
    attn = module_cost("attn", dep, new_tokens, keys, comm=False)
    mlp = module_cost("mlp", dep, new_tokens, keys, comm=True)
    lanes = cp.Lanes()
    nbytes = dep.batch * new_tokens * dep.cfg.dim * dep.hw.bytes_per_param
    cp.run(lanes, [cp.Module(attn.compute, 0.0, 0), cp.Module(mlp.compute, mlp.comm, 0)], dep.cfg.n_layers,
           interference(dep.hw, nbytes))
    return cp.finish(lanes) + head_cost(dep, new_tokens)


def predict_sync_drop(cfg: ModelConfig, hw: Hardware, tp: int, batch: int = 1, prompt: int = 1024,
                      generate: int = 512, **deployment) -> Prediction:
    """Prefill, decode per token, tokens/s and speed-up over standard of the sync-drop model (``predict``'s
    definitions; ``deployment``: other ``Deployment`` fields)."""
    dep = Deployment(cfg, hw, tp, batch, **deployment)
    keys = static_cache(prompt, generate)
    pre, dec = sync_drop_time(dep, prompt, keys), sync_drop_time(dep, 1, keys)
    std = forward_time(BASELINE, dep, prompt, keys) + (generate - 1) * forward_time(BASELINE, dep, 1, keys)
    out = Prediction(SYNC_DROP, pre, dec, batch * generate / (pre + (generate - 1) * dec))
    out.speedup_vs_standard = std / (pre + (generate - 1) * dec)
    return out
