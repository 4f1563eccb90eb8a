"""The decoder, with the one loop in which standard, parallel-block and ladder transformers differ.

Count every attention or MLP as one *module* h_i, and let r_i be the residual stream after module i (r_0 = the
token embeddings). Under tensor parallelism each rank computes a partial sum of h_i, and AllReduce makes it whole.

* standard:        r_i = r_{i-1} + AR(h_i(r_{i-1}))           -- h_{i+1} must wait for AR(h_i): it needs r_i.
* ladder:          r_i = r_{i-1} + AR(h_i(r_{i-2}))           -- h_{i+1} reads r_{i-1}, which does not contain
                                                                 h_i's output, so AR(h_i) runs while h_{i+1} computes.
* parallel block:  x' = x + AR(attn(norm1(x)) + mlp(norm2(x)))  -- attention and MLP read the same x: one module,
                                                                 one all-reduce per layer.

In code, every module's output becomes a :class:`~ladder_edu.tp.comm.Pending` contribution (tensor + all-reduce
handle). Before a module runs, the stream absorbs every pending contribution *except the newest ``lag``*:

    lag = 0  (standard, parallel): wait for everything -> the all-reduce blocks the next module;
    lag = 1  (ladder):             leave the newest one in flight -> it overlaps the next module's compute.

After the last layer all pending contributions are added, then the final norm. With ``ladder_layers=k`` only the
last k layers have lag 1; the first ladder attention then reads the stream without the previous (standard) layer's
MLP output, exactly the boundary of the authors' Hybrid-Ladder Llama (arXiv 2501.06589; docs/references.md). For a
full ladder model the
first attention and the first MLP both read the embeddings (r_{-1} = r_0), as in the authors' code.
"""
from __future__ import annotations

from collections import deque

import torch
import torch.distributed as dist
from torch import nn

from ..tp.comm import Pending, all_reduce_async, region
from .config import ModelConfig
from .decoder import DTYPES, Decoder  # noqa: F401  (DTYPES: re-exported)
from .layers import MLP, Attention, RMSNorm
from ..tp.parallel import TPGroup, shard_state_dict
from .registry import VARIANTS



class Block(nn.Module):
    """One transformer layer: its modules, in the order they run, and how stale an input they may read (lag)."""

    def __init__(self, cfg: ModelConfig, index: int, tp: TPGroup, dtype=None, device=None):
        super().__init__()
        self.index, self.arch = index, cfg.layer_arch(index)
        self.lag = VARIANTS[self.arch].lag                  # models.registry: 1 for ladder, else 0
        self.fused = VARIANTS[self.arch].layout == "fused"  # the parallel block: attention and MLP as one module
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps, dtype, device)
        self.self_attn = Attention(cfg, tp, dtype, device)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps, dtype, device)
        self.mlp = MLP(cfg, tp, dtype, device)
        self.shared_norm = self.fused and cfg.parallel_shared_norm   # PaLM: one norm for both

    def steps(self, start: int, rope):
        """The modules of this layer as (name, function of the stream -> this rank's partial sum)."""
        def attn(x):
            return self.self_attn(self.input_layernorm(x), start, rope)

        def mlp(x):
            norm = self.input_layernorm if self.shared_norm else self.post_attention_layernorm
            return self.mlp(norm(x))

        if self.fused:
            return [("attn+mlp", lambda x: attn(x) + mlp(x))]      # both read the same x; one all-reduce
        return [("attn", attn), ("mlp", mlp)]


class Transformer(Decoder):
    """A Llama-style decoder holding rank ``tp.rank``'s shard of every layer (everything, when ``tp.size == 1``)."""

    def __init__(self, cfg: ModelConfig, tp: TPGroup | None = None, dtype=torch.float32, device=None):
        super().__init__()
        if cfg.arch == "kraken":
            raise ValueError("Kraken has its own layer structure: use ladder_edu.models.kraken.KrakenTransformer "
                             "(models.build.build_model and init_weights dispatch to it)")
        self._build_shared(cfg, tp, cfg.head_dim, dtype, device)
        if self.tp.size > 1 and not self.tp.emulated and dist.is_initialized() and \
                dist.get_world_size(self.tp.group) != self.tp.size:
            raise ValueError(f"world size mismatch: the model is sharded for TP={self.tp.size} but its process "
                             f"group has {dist.get_world_size(self.tp.group)} ranks; use TPGroup.from_dist()")
        self.layers = nn.ModuleList(Block(cfg, i, self.tp, dtype, device) for i in range(cfg.n_layers))

    def attentions(self):
        return (layer.self_attn for layer in self.layers)

    def forward(self, tokens: torch.Tensor, start: int | torch.Tensor = 0) -> torch.Tensor:
        """Logits [B, T, vocab] for ``tokens`` [B, T] placed at positions start .. start+T-1 (or at the positions
        in a tensor ``start`` [T], the static-shape path of ``compiled.py``)."""
        self.check_tokens(tokens, start)
        x = self.embed_tokens(tokens)
        rope = (self.rope_cos, self.rope_sin)
        pending: deque[Pending] = deque()      # module outputs whose all-reduce may still be in flight
        out = None                             # the latest module's output
        for layer in self.layers:
            for name, module in layer.steps(start, rope):
                while len(pending) > layer.lag:               # THE due rule: standard lag 0, ladder lag 1
                    due = pending.popleft()
                    x = x + due.wait(after=out if pending else None)  # "after": for torch.compile, comm.py
                label = f"L{layer.index}.{name}"               # trace label, e.g. "L3.attn"
                with region(label):
                    out = module(x)
                pending.append(all_reduce_async(out, self.tp, self.cfg.comm, label))
        while pending:                                        # the last outputs cannot be overlapped
            x = x + pending.popleft().wait()
        return self.head(x)

    # --- weights ----------------------------------------------------------------------------------------------
    @classmethod
    def from_full_state_dict(cls, cfg: ModelConfig, full: dict, tp: TPGroup | None = None, dtype=torch.float32,
                             device=None) -> "Transformer":
        """Build rank ``tp.rank``'s model from the full (single-device) weights: the same weights on any TP."""
        tp = tp or TPGroup.single()
        model = cls(cfg, tp, dtype, device=torch.device("meta"))
        local = shard_state_dict(full, tp)
        model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in local.items()}, assign=True)
        model._reset_rope(device)
        return model.eval()
