"""The labs' misconception catalogue (``notebooks/labs/README.md``, "What the checks diagnose"): each common wrong
answer planted, and the verdict must name it; a rank that skips or adds a collective gets a verdict that says so
within the bound; nothing a student returns crashes a check; unmatched wrong answers get a description computed
from the output."""
import glob
import math
import os
import tempfile
import time

import pytest
import torch

from ladder_edu import labs
from ladder_edu.labs.describe import as_number, describe, what


# --- lab 1 ----------------------------------------------------------------------------------------------------------
def column_split_along_d_in(x, weight, rank, world):
    d = x.shape[-1] // world
    return x[:, rank * d:(rank + 1) * d] @ weight[:, rank * d:(rank + 1) * d].T


def column_tripled(x, weight, rank, world):
    return 3 * (x @ weight.chunk(world, dim=0)[rank].T)


def row_assigns_the_all_reduce(x_shard, weight, rank, world):
    y = x_shard @ weight.chunk(world, dim=1)[rank].T
    y = dist.all_reduce(y)  # noqa: F821
    return y


def row_rank1_skips_the_all_reduce(x_shard, weight, rank, world):
    y = x_shard @ weight.chunk(world, dim=1)[rank].T
    if rank == 0:
        dist.all_reduce(y)  # noqa: F821
    return y


def row_rank0_extra_all_reduce(x_shard, weight, rank, world):
    y = x_shard @ weight.chunk(world, dim=1)[rank].T
    dist.all_reduce(y)  # noqa: F821
    if rank == 0:
        dist.all_reduce(y.clone())  # noqa: F821
    return y


def row_returns_a_list(x_shard, weight, rank, world):
    y = x_shard @ weight.chunk(world, dim=1)[rank].T
    dist.all_reduce(y)  # noqa: F821
    return y.tolist()


def row_returns_a_tuple(x_shard, weight, rank, world):
    y = x_shard @ weight.chunk(world, dim=1)[rank].T
    dist.all_reduce(y)  # noqa: F821
    return (y,)


def row_in_half_precision(x_shard, weight, rank, world):
    y = x_shard.double() @ weight.chunk(world, dim=1)[rank].double().T
    dist.all_reduce(y)  # noqa: F821
    return y


def tp_mlp_reduces_before_down(x, w_gate, w_up, w_down, rank, world):
    f = w_gate.shape[0] // world
    rows = slice(rank * f, (rank + 1) * f)
    h = F.silu(x @ w_gate[rows].T) * (x @ w_up[rows].T)  # noqa: F821
    dist.all_reduce(h)  # noqa: F821
    return h @ w_down[:, rows].T


def tp_attention_repeat(x, wq, wk, wv, wo, n_heads, n_kv_heads, rank, world):
    hd = wq.shape[0] // n_heads
    hq, hk = n_heads // world, n_kv_heads // world
    q = (x @ wq[rank * hq * hd:(rank + 1) * hq * hd].T).reshape(x.shape[0], hq, hd).transpose(0, 1)
    k = (x @ wk[rank * hk * hd:(rank + 1) * hk * hd].T).reshape(x.shape[0], hk, hd).transpose(0, 1)
    v = (x @ wv[rank * hk * hd:(rank + 1) * hk * hd].T).reshape(x.shape[0], hk, hd).transpose(0, 1)
    k, v = k.repeat(hq // hk, 1, 1), v.repeat(hq // hk, 1, 1)              # repeat, not repeat_interleave
    mask = torch.triu(torch.ones(x.shape[0], x.shape[0], dtype=torch.bool), 1)
    s = (q @ k.transpose(1, 2) / math.sqrt(hd)).masked_fill(mask, float("-inf"))
    y = (s.softmax(-1) @ v).transpose(0, 1).reshape(x.shape[0], -1) @ wo[:, rank * hq * hd:(rank + 1) * hq * hd].T
    dist.all_reduce(y)  # noqa: F821
    return y


# --- lab 2 ----------------------------------------------------------------------------------------------------------
def stream_waits_one_too_many(x, modules, reduce, lag):
    pending = deque()  # noqa: F821
    for module in modules:
        while len(pending) >= lag:
            x = x + pending.popleft().wait()
        pending.append(reduce(module(x)))
    while pending:
        x = x + pending.popleft().wait()
    return x


# --- lab 4 ----------------------------------------------------------------------------------------------------------
def exposed_unmerged(compute, comm):
    merged = []
    for s, e in sorted(compute):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    total = 0.0
    for s, e in comm:                      # each communication interval on its own: overlaps counted twice
        total += e - s - sum(max(0.0, min(e, b) - max(s, a)) for a, b in merged)
    return total


def exposed_none(compute, comm):
    return None


def exposed_list(compute, comm):
    return [e - s for s, e in comm]


CATALOGUE = [
    (labs.check_column_parallel, column_split_along_d_in, "split the weight along d_in"),
    (labs.check_column_parallel, column_tripled, "3 times the right one"),
    (labs.check_row_parallel, row_assigns_the_all_reduce, "returned None"),
    (labs.check_row_parallel, row_returns_a_list, "returned a list"),
    (labs.check_row_parallel, row_returns_a_tuple, "returned a tuple"),
    (labs.check_tp_mlp, tp_mlp_reduces_before_down, "sums the intermediate activations"),
    (labs.check_tp_attention, tp_attention_repeat, "repeated as a block"),
    (labs.check_forward_stream, stream_waits_one_too_many, "more pending outputs than there were"),
]


@pytest.mark.parametrize("check, fn, said", CATALOGUE, ids=[c[1].__name__ for c in CATALOGUE])
def test_each_common_mistake_is_named(check, fn, said):
    v = check(fn)
    assert not v.passed and said in str(v), str(v)


def test_another_dtype_is_read_as_its_values():
    assert labs.check_row_parallel(row_in_half_precision).passed


@pytest.mark.parametrize("fn, said", [(exposed_unmerged, "overlapping communication twice"),
                                      (exposed_none, "returned None, expected one number"),
                                      (exposed_list, "returned a list of")])
def test_lab4_names_its_mistakes_and_never_crashes(fn, said):
    v = labs.check_exposed_communication(fn, {})
    assert not v.passed and said in str(v), str(v)


@pytest.mark.parametrize("fn, said", [
    (row_rank1_skips_the_all_reduce, "rank 1 made 0 collectives where rank 0 made 1 collective (all_reduce)"),
    (row_rank0_extra_all_reduce, "rank 0's 2nd, all_reduce, waited for a partner that never came")])
def test_a_collective_mismatch_is_named_within_the_bound(fn, said, monkeypatch):
    monkeypatch.setenv("LADDER_EDU_CHECK_BOUND_S", "5")
    t0 = time.monotonic()
    v = labs.check_row_parallel(fn)
    assert not v.passed and said in v.problem and "same collectives in the same order" in v.hint, str(v)
    assert time.monotonic() - t0 < 35


def test_no_temporary_folder_is_left_after_a_check():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "*")))
    labs.check_column_parallel(column_tripled)
    labs.check_exposed_communication(exposed_unmerged, {})
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "*"))) <= before


def test_describe_names_the_shape_of_an_error():
    want = torch.arange(12.0).reshape(3, 4) + 1
    assert describe(-want, want) == "every value has the opposite sign"
    assert "0.5 times" in describe(want / 2, want)
    assert describe(want.flip(1), want).startswith("the right values in the wrong columns")
    shifted = torch.cat([want[:1] * 0, want[:-1]])
    assert describe(shifted, want) == "the rows (tokens) are shifted by one position"
    some = want.clone()
    some[2] += 1
    assert describe(some, want) == "rows [0, 1] of 3 are right, the others are not"
    sq = torch.arange(9.0).reshape(3, 3)
    assert describe(sq.T, sq) == "the output is transposed"
    assert "% of the values are right" in describe(torch.rand(3, 4), want)
    assert (as_number(torch.tensor([2.0])), as_number(3), as_number([1]), as_number(True)) == (2.0, 3.0, None, None)
    assert what(None) == "None" and what([1, 2]) == "a list of 2" and what(torch.ones(2, dtype=torch.half)).endswith(
        "float16")


def shard_with_lists(state, rank, world):
    return {k: v.tolist() for k, v in state.items()}


def choose_returns_a_string(costs, k):
    return "the cheapest ones"


@pytest.mark.parametrize("check, fn, args", [(labs.check_shard_layer, shard_with_lists, ()),
                                             (labs.check_choose_layers, choose_returns_a_string, ()),
                                             (labs.check_room, exposed_none, ({},))])
def test_no_check_crashes_on_what_a_student_returns(check, fn, args):
    v = check(fn, *args)
    assert not v.passed and v.problem, str(v)


def test_passing_something_that_is_not_a_function_is_a_one_line_error():
    with pytest.raises(TypeError, match="pass your function itself"):
        labs.check_column_parallel("column_parallel")


def test_one_switch_keeps_a_class_on_cpu_ranks_on_a_gpu_node(monkeypatch):
    """``LADDER_EDU_DEVICE=cpu``: gloo and 2 CPU ranks even where 8 GPUs are visible (the GPU count is all this
    reads of CUDA); a check then runs on gloo ranks and says so. Any other value is refused with the choices."""
    from ladder_edu.tp import launch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setenv("LADDER_EDU_DEVICE", "cpu")
    assert (launch.default_backend(2), launch.default_world_size()) == ("gloo", 2)
    monkeypatch.setenv("LADDER_EDU_DEVICE", "gpu")
    with pytest.raises(launch.LaunchError, match="valid: auto, cpu"):
        launch.default_backend(2)
    monkeypatch.undo()
    monkeypatch.setenv("LADDER_EDU_DEVICE", "cpu")
    v = labs.check_column_parallel(lambda_free_column)
    assert v.passed and "(gloo)" in v.problem


def lambda_free_column(x, weight, rank, world):
    return x @ weight.chunk(world, dim=0)[rank].T


def row_averaged(x_shard, weight, rank, world):
    y = x_shard @ weight.chunk(world, dim=1)[rank].T
    dist.all_reduce(y, op=dist.ReduceOp.AVG if dist.get_backend() == "nccl" else dist.ReduceOp.SUM)  # noqa: F821
    return y / world if dist.get_backend() != "nccl" else y  # noqa: F821 - gloo has no AVG: the same average


def stream_joins_the_newest_first(x, modules, reduce, lag):
    pending = deque()  # noqa: F821
    for module in modules:
        while len(pending) > lag:
            x = x + pending.pop().wait()
        pending.append(reduce(module(x)))
    while pending:
        x = x + pending.pop().wait()
    return x


@pytest.mark.parametrize("check, fn, said", [
    (labs.check_row_parallel, row_averaged, "the reduction averaged"),
    (labs.check_forward_stream, stream_joins_the_newest_first, "joined the newest pending output")])
def test_more_common_mistakes_are_named(check, fn, said):
    v = check(fn)
    assert not v.passed and said in v.problem, str(v)


def stream_waits_at_once_but_adds_later(x, modules, reduce, lag):
    ready = []
    for module in modules:
        while len(ready) > lag:
            x = x + ready.pop(0)
        ready.append(reduce(module(x)).wait())            # waits at once: the values are right, nothing overlaps
    while ready:
        x = x + ready.pop(0)
    return x


def stream_reduces_at_join_time(x, modules, reduce, lag):
    outs = []
    for module in modules:
        while len(outs) > lag:
            x = x + reduce(outs.pop(0)).wait()
        outs.append(module(x))
    while outs:
        x = x + reduce(outs.pop(0)).wait()
    return x


@pytest.mark.parametrize("fn, said", [(stream_waits_at_once_but_adds_later, "could not overlap module"),
                                      (stream_reduces_at_join_time, "had not started when module")])
def test_a_loop_with_the_right_values_and_no_overlap_is_named(fn, said):
    v = labs.check_forward_stream(fn)
    assert not v.passed and said in v.problem, str(v)
