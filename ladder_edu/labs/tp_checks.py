"""Lab 1: column- and row-parallel linears and the all-reduce they need (Megatron's f and g)."""
from __future__ import annotations

import torch

from .describe import describe, what
from .runner import Verdict, call, failed, on_rank, run_check

SHAPE = (4, 8, 12)          # tokens, d_in, d_out: d_in and d_out divide by 2, 4 (and 1, 3, 6 for d_out)


def _setup(source: str, name: str):
    """(rank, world, the student's function or a failed Verdict, x, full weight) on this rank's device."""
    fn, bad, rank, world, dev = on_rank(source, name)
    g = torch.Generator().manual_seed(0)
    tokens, d_in, d_out = SHAPE[0], SHAPE[1] * world, SHAPE[2] * world
    x, w = torch.randn(tokens, d_in, generator=g).to(dev), torch.randn(d_out, d_in, generator=g).to(dev)
    return rank, world, bad or fn, x, w


def column_worker(source: str, name: str) -> Verdict:
    rank, world, fn, x, w = _setup(source, name)
    if isinstance(fn, Verdict):
        return fn
    want = (x @ w.T).chunk(world, dim=-1)[rank]
    got, problem = call(fn, x, w, rank, world)
    if problem:
        return failed(problem)
    if not isinstance(got, torch.Tensor):
        return Verdict(False, f"returned {what(got)}, expected a tensor of shape {tuple(want.shape)}")
    got, want = got.detach().float().cpu(), want.cpu()       # compared on the CPU, whatever the ranks ran on
    x, w = x.cpu(), w.cpu()
    if tuple(got.shape) != tuple(want.shape):
        hint = "a column-parallel layer keeps d_out/world output features: which of the weight's dimensions is that?"
        if tuple(got.shape) == tuple(want.shape[::-1]):
            return Verdict(False, f"output shape {tuple(got.shape)}, expected {tuple(want.shape)}: the output is "
                           "transposed", "tokens are the rows of the output, features its columns")
        problem = f"output shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        if tuple(got.shape) == tuple((x @ w.T).shape):
            d_in = x.shape[-1] // world
            split_in = x[:, rank * d_in:(rank + 1) * d_in] @ w[:, rank * d_in:(rank + 1) * d_in].T
            if torch.allclose(got.to(split_in.device), split_in, atol=1e-4):
                problem = "you split the weight along d_in (its input features): that gives a partial sum"
                hint = ("splitting the input features is the row-parallel layer; column-parallel splits the output "
                        "features, so each rank's slice is already final")
            else:
                hint = "you returned the whole output: each rank computes only its own slice of the output features"
        return Verdict(False, problem, hint)
    if torch.allclose(got, want, atol=1e-4):
        return Verdict(True)
    if torch.allclose(got, world * want, atol=1e-4):
        return Verdict(False, "every rank computed the whole output and the all-reduce added up the ranks' copies: "
                       "world_size times too large", "a column-parallel layer needs no communication: each rank's "
                       "slice of the output features is already final")
    for r, other in enumerate((x @ w.T).chunk(world, dim=-1)):
        if r != rank and torch.allclose(got, other, atol=1e-4):
            return Verdict(False, f"rank {rank} returned rank {r}'s slice", "index the shard with this rank")
    return Verdict(False, describe(got, want), "each rank's output features are a contiguous block, in rank order")


def row_worker(source: str, name: str) -> Verdict:
    rank, world, fn, x, w = _setup(source, name)
    if isinstance(fn, Verdict):
        return fn
    want = (x @ w.T).cpu()                                  # compared on the CPU, whatever the ranks ran on
    x_shard = x.chunk(world, dim=-1)[rank].contiguous()
    partial = (x_shard @ w.chunk(world, dim=1)[rank].T).cpu()
    got, problem = call(fn, x_shard.clone(), w, rank, world)
    if problem:
        return failed(problem)
    if got is None:
        return Verdict(False, "returned None", "a collective like all_reduce works in place on its tensor and "
                       "returns nothing (a handle only when asynchronous): what should the function return?")
    if isinstance(got, torch.Tensor):
        got = got.detach().float().cpu()
    if not isinstance(got, torch.Tensor):
        return Verdict(False, f"returned {what(got)}, expected a tensor of shape {tuple(want.shape)}",
                       "return the output tensor itself, the same whole output on every rank")
    if tuple(got.shape) != tuple(want.shape):
        if got.shape[-1] == world * want.shape[-1] or got.shape[0] == world * want.shape[0]:
            return Verdict(False, f"returned shape {tuple(got.shape)}: the ranks' outputs side by side",
                           "a row-parallel layer's outputs are partial sums of the same features: gathered side "
                           "by side they are still unsummed; which collective adds them?")
        return Verdict(False, f"returned {what(got)}, expected a tensor of shape {tuple(want.shape)}",
                       "a row-parallel layer's input is sharded along d_in: which of the weight's dimensions "
                       "must match it?")
    if torch.allclose(got, want, atol=1e-4):
        return Verdict(True)
    if torch.allclose(got, partial, atol=1e-4):
        return Verdict(False, "each rank returned only its partial sum", "the partial products of the ranks "
                       "add up to the answer only once something sums them across ranks")
    if torch.allclose(got, want / world, atol=1e-4):
        return Verdict(False, f"every value is 1/{world} of the sum: the reduction averaged",
                       "the partial products add up to the answer: which reduction adds?")
    if torch.allclose(got, world * partial, atol=1e-4) or torch.allclose(got, world * want, atol=1e-4):
        return Verdict(False, "the output is world_size times too large",
                       "something whole was summed over ranks: shard the weight, and all-reduce once")
    return Verdict(False, describe(got, want), "the answer is the sum over ranks of each rank's input shard "
                   "times the matching block of the weight")


def check_column_parallel(fn, world: int | None = None) -> Verdict:
    """``fn(x, weight, rank, world)`` -> this rank's slice of x @ weight.T (column-parallel)."""
    return run_check(column_worker, fn, world=world)


def check_row_parallel(fn, world: int | None = None) -> Verdict:
    """``fn(x_shard, weight, rank, world)`` -> the whole x @ weight.T on every rank (row-parallel + all-reduce)."""
    return run_check(row_worker, fn, world=world)


COLUMN = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")       # output features split: rows
ROW = ("o_proj", "down_proj")                                          # input features split: columns


def shard_worker(source: str, name: str) -> Verdict:
    fn, bad, rank, world, _ = on_rank(source, name)
    if bad:
        return bad
    g = torch.Generator().manual_seed(7)
    d, f, kv = 8 * world, 6 * world, 4 * world
    shapes = {"q_proj": (d, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, d), "gate_proj": (f, d),
              "up_proj": (f, d), "down_proj": (d, f), "input_layernorm": (d,)}
    full = {k: torch.randn(*s, generator=g) for k, s in shapes.items()}
    got, problem = call(fn, dict(full), rank, world)
    if problem:
        return failed(problem)
    if not isinstance(got, dict) or set(got) != set(full):
        return Verdict(False, f"returned {type(got).__name__} with keys {sorted(got) if isinstance(got, dict) else '-'}"
                       f", expected the same keys as the input")
    for k, w in full.items():
        want = w.chunk(world, 0)[rank] if k in COLUMN else w.chunk(world, 1)[rank] if k in ROW else w
        if tuple(got[k].shape) == tuple(want.shape) and torch.equal(got[k], want):
            continue
        if k not in COLUMN + ROW:
            return Verdict(False, f"{k} was changed", "a norm's weight is used whole by every rank: keep it")
        wrong = w.chunk(world, 1)[rank] if k in COLUMN else w.chunk(world, 0)[rank]
        if tuple(got[k].shape) == tuple(wrong.shape) and torch.equal(got[k], wrong):
            return Verdict(False, f"{k} is split along the wrong dimension", "which projections produce this "
                           "rank's heads or features, and which consume them?")
        return Verdict(False, f"{k}: shape {tuple(got[k].shape)}, expected {tuple(want.shape)} (rank {rank}'s "
                       f"block)", "each rank keeps one contiguous block, the one its rank number names")
    return Verdict(True)


def check_shard_layer(fn, world: int | None = None) -> Verdict:
    """``fn(state, rank, world)`` -> this rank's shard of one layer's weights {name: tensor} (Megatron's split)."""
    return run_check(shard_worker, fn, world=world)
