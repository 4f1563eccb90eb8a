"""Small rank functions the notebooks run with ``launch.run`` (spawned ranks can only run importable functions).

They use tiny integer-valued matrices so a learner can check every number by hand.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..tp.launch import current_device
from ..tp.parallel import TPGroup, shard_tensor


def quick_mode() -> bool:
    """True when notebooks should run their short version (set LADDER_EDU_QUICK=1; the test suite does)."""
    return os.environ.get("LADDER_EDU_QUICK", "0") not in ("", "0", "false", "False")


def example_matrices(tokens: int = 2, d_in: int = 8, d_out: int = 8):
    """X [tokens, d_in] and W [d_out, d_in] with small integers (y = X W^T, as nn.Linear computes)."""
    x = torch.arange(tokens * d_in, dtype=torch.float32).reshape(tokens, d_in) % 5 - 2
    w = torch.arange(d_out * d_in, dtype=torch.float32).reshape(d_out, d_in) % 3 - 1
    return x, w


def linear_demo(tokens: int = 2, d_in: int = 8, d_out: int = 8) -> dict:
    """On each rank: a column-parallel and a row-parallel split of the same y = x W^T (``example_matrices`` of
    these sizes; d_in and d_out must divide by the number of ranks).

    column: rank r holds rows W_r of W (output features) and computes y[:, slice_r] = x W_r^T, no communication.
    row:    rank r holds columns W[:, slice_r] and x[:, slice_r]; its partial sum x_r W_r^T is not y until the
            all-reduce adds every rank's partial sum.
    """
    tp = TPGroup.from_dist()
    x, w = example_matrices(tokens, d_in, d_out)
    w_col = shard_tensor(w, 0, tp)
    y_col = x @ w_col.T
    w_row, x_row = shard_tensor(w, 1, tp), shard_tensor(x, 1, tp)
    partial = x_row @ w_row.T
    dev = current_device()                                    # NCCL collectives need the tensors on the GPU
    reduced = partial.to(dev, copy=True)                    # all_reduce works in place
    dist.all_reduce(reduced)
    gathered = [torch.empty_like(y_col, device=dev) for _ in range(tp.size)]
    dist.all_gather(gathered, y_col.to(dev))
    return {"rank": tp.rank, "w_col": w_col, "y_col": y_col, "w_row": w_row, "x_row": x_row,
            "partial": partial, "all_reduced": reduced.cpu(), "column_gathered": torch.cat(gathered, dim=1).cpu()}


def megatron_mlp_demo(hidden: int = 8) -> dict:
    """y = (x A^T) B^T with A column-split and B row-split: no communication between the two matmuls,
    one all-reduce at the end. Returns this rank's partial sum, the all-reduced y and the single-device y."""
    tp = TPGroup.from_dist()
    x, _ = example_matrices()
    a = torch.arange(hidden * x.shape[1], dtype=torch.float32).reshape(hidden, x.shape[1]) % 3 - 1
    b = torch.arange(x.shape[1] * hidden, dtype=torch.float32).reshape(x.shape[1], hidden) % 5 - 2
    h_local = torch.relu(x @ shard_tensor(a, 0, tp).T)       # each rank: its hidden units, whole
    partial = h_local @ shard_tensor(b, 1, tp).T              # partial sum over its hidden units
    y = partial.to(current_device(), copy=True)
    dist.all_reduce(y)
    return {"rank": tp.rank, "partial": partial, "y": y.cpu(), "y_single_device": torch.relu(x @ a.T) @ b.T}
