"""Lab 1, part 2: a tensor-parallel SwiGLU MLP and a tensor-parallel grouped-query attention, on real ranks.

MLP (Megatron):      y = W_down (silu(W_gate x) * (W_up x)); gate and up column-parallel (rank r keeps rows r of
                     both, the same intermediate features), down row-parallel (its columns r), one all-reduce:
                     y = sum_r W_down[:, F_r] (silu(W_gate[F_r] x) * (W_up[F_r] x)).
Attention (GQA):     H query heads share K kv heads in groups of G = H/K: query head h reads kv head h // G.
                     Rank r keeps query heads r H/n .. (r+1) H/n - 1 and kv heads r K/n .. (r+1) K/n - 1 (the same
                     groups, so no rank needs another's K or V), computes softmax(q k^T / sqrt(d) + causal) v for
                     them, and its partial o_r Wo[:, cols r]^T is all-reduced.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .describe import describe, what
from .runner import Misconception, Verdict, call, diagnose, failed, on_rank, run_check

TOKENS, HEAD_DIM = 5, 4


def _rand(g, *shape):
    return torch.randn(*shape, generator=g)


def _blocks(f: int, world: int) -> list[slice]:
    """Each rank's block of ``f`` intermediate features."""
    return [slice(r * f // world, (r + 1) * f // world) for r in range(world)]


def mlp_reference(x, wg, wu, wd, act=F.silu):
    return (act(x @ wg.T) * (x @ wu.T)) @ wd.T


def _heads(t, n):                     # [T, n*d] -> [n, T, d]
    return t.reshape(t.shape[0], n, -1).transpose(0, 1)


def attention_reference(x, wq, wk, wv, wo, n_heads, n_kv, causal=True, scale=True, group=None):
    """Plain causal GQA on one device (no RoPE: positions do not matter for this exercise)."""
    q, k, v = _heads(x @ wq.T, n_heads), _heads(x @ wk.T, n_kv), _heads(x @ wv.T, n_kv)
    g = n_heads // n_kv
    idx = group if group is not None else [h // g for h in range(n_heads)]
    k, v = k[idx], v[idx]
    s = q @ k.transpose(1, 2) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if causal:
        s = s.masked_fill(torch.triu(torch.ones(s.shape[-2:], dtype=torch.bool), 1), float("-inf"))
    o = (s.softmax(-1) @ v).transpose(0, 1).reshape(x.shape[0], -1)
    return o @ wo.T


def _close(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def _judge(result, want, mistakes) -> Verdict:
    """The verdict on ``result`` = ``call(...)``'s (output, problem) against ``want``, naming a ``mistakes`` match."""
    got, problem = result
    if problem:
        return failed(problem)
    got = got.detach().float().cpu() if isinstance(got, torch.Tensor) else got
    if not isinstance(got, torch.Tensor):
        return Verdict(False, f"returned {what(got)}, expected a tensor of shape {tuple(want.shape)}")
    if tuple(got.shape) != tuple(want.shape):
        return Verdict(False, f"returned shape {tuple(got.shape)}, expected {tuple(want.shape)} (the whole output "
                       f"on every rank)", "which dimension of each weight holds the features this rank owns?")
    if _close(got, want):
        return Verdict(True)
    m = diagnose(got, (), mistakes, _close)
    if m:
        return Verdict(False, m.problem, m.hint)
    return Verdict(False, describe(got, want),
                   "compare each rank's partial result with the single-device formula in the lab's text")


def mlp_worker(source: str, name: str) -> Verdict:
    fn, bad, rank, world, dev = on_rank(source, name)
    if bad:
        return bad
    g = torch.Generator().manual_seed(1)
    d, f = 8, 6 * world
    x, wg, wu, wd = _rand(g, TOKENS, d), _rand(g, f, d) / 3, _rand(g, f, d) / 3, _rand(g, d, f) / 3
    want = mlp_reference(x, wg, wu, wd)
    rows = slice(rank * f // world, (rank + 1) * f // world)
    partial = mlp_reference(x, wg[rows], wu[rows], wd[:, rows])
    return _judge(call(fn, *(t.to(dev) for t in (x, wg, wu, wd)), rank, world), want, [
        Misconception(lambda: partial, "each rank returned only its partial sum", "the down projection is "
                      "row-parallel: its outputs are partial sums that every rank must add up"),
        Misconception(lambda: want / world, "every value is 1/world_size of the sum: the reduction averaged",
                      "the ranks' partial outputs add up to the answer: which reduction adds?"),
        Misconception(lambda: world * want, "the output is world_size times too large", "something whole was summed "
                      "over ranks: each rank's share must be a part, added once"),
        Misconception(lambda: sum(F.silu(x @ wg[r].T) * (x @ wu[r].T) for r in _blocks(f, world)) @ wd[:, rows].T,
                      "the all-reduce sums the intermediate activations, before the down projection",
                      "each rank's intermediate features are different features, not parts of one sum: where "
                      "does a partial sum first appear?"),
        Misconception(lambda: mlp_reference(x, wg, wu, wd, F.relu), "the activation is not SiLU",
                      "SwiGLU multiplies the SiLU of the gate projection by the up projection"),
        Misconception(lambda: world * partial, "the output is world_size times too large",
                      "the all-reduce already sums over ranks")])


def attention_worker(source: str, name: str) -> Verdict:
    fn, bad, rank, world, dev = on_rank(source, name)
    if bad:
        return bad
    g = torch.Generator().manual_seed(2)
    n_heads, n_kv = 4 * world, 2 * world
    d = 16
    x = _rand(g, TOKENS, d)
    wq, wk, wv = _rand(g, n_heads * HEAD_DIM, d) / 4, _rand(g, n_kv * HEAD_DIM, d) / 4, _rand(g, n_kv * HEAD_DIM, d) / 4
    wo = _rand(g, d, n_heads * HEAD_DIM) / 4
    want = attention_reference(x, wq, wk, wv, wo, n_heads, n_kv)
    qh = slice(rank * n_heads // world * HEAD_DIM, (rank + 1) * n_heads // world * HEAD_DIM)
    kh = slice(rank * n_kv // world * HEAD_DIM, (rank + 1) * n_kv // world * HEAD_DIM)
    partial = attention_reference(x, wq[qh], wk[kh], wv[kh], wo[:, qh], n_heads // world, n_kv // world)
    _blk = lambda r, n: slice(r * n // world * HEAD_DIM, (r + 1) * n // world * HEAD_DIM)   # noqa: E731
    return _judge(call(fn, *(t.to(dev) for t in (x, wq, wk, wv, wo)), n_heads, n_kv, rank, world), want, [
        Misconception(lambda: partial, "each rank returned only its partial sum", "the output projection is "
                      "row-parallel: its outputs are partial sums of the heads each rank owns"),
        Misconception(lambda: want / world, "every value is 1/world_size of the sum: the reduction averaged",
                      "the ranks' partial outputs add up to the answer: which reduction adds?"),
        Misconception(lambda: world * want, "the output is world_size times too large",
                      "something whole was summed over ranks"),
        Misconception(lambda: attention_reference(x, wq, wk, wv, wo, n_heads, n_kv,
                                                  group=[h % n_kv for h in range(n_heads)]),
                      "query heads read the wrong kv heads", "grouped-query attention groups *neighbouring* query "
                      "heads: which kv head does query head h share?"),
        Misconception(lambda: sum(attention_reference(
                          x, wq[_blk(r, n_heads)], wk[_blk(r, n_kv)], wv[_blk(r, n_kv)], wo[:, _blk(r, n_heads)],
                          n_heads // world, n_kv // world,
                          group=[j % (n_kv // world) for j in range(n_heads // world)]) for r in range(world)),
                      "query heads read the wrong kv heads (each kv head repeated as a block, not per group)",
                      "grouped-query attention groups *neighbouring* query heads: which kv head does query head h "
                      "share, and does repeating the kv heads keep that order?"),
        Misconception(lambda: attention_reference(x, wq, wk, wv, wo, n_heads, n_kv, causal=False),
                      "a token attended to later tokens",
                      "a decoder's attention is causal: position t may read positions 0 .. t only"),
        Misconception(lambda: attention_reference(x, wq, wk, wv, wo, n_heads, n_kv, scale=False),
                      "the scores are not scaled",
                      "scaled dot-product attention divides the scores by the square root of the head size")])


def check_tp_mlp(fn, world: int | None = None) -> Verdict:
    """``fn(x, w_gate, w_up, w_down, rank, world)`` -> the whole SwiGLU MLP output on every rank (TP)."""
    return run_check(mlp_worker, fn, world=world)


def check_tp_attention(fn, world: int | None = None) -> Verdict:
    """``fn(x, wq, wk, wv, wo, n_heads, n_kv_heads, rank, world)`` -> the whole causal GQA output on every rank."""
    return run_check(attention_worker, fn, world=world)
