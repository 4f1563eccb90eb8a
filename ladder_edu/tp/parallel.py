"""Megatron-style tensor parallelism: column- and row-parallel linears, and sharding one full state dict.

A linear layer y = x W^T with W of shape [out, in] can be split across n ranks two ways:

* **ColumnParallelLinear** splits the *output* features: rank r holds rows W[r*out/n:(r+1)*out/n, :] and computes
  its own slice y_r = x W_r^T of the output. No communication: each rank needs the full x and gets part of y.
* **RowParallelLinear** splits the *input* features: rank r holds columns W[:, r*in/n:(r+1)*in/n] and, given its
  slice x_r of the input, computes a *partial sum* y_r = x_r W_r^T. The true output is y = sum_r y_r, an all-reduce.

Attention is column-parallel in q/k/v (whole heads per rank) and row-parallel in the output projection; the MLP is
column-parallel in gate/up and row-parallel in down. So each module needs exactly one all-reduce, at its end.
Here the row-parallel layer does NOT all-reduce itself: *when* that all-reduce is waited on is the whole lesson
of ladder residual, so the model's layer loop (``model.py``) owns it.

These layers are for inference: the collectives are not differentiated (Megatron's f/g autograd pair is not needed
to run a forward pass). Training in this package runs on one device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class TPGroup:
    """Who am I in the tensor-parallel group: rank, size and the torch.distributed process group (None = default).

    ``emulated``: the group is a stand-in whose all-reduces take a modelled time (``perf.measure.emulate``): one rank
    of a deployment too large for this machine. ``comm.all_reduce_async`` then waits the modelled time instead of
    calling torch.distributed.
    """

    rank: int = 0
    size: int = 1
    group: object = None
    emulated: bool = False

    @classmethod
    def single(cls) -> "TPGroup":
        return cls(0, 1, None)

    @classmethod
    def from_dist(cls, group=None) -> "TPGroup":
        """The current process's place in an initialised process group (the default group if ``group`` is None)."""
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: start the ranks with ladder_edu.tp.launch.run or "
                               "torchrun, or use TPGroup.single() for one device")
        return cls(dist.get_rank(group), dist.get_world_size(group), group)

    @classmethod
    def current(cls) -> "TPGroup":
        """``from_dist()`` inside a started process group (a rank of ``launch.run`` or torchrun), else ``single()``."""
        return cls.from_dist() if dist.is_initialized() else cls.single()


class ColumnParallelLinear(nn.Module):
    """y_r = x W_r^T with W_r the r-th block of *rows* of W [out, in]: each rank owns out/n output features."""

    def __init__(self, in_features: int, out_features: int, tp: TPGroup, dtype=None, device=None):
        super().__init__()
        if out_features % tp.size:
            raise ValueError(f"out_features={out_features} is not divisible by the TP degree {tp.size}")
        self.weight = nn.Parameter(torch.empty(out_features // tp.size, in_features, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)


class FusedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel projections of the same input as one GEMM (gpt-fast's ``wqkv`` and ``w1``/``w3``).

    ``parts`` = {name: full output features}. Rank r's weight is the concatenation of every part's r-th block of
    rows, [q_r; k_r; v_r], so the sharding stays a row split of each part and ``forward`` returns the parts of
    y_r = x W_r^T. :meth:`keep_names` makes the parent's state dicts show (and load) the parts under their own
    names, so checkpoints keep Hugging Face's names and ``SHARDING_PLAN`` is unchanged.
    """

    def __init__(self, in_features: int, parts: dict[str, int], tp: TPGroup, dtype=None, device=None):
        for name, out in parts.items():
            if out % tp.size:
                raise ValueError(f"{name}: out_features={out} is not divisible by the TP degree {tp.size}")
        super().__init__(in_features, sum(parts.values()), tp, dtype, device)
        self.parts = {name: out // tp.size for name, out in parts.items()}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return nn.functional.linear(x, self.weight).split(list(self.parts.values()), dim=-1)

    def keep_names(self, parent: nn.Module, attr: str) -> None:
        """Hooks on ``parent`` (which holds this module as ``attr``): its state dict holds ``<part>.weight`` in
        place of ``<attr>.weight``, in the same position; loading accepts either form."""
        fused, parts = f"{attr}.weight", self.parts

        def split(module, state_dict, prefix, local_metadata):
            key = prefix + fused
            if key not in state_dict:                   # e.g. under a LoRA parametrization
                return
            items = list(state_dict.items())
            state_dict.clear()
            for k, v in items:
                if k != key:
                    state_dict[k] = v
                    continue
                for (name, _), piece in zip(parts.items(), v.split(list(parts.values()), dim=0)):
                    state_dict[f"{prefix}{name}.weight"] = piece.clone()    # safetensors refuses shared storage

        def fuse(module, state_dict, prefix, *args):
            names = [f"{prefix}{name}.weight" for name in parts]
            if all(n in state_dict for n in names):
                state_dict[prefix + fused] = torch.cat([state_dict.pop(n) for n in names], dim=0)

        parent.register_state_dict_post_hook(split)
        parent.register_load_state_dict_pre_hook(fuse)


class RowParallelLinear(nn.Module):
    """y_r = x_r W_r^T with W_r the r-th block of *columns* of W: a partial sum; the caller all-reduces sum_r y_r."""

    def __init__(self, in_features: int, out_features: int, tp: TPGroup, dtype=None, device=None):
        super().__init__()
        if in_features % tp.size:
            raise ValueError(f"in_features={in_features} is not divisible by the TP degree {tp.size}")
        self.weight = nn.Parameter(torch.empty(out_features, in_features // tp.size, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)


# How each weight of the model is split: (name suffix, dimension of the full weight that is split).
# dim 0 = rows = output features (column-parallel); dim 1 = columns = input features (row-parallel).
SHARDING_PLAN = {
    "self_attn.q_proj.weight": 0,
    "self_attn.k_proj.weight": 0,
    "self_attn.v_proj.weight": 0,
    "self_attn.o_proj.weight": 1,
    "mlp.gate_proj.weight": 0,
    "mlp.up_proj.weight": 0,
    "mlp.down_proj.weight": 1,
}
"""Everything not named here (embeddings, norms, LM head) is replicated on every rank."""


def shard_tensor(full: torch.Tensor, dim: int, tp: TPGroup) -> torch.Tensor:
    """Rank ``tp.rank``'s contiguous block of ``full`` along ``dim``.

    Contiguous blocks keep whole heads together, and with grouped-query attention rank r's query heads
    [r*H/n, (r+1)*H/n) use exactly its kv heads [r*K/n, (r+1)*K/n), because query head h reads kv head h // (H/K).
    """
    if full.shape[dim] % tp.size:
        raise ValueError(f"cannot split a dimension of size {full.shape[dim]} across {tp.size} ranks")
    return full.chunk(tp.size, dim=dim)[tp.rank].contiguous()


def shard_state_dict(full: dict[str, torch.Tensor], tp: TPGroup) -> dict[str, torch.Tensor]:
    """The local state dict of rank ``tp.rank`` from the full (single-device) state dict."""
    local = {}
    for name, tensor in full.items():
        dim = next((d for suffix, d in SHARDING_PLAN.items() if name.endswith(suffix)), None)
        local[name] = tensor if dim is None or tp.size == 1 else shard_tensor(tensor, dim, tp)
    return local
