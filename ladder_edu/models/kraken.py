"""Kraken (Prabhakar et al., NeurIPS 2024): a fixed degree N of parallel, full-width sub-layers per layer.

Following the official code (rohan-bp/kraken, training/kraken.py; arXiv 2408.07802), with this runtime's Llama
modules (RMSNorm, RoPE, SwiGLU): the model
is N "splits", each a full-width stack whose attention has H/N heads (of size dim/(H/N)). With e the embeddings and
x_i the output of split i at the previous layer:

    layer 1 (a standard block per split):  a_i = e + Attn_i(n1(e));    x_i = a_i + FFN_i(n2(a_i))
    layer l >= 2:                          a_i = x_i + Attn_i(n1(x_i))                  # only its OWN output
                                           u_i = a_i + sum_{j != i} x_j                 # every split's output
                                           x_i' = a_i + FFN_i(n2(u_i))                  # residual is a_i
    output:                                logits = head(norm(W_conj [x_1; ...; x_N]))

Under TP, rank i holds split i. Nothing is communicated inside a layer. The one collective per layer is
S = AllReduce(x_i) = sum_j x_j, started as soon as x_i exists and waited on only at the FFN input
(u_i = a_i + S - x_i), so it runs while Attn_i of the next layer computes. The joining linear is row-parallel:
W_conj [x_1; ...; x_N] = sum_i W_conj,i x_i, a last all-reduce. On one device all N splits run in turn.
"""
from __future__ import annotations

import torch
from torch import nn

from ..tp.comm import Pending, all_reduce_async, region
from .config import ModelConfig
from .decoder import Decoder
from .layers import MLP, Attention, RMSNorm
from ..tp.parallel import TPGroup, shard_tensor


def split_config(cfg: ModelConfig) -> ModelConfig:
    """One sub-layer's shape: full width, H/N query heads, K/N kv heads (so head_dim = dim / (H/N))."""
    n = cfg.kraken_degree
    return cfg.replace(arch="standard", n_heads=cfg.n_heads // n, n_kv_heads=cfg.n_kv_heads // n)


class SplitLayer(nn.Module):
    """One sub-layer of one split: attention and FFN, full width (its attention has H/N heads)."""

    def __init__(self, scfg: ModelConfig, dtype=None, device=None):
        super().__init__()
        one = TPGroup.single()                       # a sub-layer is never sharded: splits map to ranks
        self.input_layernorm = RMSNorm(scfg.dim, scfg.norm_eps, dtype, device)
        self.self_attn = Attention(scfg, one, dtype, device)
        self.post_attention_layernorm = RMSNorm(scfg.dim, scfg.norm_eps, dtype, device)
        self.mlp = MLP(scfg, one, dtype, device)


class KrakenTransformer(Decoder):
    """Splits ``tp.rank`` (under TP) or all N splits (one device) of a Kraken model."""

    def __init__(self, cfg: ModelConfig, tp: TPGroup | None = None, dtype=torch.float32, device=None):
        super().__init__()
        n, scfg = cfg.kraken_degree, split_config(cfg)
        self._build_shared(cfg, tp, scfg.head_dim, dtype, device)
        self.local_splits = list(range(n)) if self.tp.size == 1 else [self.tp.rank]
        self.splits = nn.ModuleList(nn.ModuleList(SplitLayer(scfg, dtype, device) for _ in range(cfg.n_layers))
                                    for _ in self.local_splits)
        self.conj = nn.Linear(len(self.local_splits) * cfg.dim, cfg.dim, bias=False, dtype=dtype, device=device)

    def attentions(self):
        return (sub.self_attn for split in self.splits for sub in split)

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        self.check_tokens(tokens, start)
        rope, e = (self.rope_cos, self.rope_sin), self.embed_tokens(tokens)
        xs, total = [e] * len(self.splits), None
        for layer in range(self.cfg.n_layers):
            new = []
            for x, split in zip(xs, self.splits):
                sub = split[layer]
                with region(f"L{layer}.attn"):
                    a = x + sub.self_attn(sub.input_layernorm(x), start, rope)
                if layer == 0:
                    u = a                                              # the first layer: a standard block
                else:
                    if isinstance(total, Pending):
                        total = total.wait()                # S = sum_j x_j: its all-reduce overlapped Attn_i
                    u = a + total - x
                with region(f"L{layer}.mlp"):
                    new.append(a + sub.mlp(sub.post_attention_layernorm(u)))
            xs = new
            if layer + 1 < self.cfg.n_layers:
                total = self._sum_over_splits(xs, f"L{layer}.out")
        with region("conj"):
            partial = self.conj(torch.cat(xs, dim=-1))                   # this rank's W_conj,i x_i
        return self.head(all_reduce_async(partial, self.tp, self.cfg.comm, "conj").wait())

    def _sum_over_splits(self, xs, label):
        """Start S = sum over all splits of x_j: an all-reduce under TP, a local sum on one device."""
        local = xs[0] if len(xs) == 1 else torch.stack(xs).sum(0)
        return all_reduce_async(local.clone(), self.tp, self.cfg.comm, label)

    @classmethod
    def from_full_state_dict(cls, cfg, full: dict, tp: TPGroup | None = None, dtype=torch.float32, device=None):
        """Rank r keeps split r (renamed split 0) and columns r of W_conj; one device keeps everything."""
        tp = tp or TPGroup.single()
        model = cls(cfg, tp, dtype, device=torch.device("meta"))
        local = {}
        for name, t in full.items():
            if name.startswith("splits."):
                idx, rest = name.split(".", 2)[1:]
                if int(idx) in model.local_splits:
                    local[f"splits.{model.local_splits.index(int(idx))}.{rest}"] = t
            elif name == "conj.weight" and tp.size > 1:
                local[name] = shard_tensor(t, 1, tp)
            else:
                local[name] = t
        model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in local.items()}, assign=True)
        model._reset_rope(device)
        return model.eval()
