"""The overlap analysis: exact numbers on hand-made traces, an independent check on a real gloo fixture, sane
numbers on plain torch.profiler code, and ladder exposing less communication than standard in a live profile."""
import os

import pytest

from ladder_edu.tp import launch
from ladder_edu.profiling.overlap import analyze, classify, intersection, load_trace, union
from tests import workers

DATA = os.path.join(os.path.dirname(__file__), "data")


def X(name, ts, dur, tid=1, cat="user_annotation"):
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": tid, "cat": cat}


def test_interval_arithmetic_by_hand():
    assert union([(5, 7), (0, 2), (1, 3)]) == [(0, 3), (5, 7)]
    assert intersection([(0, 3), (5, 7)], [(2, 6)]) == 2.0          # [2,3] and [5,6]


def test_synthetic_cpu_trace_by_hand():
    """Main thread (tid 1): L0.attn [0,100], starts its all-reduce [100,104], L0.mlp [104,200], waits [200,230],
    L1.attn [230,300], lm_head [300,320]. Gloo thread (tid 9): the all-reduce [102,150], a second one [200,260]
    (started as L0.mlp:all_reduce at 198), and a barrier [400,450] that must be ignored.

    compute = 100 + 96 + 70 + 20 = 286; comm = 48 + 60 = 108;
    overlapped = [104,150] (46) + [230,260] (30) = 76; exposed = 108 - 76 = 32.
    Room: L0.attn's all-reduce is in flight from 104 (its start region ends) to 200 (its wait begins), and L0.mlp
    computes all of it: 96; L0.mlp's all-reduce is never waited in this trace, so it has no window.
    Per layer: L0.attn's all-reduce [102,150] overlaps [104,150] = 46 -> exposed 2;
    L0.mlp's all-reduce [200,260] overlaps [230,260] = 30 -> exposed 30.
    """
    trace = {"traceEvents": [
        X("L0.attn", 0, 100), X("L0.attn:all_reduce", 100, 4), X("L0.mlp", 104, 96),
        X("L0.mlp:all_reduce", 198, 2), X("L0.attn:wait", 200, 30), X("L1.attn", 230, 70), X("lm_head", 300, 20),
        X("gloo:all_reduce", 102, 48, tid=9), X("gloo:all_reduce", 200, 60, tid=9), X("gloo:barrier", 400, 50, tid=9),
        X("aten::mm", 10, 50, cat="cpu_op")]}
    rep = analyze(trace, rank=0, steps=2)
    assert (rep.total.compute_us, rep.total.comm_us) == (286, 108)
    assert (rep.total.overlapped_us, rep.total.exposed_comm_us) == (76, 32)
    assert rep.per_step()["exposed_comm_us"] == 16
    assert (rep.room_us, rep.per_step()["room_us"]) == (96, 48)
    layer0 = rep.layers[0]
    assert layer0 == {"layer": 0, "compute_us": 196, "comm_us": 108, "overlapped_us": 76, "exposed_comm_us": 32}
    parts = classify(trace)
    assert [(c.name, c.layer) for c in parts["comm"]] == [("L0.attn", 0), ("L0.mlp", 0)]
    assert [w.name for w in parts["wait"]] == ["L0.attn:wait"]


def test_synthetic_nccl_trace_by_hand():
    """GPU kernels: compute A [0,100], B [150,250]; NCCL [80,200]; a sync kernel [200,260] and a memcpy [0,300]
    are not compute. compute = 200, comm = 120, overlapped = 20 + 50 = 70, exposed = 50."""
    k = "kernel"
    trace = {"traceEvents": [
        X("ampere_sgemm_128x64_nn", 0, 100, tid=7, cat=k), X("void elementwise_kernel", 150, 100, tid=7, cat=k),
        X("ncclDevKernel_AllReduce_Sum_f32_RING_LL", 80, 120, tid=20, cat=k),
        X("cudaStreamSynchronize_spin_kernel_sync", 200, 60, tid=7, cat=k), X("Memcpy DtoD", 0, 300, tid=7, cat=k),
        X("aten::mm", 0, 500, tid=1, cat="cpu_op")]}
    rep = analyze(trace, rank=0)
    assert rep.device == "gpu"
    assert (rep.total.compute_us, rep.total.comm_us, rep.total.overlapped_us, rep.total.exposed_comm_us) == \
        (200, 120, 70, 50)
    assert rep.room_us is None and rep.per_step()["room_us"] is None     # host-side windows say nothing on a GPU


def _brute_force(intervals_a, intervals_b, lo, hi):
    """Independent oracle: rasterise to 1 us and count."""
    n = int(hi - lo) + 2
    a, b = bytearray(n), bytearray(n)
    for arr, ivs in ((a, intervals_a), (b, intervals_b)):
        for i in ivs:
            for t in range(int(i.start - lo), int(i.end - lo)):
                arr[t] = 1
    return sum(a), sum(b), sum(x & y for x, y in zip(a, b))


def test_real_gloo_fixture_against_brute_force():
    trace = load_trace(os.path.join(DATA, "gloo_ladder_tiny_rank0.json.gz"))
    parts = classify(trace)
    assert parts["device"] == "cpu"
    assert len(parts["comm"]) == 2 * 8                                  # 2 steps x 4 layers x (attn, mlp)
    assert sorted({c.layer for c in parts["comm"]}) == [0, 1, 2, 3]
    assert {c.kind for c in parts["compute"]} == {"attn", "mlp", "lm_head"}
    rep = analyze(trace)
    assert rep.steps == 2 and rep.rank == 0
    lo = min(i.start for i in parts["compute"] + parts["comm"])
    hi = max(i.end for i in parts["compute"] + parts["comm"])
    comp, comm, both = _brute_force(parts["compute"], parts["comm"], lo, hi)
    n = len(parts["compute"]) + len(parts["comm"])                     # rounding: at most 1 us per interval edge
    assert abs(rep.total.compute_us - comp) <= 2 * n
    assert abs(rep.total.comm_us - comm) <= 2 * n
    assert abs(rep.total.overlapped_us - both) <= 2 * n
    assert rep.total.overlapped_us > 0
    assert sum(lay["comm_us"] for lay in rep.layers) == pytest.approx(rep.total.comm_us, abs=1e-6)


def test_plain_torch_profiler_trace_gives_sane_numbers(tmp_path):
    paths = launch.run(workers.plain_profiler_trace, 2, str(tmp_path / "plain_rank"))
    for rank, path in enumerate(paths):
        rep = analyze(load_trace(path))
        t = rep.total
        assert rep.rank == rank and rep.device == "cpu"
        assert t.compute_us > 0 and t.comm_us > 0
        assert 0 <= t.overlapped_us <= min(t.compute_us, t.comm_us)
        assert t.exposed_comm_us == pytest.approx(t.comm_us - t.overlapped_us)
        assert all(v == v for v in vars(t).values())                     # no NaN (HTA's answer on gloo traces)


def test_in_flight_windows_pair_each_start_with_its_own_wait():
    """Two all-reduces of L0.attn (two steps) and one of L0.mlp: the k-th start pairs with the k-th wait of the
    same module, whatever order the other module's regions come in."""
    from ladder_edu.profiling.overlap import Interval, in_flight_windows
    starts = [X("L0.attn:all_reduce", 0, 5), X("L0.mlp:all_reduce", 10, 5), X("L0.attn:all_reduce", 40, 5)]
    waits = [Interval(20, 22, "L0.attn:wait", "wait", 0), Interval(30, 31, "L0.mlp:wait", "wait", 0),
             Interval(60, 61, "L0.attn:wait", "wait", 0)]
    assert in_flight_windows(starts, waits) == [(5, 20), (15, 30), (45, 60)]


def test_live_profile_room_is_zero_for_standard_and_positive_for_ladder(tmp_path):
    """Room is fixed by program order (standard waits right after it starts; ladder one module later), so unlike
    the measured overlap it cannot depend on how the OS schedules gloo's threads on 2 cores."""
    from ladder_edu import get_config
    from ladder_edu.profiling.trace import profile
    traces = profile(get_config("tiny"), ["standard", "parallel", "ladder"], 2, "decode", str(tmp_path), steps=2)
    for variant, paths in traces.items():
        for rank, path in enumerate(paths):
            trace = load_trace(path)
            rep = analyze(trace, rank=rank)
            if variant == "ladder":
                # every ladder all-reduce but the last module's has the next module inside its window
                assert rep.room_us > 0, (variant, rank)
                parts = classify(trace)
                assert len(parts["in_flight"]) == len(parts["comm"])
            else:
                assert rep.room_us == 0, (variant, rank, rep.room_us)


def test_quiet_profiler_stderr_drops_only_usdt_lines(capfd):
    from ladder_edu.profiling.trace import quiet_profiler_stderr
    with quiet_profiler_stderr():
        os.write(2, b"USDT:2026-11-23 12:25:42 13851:13851 SyncActivityProfilerHandler.cpp:52] profiler_start"
                    b"USDT:2026-11-23 12:25:42 1:1 SyncActivityProfilerHandler.cpp:59] profiler_stop\n"
                    b"a real warning\n")
    assert capfd.readouterr().err == "a real warning\n"


def test_timeline_explorer_redraws_with_the_chosen_window(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from ladder_edu.teach import widgets
    calls = []
    real = widgets.draw_timeline
    monkeypatch.setattr(widgets, "draw_timeline", lambda *a, **k: calls.append(k) or real(*a, **k))
    fixture = os.path.join(DATA, "gloo_ladder_tiny_rank0.json.gz")
    box = widgets.timeline_explorer({"ladder": [fixture]})
    rank, step, layers = box.children[0].children
    assert [o[1] for o in step.options] == [0, 1] and layers.max == 3
    layers.value = (1, 2)                   # each change redraws
    step.value = 0
    rank.value = 0
    assert calls[-1] == {"step": 0, "layers": (1, 2), "ranks": [0]}


def test_a_kraken_profile_has_communication_in_every_layer_on_every_rank(tmp_path):
    """Kraken all-reduces the sum of its splits once per layer ("L3.out") and its joining linear once ("conj"):
    every one is found, paired with its start, and given its layer."""
    from ladder_edu import get_config
    from ladder_edu.profiling.trace import profile
    cfg = get_config("tiny")
    paths = profile(cfg, ["kraken"], 2, "decode", str(tmp_path), steps=1, warmup=1)["kraken"]
    for rank, path in enumerate(paths):
        parts = classify(load_trace(path))
        layers = {i.layer for i in parts["comm"]}
        assert set(range(cfg.n_layers - 1)) <= layers, (rank, layers)      # the last layer's sum is the conj's
        assert None in layers and len(parts["in_flight"]) == len(parts["comm"])
        assert analyze(load_trace(path), rank=rank).layers, rank
