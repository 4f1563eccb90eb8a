"""The modules every architecture shares, each computing on its rank's shard: RMSNorm, RoPE, attention, MLP.

Attention and MLP return the rank's *partial sum* (the output of a RowParallelLinear). Summing the partial sums over
ranks (the all-reduce) is left to the model's layer loop. Names follow Hugging Face's Llama, so a Llama checkpoint's
state dict loads with its ``model.`` prefix removed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from ..tp.parallel import FusedColumnParallelLinear, RowParallelLinear, TPGroup


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g (computed in float32, as Llama does)."""

    def __init__(self, dim: int, eps: float, dtype=None, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_tables(head_dim: int, max_seq_len: int, theta: float, device=None):
    """cos/sin of angle p * theta^(-2i/d) for positions p < max_seq_len, shape [max_seq_len, head_dim]."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32, device=device), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+d/2}) by their position's angle (Llama's "rotate half" layout). x: [B, H, T, D]."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class KVCache(nn.Module):
    """Keys and values of past positions for this rank's kv heads: [batch, local_kv_heads, max_seq_len, head_dim]."""

    def __init__(self, batch: int, n_kv_heads: int, max_seq_len: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (batch, n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, start, k: torch.Tensor, v: torch.Tensor):
        """Write positions [start, start+T) and return all keys/values up to start+T.

        With ``start`` a tensor of positions (the static-shape path, ``compiled.py``) write those positions and
        return the whole cache: its shape never changes, which CUDA graphs need (gpt-fast's layout)."""
        if isinstance(start, torch.Tensor):
            self.k.index_copy_(2, start, k)
            self.v.index_copy_(2, start, v)
            return self.k, self.v
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class Attention(nn.Module):
    """Causal grouped-query attention on this rank's heads: H/n query heads and K/n kv heads.

    [q, k, v] = x [Wq_r; Wk_r; Wv_r]^T (column-parallel: whole heads; one GEMM), RoPE on q and k,
    o_r = softmax(q k^T / sqrt(d) + causal mask) v, then the partial sum o_r Wo_r^T (row-parallel).

    ``start`` is the first position, an int (eager: attend to the cache up to start+T), or a tensor of the T
    positions (static shapes for torch.compile/CUDA graphs: attend to the whole cache, mask key s > position).
    """

    def __init__(self, cfg: ModelConfig, tp: TPGroup, dtype=None, device=None):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads // tp.size, cfg.n_kv_heads // tp.size, cfg.head_dim
        d = cfg.head_dim
        self.wqkv = FusedColumnParallelLinear(cfg.dim, {"q_proj": cfg.n_heads * d, "k_proj": cfg.n_kv_heads * d,
                                                         "v_proj": cfg.n_kv_heads * d}, tp, dtype, device)
        self.wqkv.keep_names(self, "wqkv")
        self.o_proj = RowParallelLinear(cfg.n_heads * d, cfg.dim, tp, dtype, device)
        self.cache: KVCache | None = None

    def forward(self, x: torch.Tensor, start: int, rope) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.wqkv(x)                           # one GEMM: [q_r; k_r; v_r] (FusedColumnParallelLinear)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        static = isinstance(start, torch.Tensor)
        where = start if static else slice(start, start + T)
        cos, sin = rope[0][where], rope[1][where]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.cache is not None:
            k, v = self.cache.update(start, k, v)
        elif static or start:
            raise ValueError("start > 0 (or a positions tensor) needs a KV cache: call model.setup_cache(batch) first")
        S = k.shape[2]                                    # keys: all positions < start + T
        if static:                                        # query at position p sees cache slots s <= p
            mask = torch.arange(S, device=x.device)[None, :] <= start[:, None]
        elif T == 1:
            mask = None                                   # one new token sees every cached position
        else:                                             # query at position start+t sees keys <= start+t
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
        # GQA: each kv head serves n_heads / n_kv_heads query heads, read in place (no repeated K/V copies)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.n_heads != self.n_kv_heads)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class MLP(nn.Module):
    """SwiGLU on this rank's slice of the hidden features: (silu(x Wg_r^T) * x Wu_r^T) Wd_r^T, a partial sum (gate
    and up as one GEMM)."""

    def __init__(self, cfg: ModelConfig, tp: TPGroup, dtype=None, device=None):
        super().__init__()
        self.w13 = FusedColumnParallelLinear(cfg.dim, {"gate_proj": cfg.ffn_dim, "up_proj": cfg.ffn_dim}, tp, dtype,
                                             device)
        self.w13.keep_names(self, "w13")
        self.down_proj = RowParallelLinear(cfg.ffn_dim, cfg.dim, tp, dtype, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w13(x)                          # one GEMM: [gate_r; up_r]
        return self.down_proj(F.silu(gate) * up)


def reading_values_is_allowed() -> bool:
    """Whether checks may read tensor values back to the host: not while ``torch.compile`` traces (a graph break)
    nor while a CUDA graph is being captured (a device-to-host copy is illegal there and fails the capture)."""
    if torch.compiler.is_compiling():
        return False
    return not (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing())


def check_tokens(model, tokens: torch.Tensor, start):
    """Clear errors for tokens a model (a ``decoder.Decoder``) cannot take at position ``start``. Shapes are
    always checked; values (token ids, positions) only where ``reading_values_is_allowed``."""
    if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32):
        got = tokens.dtype if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise TypeError(f"tokens must be an integer tensor (torch.long or torch.int) of shape [batch, seq], "
                        f"got {got}")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape [batch, seq], got {tuple(tokens.shape)}")
    if isinstance(start, torch.Tensor):              # positions, the static-shape path (compiled.py)
        if start.dim() != 1 or start.shape[0] != tokens.shape[1] or start.dtype != torch.long:
            raise ValueError(f"positions must be a torch.long tensor of shape [{tokens.shape[1]}] (one per token), "
                             f"got {start.dtype} {tuple(start.shape)}")
        cache = model.first_cache()
        if cache is None:
            raise ValueError("a positions tensor needs a KV cache: call model.setup_cache(batch) first")
        if not reading_values_is_allowed():
            return
        end = int(start.max()) + 1
        if int(start.min()) < 0 or end > cache.k.shape[2]:
            raise ValueError(f"positions must be in [0, {cache.k.shape[2]}) (the KV cache's length), got "
                             f"{start.tolist()}")
    else:
        end = start + tokens.shape[1]
    if end > model.cfg.max_seq_len:
        raise ValueError(f"sequence too long: positions up to {end} but the context is "
                         f"max_seq_len={model.cfg.max_seq_len}")
    if not reading_values_is_allowed():    # shapes were checked above
        return
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= model.cfg.vocab_size):
        raise ValueError(f"token ids must be in [0, {model.cfg.vocab_size}), got min {int(tokens.min())}, "
                         f"max {int(tokens.max())}")
    cache = model.first_cache()
    if cache is not None and tokens.shape[0] != cache.k.shape[0]:
        raise ValueError(f"batch {tokens.shape[0]} does not match the KV cache's batch {cache.k.shape[0]}")
