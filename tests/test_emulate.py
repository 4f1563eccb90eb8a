"""Emulated rank: one rank's shard on one device, all-reduces replaced by waits of the modeled duration."""
import contextlib
import os
import time

import pytest
import torch

from ladder_edu.models.config import get_config
from ladder_edu.models.spec import RunSpec
from ladder_edu.perf.measure.emulate import ModeledGroup, allreduce_seconds, emulated_benchmark, emulated_rank_model
from ladder_edu.perf.model.deployment import Deployment
from ladder_edu.perf.model.perfmodel import HARDWARE


def test_modeled_all_reduce_takes_the_modeled_time_and_overlaps_compute():
    hw = HARDWARE["rtx4090-pcie"].with_(comm_us=10_000.0)          # 10 ms per all-reduce: easy to time
    group = ModeledGroup(hw, 2, torch.device("cpu"))
    try:
        t = torch.ones(4)
        expected = allreduce_seconds(hw, 2, 16)
        t0 = time.perf_counter()
        handle = group.all_reduce(t)
        time.sleep(expected / 2)                  # "compute" while the modeled all-reduce is in flight
        handle.wait()
        elapsed = time.perf_counter() - t0
        assert expected <= elapsed < expected + 0.05           # the sleep hid under it: overlap, not a sum
        t0 = time.perf_counter()
        first, second = group.all_reduce(t), group.all_reduce(t)
        second.wait()
        assert time.perf_counter() - t0 >= 2 * expected        # one link: collectives run one after another
        first.wait()
        assert group.modeled_seconds == pytest.approx(3 * expected)
    finally:
        group.close()


def test_emulated_shard_has_one_nth_of_each_layer():
    cfg = get_config("llama-3-70b", n_layers=1, vocab_size=256, max_seq_len=64)
    model, group = emulated_rank_model(cfg, "ladder", HARDWARE["h100-nvlink"], 8, device="cpu")
    group.close()
    attn = model.layers[0].self_attn
    assert (attn.n_heads, attn.n_kv_heads) == (8, 1)
    assert model.layers[0].mlp.w13.weight.shape == (2 * 28672 // 8, 8192)            # [gate_r; up_r]


def test_variants_share_the_shard_weights():
    """Four variants of a 70B shard fit where one does only if no weight is copied: the fused projections load as
    new tensors and must be pointed back at the base model's."""
    from ladder_edu.perf.measure.emulate import variant_models
    cfg = get_config("tiny")
    base, group = emulated_rank_model(cfg, "standard", HARDWARE["h100-nvlink"], 2, "cpu")
    try:
        models = variant_models(base, cfg, ["standard", "ladder", "upper_bound"], "float32", 1, 16)
        mine = {n: p.data_ptr() for n, p in base.named_parameters()}
        for m in models.values():
            assert {n: p.data_ptr() for n, p in m.named_parameters()} == mine
            m(torch.zeros(1, 4, dtype=torch.long))                     # and the shared weights run
    finally:
        group.close()


def test_emulated_benchmark_runs_every_variant_and_says_it_is_modeled():
    res = emulated_benchmark(RunSpec(get_config("tiny"), 4, steps=2, rounds=1, context=8), HARDWARE["h100-no-p2p"])
    assert [r.variant for r in res.rows] == ["standard", "parallel", "ladder", "upper_bound"]
    assert "MODELED" in res.backend and "MODELED" in res.table()


def _schedule(arch: str, ladder_layers=0):
    """Where one decode step of a 2-layer emulated rank starts each all-reduce and waits for it (program order):
    the places a CUDA graph of the step forks and joins its compute and communication streams (graphed.py)."""
    from ladder_edu.models.model import Transformer
    from ladder_edu.tp.parallel import TPGroup
    cfg = get_config("tiny", n_layers=2, arch=arch, ladder_layers=ladder_layers)
    group = ModeledGroup(HARDWARE["h100-nvlink"], 2, torch.device("cpu"))
    try:
        torch.manual_seed(0)
        model = Transformer(cfg, TPGroup(0, 2, group, emulated=True), torch.float32, torch.device("cpu")).eval()
        model.setup_cache(1, 16)
        tokens = torch.randint(0, cfg.vocab_size, (1, 5))
        with torch.no_grad():
            model(tokens[:, :4], 0)
            schedule = group.record_schedule()
            model(tokens[:, 4:], 4)
        return [f"{what[0]}{k}" for what, k in schedule]
    finally:
        group.close()


def test_emulated_rank_waits_where_the_due_rule_says():
    # modules: 0 = L0.attn, 1 = L0.mlp, 2 = L1.attn, 3 = L1.mlp (parallel: one module per layer)
    assert _schedule("standard") == ["s0", "w0", "s1", "w1", "s2", "w2", "s3", "w3"]
    assert _schedule("ladder") == ["s0", "s1", "w0", "s2", "w1", "s3", "w2", "w3"]     # one module later
    assert _schedule("parallel") == ["s0", "w0", "s1", "w1"]
    # layer 1 alone ladder: its attention runs while L0.mlp's all-reduce is in flight, its MLP beside its own
    # attention's; L0.attn's is waited for at once (layer 0 is standard)
    assert _schedule("standard", ladder_layers=(1,)) == ["s0", "w0", "s1", "s2", "w1", "s3", "w2", "w3"]


def test_graphed_rank_refuses_a_cpu_with_the_way_out():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: tests/test_gpu.py runs the graph")
    from ladder_edu.perf.measure.graphed import graphed_benchmark
    with pytest.raises(RuntimeError, match="needs a CUDA GPU.*--emulate-tp N without --graph"):
        graphed_benchmark(RunSpec(get_config("tiny"), 2), HARDWARE["h100-nvlink"])


def test_streamed_bytes_count_every_weight_but_the_embedding_table():
    from ladder_edu.perf.measure.graphed import streamed_bytes
    cfg = get_config("tiny")
    model, group = emulated_rank_model(cfg, "standard", HARDWARE["h100-nvlink"], 2, device="cpu")
    group.close()
    total = sum(p.numel() * 4 for p in model.parameters())
    embed = model.embed_tokens.weight.numel() * 4
    tied = any(p is model.embed_tokens.weight for n, p in model.named_parameters() if not n.startswith("embed"))
    assert streamed_bytes(model) == (total if tied else total - embed)


def test_graphed_rank_table_puts_the_replay_next_to_the_model():
    from ladder_edu.perf.measure.bench import summarize
    from ladder_edu.perf.measure.graphed import GraphedRank
    from ladder_edu.perf.model.perfmodel import forward_time
    cfg, hw = get_config("llama-3-70b", n_layers=2), HARDWARE["h100-nvlink"]
    times = {"standard": [2e-3, 2.2e-3], "ladder": [1.6e-3, 1.7e-3], "upper_bound": [1.5e-3, 1.5e-3]}
    bench = summarize(cfg, 8, "1 GPU, CUDA graph, all-reduces MODELED", 1, 1024, times, "n/a")
    predicted = {v: 1e3 * forward_time(v, Deployment(cfg, hw, 8), 1, 1032) for v in times}
    res = GraphedRank(bench, predicted, 0.3, 0.2, "a GPU", hw.name, {})
    assert res.predicted_speedup("ladder") > 1 == res.predicted_speedup("standard")
    lines = res.table().splitlines()
    assert "MODELED" in lines[0] and "HBM floor" in lines[-1]
    ladder = next(line for line in lines if line.strip().startswith("ladder"))
    assert f"{2.1 / 1.65:.3f}x" in ladder and f"{res.predicted_speedup('ladder'):.3f}x" in ladder


@pytest.mark.parametrize("variant", ["standard", "ladder", "parallel"])
@pytest.mark.parametrize("compute_ms,link_ms", [(2.0, 1.5), (1.0, 2.0), (1.5, 0.3)])
def test_the_link_is_the_critical_paths_communication_lane(variant, compute_ms, link_ms):
    """A schedule of known compute (a spin of a set length) and link times, waited for by the due rule, takes what
    the critical-path model predicts for it: within 3% + 0.5 ms (timer and Python overhead; the schedule lasts
    20-60 ms). A link that handed each wait to a second thread would add that thread's wake-up to every
    all-reduce and fail here."""
    from ladder_edu.perf.model import critical_path as cp
    from ladder_edu.perf.measure.emulate import wait_until
    c, a = compute_ms / 1e3, link_ms / 1e3
    mods = cp.modules(variant, 8, c, c, a)
    lanes = cp.Lanes()
    for m in mods:
        cp.step(lanes, m, 0.0)
    predicted = cp.finish(lanes)
    group = ModeledGroup(HARDWARE["h100-nvlink"], 2, torch.device("cpu"), link=lambda nbytes: a)
    t, pending, measured = torch.ones(4), [], []
    with _first_in_line():
        for _ in range(5):                                   # best of 5: a preempted run is only ever slower
            measured.append(_run_schedule(mods, group, t, pending, wait_until))
    assert min(measured) == pytest.approx(predicted, rel=0.03, abs=5e-4)


def _run_schedule(mods, group, t, pending, wait_until) -> float:
    t0 = time.perf_counter()
    for m in mods:
        while len(pending) > m.lag:                          # the due rule: only the `lag` newest may be in flight
            pending.pop(0).wait()
        wait_until(time.perf_counter() + m.compute)          # compute of a known length
        if m.comm:
            pending.append(group.all_reduce(t))
    while pending:
        pending.pop(0).wait()
    return time.perf_counter() - t0


@contextlib.contextmanager
def _first_in_line():
    """Run the calling thread in a real-time class while it times (where allowed: root or CAP_SYS_NICE), so that
    other tests running beside it on the same cores delay neither the compute nor the wake-up at a deadline: the
    test measures the link, not the machine's load."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(5))
        raised = True
    except (AttributeError, PermissionError, OSError):
        raised = False
    try:
        yield
    finally:
        if raised:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def test_profile_of_the_emulated_link_reads_as_a_trace(tmp_path):
    """The modeled all-reduces land in the trace on the trace's clock: the overlap report counts them (one per
    module), standard overlaps none of them with compute, ladder gives them room; the critical path's prediction
    for the schedule comes from the profile."""
    from ladder_edu.perf.model.nccl import RingLink
    from ladder_edu.perf.measure.emulated_profile import layer_compute, predicted_steps, profile_emulated
    from ladder_edu.profiling.overlap import analyze, classify, load_trace
    cfg = get_config("tiny")
    link = RingLink(2, 100.0, 5.0)
    traces = profile_emulated(cfg, ["standard", "ladder", "upper_bound"], 2, str(tmp_path), link, steps=2)
    parts = {v: classify(load_trace(p[0])) for v, p in traces.items()}
    assert [len(parts[v]["comm"]) for v in ("standard", "ladder", "upper_bound")] == [2 * 2 * cfg.n_layers] * 2 + [0]
    std, lad = (analyze(load_trace(traces[v][0])) for v in ("standard", "ladder"))
    assert std.total.overlapped_us <= 0.05 * std.total.comm_us            # waited for at once: nothing under it
    assert std.room_us == 0 and lad.room_us > 0
    assert all(abs(i.end - i.start - 200.0) < 1.0 for i in parts["standard"]["comm"])     # 2 x 100 us per ring
    t_attn, t_mlp, stack = layer_compute(traces["upper_bound"][0])
    assert t_attn > 0 and t_mlp > 0 and 0 < stack <= 1
    pred = predicted_steps(cfg, 1e-3, traces["upper_bound"][0], link(cfg.dim * 4), ["standard", "ladder"])
    assert pred["standard"] == pytest.approx(1e-3 + 2 * cfg.n_layers * link(cfg.dim * 4))
    assert 1e-3 < pred["ladder"] < pred["standard"]


def test_link_events_need_a_log_as_long_as_the_trace():
    from ladder_edu.perf.measure.emulated_profile import add_link_events
    trace = {"traceEvents": [{"ph": "X", "name": "L0.attn:all_reduce", "ts": 10.0, "dur": 1.0, "pid": 1}]}
    with pytest.raises(ValueError, match="cannot align"):
        add_link_events(trace, [])
    out = add_link_events(trace, [(1.0, 1.0, 1.5)])
    added = out["traceEvents"][-1]
    assert added["name"] == "modeled:all_reduce" and added["ts"] == pytest.approx(11.0) and added["dur"] == 5e5


def test_gpu_trace_spin_kernels_become_the_communication_lane(capsys):
    """The graph-captured rank's spin kernels are its modeled all-reduces; the overlap report reads them as
    communication once renamed (no GPU needed: a hand-made kernel trace)."""
    from ladder_edu.perf.measure.graphed_profile import relabel_spins
    from ladder_edu.profiling.overlap import analyze
    from ladder_edu.teach.gpu import show_gpu_trace
    kernel = lambda name, ts, dur: {"ph": "X", "cat": "kernel", "name": name, "ts": ts, "dur": dur, "pid": 0}
    trace = {"traceEvents": [kernel("gemv", 0, 10), kernel("spin_kernel(long)", 10, 5), kernel("gemv", 12, 10)]}
    rep = analyze(relabel_spins(trace))
    assert (rep.total.comm_us, rep.total.overlapped_us) == (5, 3)
    assert show_gpu_trace([]) is None and "docs/gpu/run.sh" in capsys.readouterr().out
