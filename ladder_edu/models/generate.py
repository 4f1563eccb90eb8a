"""Text generation: one prefill over the prompt, then one decode step per new token, reusing the KV cache.

Works for every architecture, on one device or under TP. Under TP every rank computes the same (replicated)
logits; the chosen token is broadcast from rank 0 so that sampling can never make ranks disagree.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from .model import Transformer


def sample(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token per row of ``logits`` [B, vocab]: argmax if temperature == 0, else a draw from
    softmax(logits / temperature) restricted to the ``top_k`` largest logits."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


@torch.no_grad()
def generate(model: Transformer, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, seed: int = 0, compile: bool | str = False) -> torch.Tensor:
    """Continue ``prompt`` [B, T] by ``max_new_tokens`` tokens; returns the new tokens [B, max_new_tokens].

    ``compile``: run the decode steps compiled (``compiled.CompiledDecode``: True for the device's default mode,
    CUDA graphs on a GPU, or a torch.compile mode name). The prefill stays eager. Each call compiles afresh."""
    if prompt.dim() == 1:
        prompt = prompt.unsqueeze(0)
    B, T = prompt.shape
    if T + max_new_tokens > model.cfg.max_seq_len:
        raise ValueError(f"prompt ({T}) + max_new_tokens ({max_new_tokens}) exceeds the context "
                         f"max_seq_len={model.cfg.max_seq_len}")
    device = model.embed_tokens.weight.device
    gen = torch.Generator().manual_seed(seed)
    model.setup_cache(B, T + max_new_tokens)
    try:
        step = None
        if compile:
            from .compiled import CompiledDecode
            step = CompiledDecode(model, None if compile is True else compile)
        logits = model(prompt.to(device), start=0)[:, -1]
        out = []
        for i in range(max_new_tokens):
            token = _agree(model, sample(logits, temperature, top_k, gen))
            out.append(token)
            if i + 1 < max_new_tokens:
                logits = (step(token[:, None], T + i) if step else model(token[:, None], start=T + i))[:, -1]
        return torch.stack(out, dim=1)
    finally:
        model.clear_cache()


def _agree(model: Transformer, token: torch.Tensor) -> torch.Tensor:
    """Every rank takes rank 0's token (a no-op on one device)."""
    if model.tp.size > 1:
        src = dist.get_global_rank(model.tp.group, 0) if model.tp.group is not None else 0
        dist.broadcast(token, src=src, group=model.tp.group)
    return token
