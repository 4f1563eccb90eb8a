"""What every decoder in this package shares: embeddings, the final norm and LM head, RoPE tables, the KV caches.

``Transformer`` (standard, parallel block, ladder; ``model.py``) and ``KrakenTransformer`` (``kraken.py``) differ in
their layers and in where they all-reduce; around the layers they are the same model:

    logits = head(x) = norm(x) E^T        (tied embeddings: E is the token embedding matrix [vocab, dim])
                     = norm(x) W_head^T   (untied)

The head is replicated on every rank (the stream x is whole after the last all-reduce), so every rank computes the
same logits. A subclass builds its layers and says which attention modules hold a KV cache (``attentions``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..tp.comm import region
from ..tp.parallel import TPGroup
from .config import ModelConfig
from .layers import KVCache, RMSNorm, check_tokens, rope_tables

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Decoder(nn.Module):
    """The shared parts; call ``_build_shared`` from the subclass's ``__init__``."""

    def _build_shared(self, cfg: ModelConfig, tp: TPGroup | None, head_dim: int, dtype, device) -> None:
        if dtype not in DTYPES.values():
            raise TypeError(f"unsupported dtype {dtype}; valid choices: {', '.join(DTYPES)}")
        self.cfg, self.tp = cfg, tp or TPGroup.single()
        cfg.check_tp(self.tp.size)
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim, dtype=dtype, device=device)
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps, dtype, device)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.dim, cfg.vocab_size, bias=False, dtype=dtype,
                                                                 device=device)
        self.head_dim_for_rope = head_dim
        cos, sin = rope_tables(head_dim, cfg.max_seq_len, cfg.rope_theta, device)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def attentions(self):
        """Every attention module of this rank, in order (each holds its own KV cache)."""
        raise NotImplementedError

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from the whole residual stream: the final norm, then the (tied or own) LM head."""
        with region("lm_head"):
            x = self.norm(x)
            return x @ self.embed_tokens.weight.T if self.lm_head is None else self.lm_head(x)

    def check_tokens(self, tokens: torch.Tensor, start) -> None:
        check_tokens(self, tokens, start)

    def first_cache(self) -> KVCache | None:
        return next(iter(self.attentions())).cache

    # --- KV cache ---------------------------------------------------------------------------------------------
    def setup_cache(self, batch: int, max_seq_len: int | None = None):
        """Allocate a KV cache per attention (local kv heads only) for ``batch`` sequences."""
        n, p = max_seq_len or self.cfg.max_seq_len, self.embed_tokens.weight
        for a in self.attentions():
            a.cache = KVCache(batch, a.n_kv_heads, n, a.head_dim, p.dtype, p.device)

    def clear_cache(self):
        for a in self.attentions():
            a.cache = None

    def _reset_rope(self, device) -> None:
        """RoPE tables on ``device`` (a model built on the meta device and then loaded has none)."""
        self.rope_cos, self.rope_sin = rope_tables(self.head_dim_for_rope, self.cfg.max_seq_len,
                                                   self.cfg.rope_theta, device)
