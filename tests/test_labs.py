"""Classroom labs: every check passes the solution and names the bug of a planted wrong answer (the nbgrader
release and grading: test_grading.py)."""
import os

import pytest

from ladder_edu import labs

LABS = os.path.join(os.path.dirname(__file__), "..", "notebooks", "labs")


# --- the solutions (the same code as the solution notebooks) and planted wrong answers ----------------------------
def column_parallel(x, weight, rank, world):
    return x @ weight.chunk(world, dim=0)[rank].T


def column_whole(x, weight, rank, world):
    return x @ weight.T


def column_other_rank(x, weight, rank, world):
    return x @ weight.chunk(world, dim=0)[(rank + 1) % world].T


def row_parallel(x_shard, weight, rank, world):
    y = x_shard @ weight.chunk(world, dim=1)[rank].T
    dist.all_reduce(y)  # noqa: F821 - the ranks provide dist
    return y


def row_no_all_reduce(x_shard, weight, rank, world):
    return x_shard @ weight.chunk(world, dim=1)[rank].T


def row_wrong_dim(x_shard, weight, rank, world):
    return x_shard @ weight.chunk(world, dim=0)[rank].T


def stub(*args):
    raise NotImplementedError("your code here")


def forward_stream(x, modules, reduce, lag):
    outs, joined = [], 0                    # written unlike the reference: an index of the outputs already joined
    for module in modules:
        for out in outs[joined:len(outs) - lag]:
            x = x + out.wait()
        joined = max(joined, len(outs) - lag)
        outs.append(reduce(module(x)))
    for out in outs[joined:]:
        x = x + out.wait()
    return x


def stream_ignoring_lag(x, modules, reduce, lag):
    for module in modules:
        x = x + reduce(module(x)).wait()
    return x


def stream_without_drain(x, modules, reduce, lag):
    pending = deque()  # noqa: F821
    for module in modules:
        while len(pending) > lag:
            x = x + pending.popleft().wait()
        pending.append(reduce(module(x)))
    return x


@pytest.mark.parametrize("fn, ok, problem", [
    (column_parallel, True, ""), (column_whole, False, "expected (4, 12)"),
    (column_other_rank, False, "returned rank"), (stub, False, "not written yet")])
def test_column_parallel_check(fn, ok, problem):
    v = labs.check_column_parallel(fn)
    assert v.passed == ok and problem in str(v), str(v)


@pytest.mark.parametrize("fn, ok, hint", [
    (row_parallel, True, ""), (row_no_all_reduce, False, "only its partial sum"),
    (row_wrong_dim, False, "check which dimension you sharded")])
def test_row_parallel_check(fn, ok, hint):
    v = labs.check_row_parallel(fn)
    assert v.passed == ok and hint in str(v), str(v)


@pytest.mark.parametrize("fn, ok, hint", [
    (forward_stream, True, ""), (stream_ignoring_lag, False, "waits for every all-reduce"),
    (stream_without_drain, False, "never joined the stream")])
def test_forward_stream_check(fn, ok, hint):
    v = labs.check_forward_stream(fn)
    assert v.passed == ok and hint in str(v), str(v)


def predicted(model, gpu, tp, batch):
    from ladder_edu import get_config
    from ladder_edu.perf.model.hardware import get_hardware
    from ladder_edu.perf.model.perfmodel import predict
    return predict(get_config(model), get_hardware(gpu), tp, batch)["ladder"].speedup_vs_standard


def predicted_batch_1(model, gpu, tp, batch):
    from ladder_edu import get_config
    from ladder_edu.perf.model.hardware import get_hardware
    from ladder_edu.perf.model.perfmodel import predict
    return predict(get_config(model), get_hardware(gpu), tp, 1)["ladder"].speedup_vs_standard


def test_predicted_speedup_check():
    assert labs.check_predicted_speedup(predicted).passed
    v = labs.check_predicted_speedup(predicted_batch_1)
    assert not v.passed and "pass the batch size" in str(v)


def exposed(compute, comm):
    def merge(intervals):
        out = []
        for s, e in sorted(intervals):
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        return out
    busy = merge(comm)
    return sum(e - s for s, e in busy) - sum(max(0.0, min(e, b) - max(s, a)) for s, e in busy for a, b in merge(compute))


def exposed_all(compute, comm):
    return sum(e - s for s, e in comm)


def exposed_unmerged(compute, comm):
    def merge(intervals):
        out = []
        for s, e in sorted(intervals):
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        return out
    overlap = sum(max(0.0, min(e, b) - max(s, a)) for s, e in merge(comm) for a, b in merge(compute))
    return sum(e - s for s, e in comm) - overlap


def test_exposed_communication_check():
    from ladder_edu.labs.profile_checks import traces
    profiled = traces(tp=2, steps=1)
    res = labs.check_exposed_communication(exposed, profiled)
    assert res.passed and len(res.rows) == 4
    v = labs.check_exposed_communication(exposed_all, profiled)
    assert not v.passed and "you counted all communication" in str(v)
    v = labs.check_exposed_communication(exposed_unmerged, profiled)
    assert not v.passed and "overlapping communication twice" in str(v)


def lags(n_layers, k):
    return [1 if i >= n_layers - k else 0 for i in range(n_layers)]


def lags_bottom(n_layers, k):
    return [1 if i < k else 0 for i in range(n_layers)]


def lags_off_by_one(n_layers, k):
    return [1 if i > n_layers - k else 0 for i in range(n_layers)]


def test_ladder_lags_check():
    assert labs.check_ladder_lags(lags).passed
    assert "bottom k layers" in str(labs.check_ladder_lags(lags_bottom))
    assert "off by one" in str(labs.check_ladder_lags(lags_off_by_one))


def test_a_syntax_error_is_a_verdict_not_a_crash():
    from ladder_edu.labs.runner import load
    fn, problem = load("def f(:\n    pass\n", "f")
    assert fn is None and not problem.passed and "does not compile" in problem.problem


