"""The performance model: each cost term against a hand calculation, the critical path, hybrids, nodes, the fit."""
import math
from dataclasses import replace

import pytest

from ladder_edu.models.config import BENCH_VARIANTS, PRESETS, get_config
from ladder_edu.perf.model import critical_path as cp
from ladder_edu.perf.model.fit import PAPER_70B, cells, cross_validate, fit, validate
from ladder_edu.perf.model.hardware import AT_BOUND, BOUNDS, EFF_FIELDS, HARDWARE, Efficiency, get_hardware, load_hardware
from ladder_edu.perf.model.kernels import kernel_counts
from ladder_edu.perf.model.nccl import allreduce_time
from ladder_edu.perf.model.deployment import Deployment
from ladder_edu.perf.model.perfmodel import forward, forward_time, module_cost, predict
from ladder_edu.perf.model.critical_path import simulate, total_time

CFG = PRESETS["llama-3-70b"]
NVL = HARDWARE["h100-nvlink"]


def test_kernel_counts_match_gpt_fasts_decode_step():
    """Counted from our model code: attention = norm, wqkv, rotary, 2 cache writes, K/V repeat, 3 SDPA kernels, wo;
    MLP = norm, w1 (gate+up), SiLU*mul, w2 -- the kernels gpt-fast's compiled decode step launches."""
    c = kernel_counts("standard")
    assert sum(c["attn"].values()) == 10 and c["attn"]["matmul"] == 2 and c["attn"]["scatter"] == 2
    assert sum(c["mlp"].values()) == 4 and c["mlp"]["matmul"] == 2
    assert kernel_counts("ladder") == c


def test_nccl_latency_is_ncclss_own_formula():
    hw = NVL.with_(comm_us=0.0, skew_us=0.0)
    t, algo = allreduce_time(hw, 8, 8)
    assert algo == "ring/LL" and t == pytest.approx(1e-6 * (6.6 + 14 * 0.6), rel=1e-3)   # base + 2(n-1) hops
    t2, _ = allreduce_time(hw, 2, 8)
    assert t2 == pytest.approx(1e-6 * (6.6 + 2 * 0.6), rel=1e-3)
    big, algo = allreduce_time(hw, 8, 2 ** 30)
    assert algo == "nvls/Simple"                                   # large messages: NVLink SHARP
    assert big == pytest.approx(25e-6 + 2 ** 30 / (1e9 * 2 * 0.85 * 450 * 0.8 * 8 / 14), rel=1e-3)
    assert allreduce_time(NVL, 1, 1000) == (0.0, "none")


def test_no_p2p_goes_through_host_memory_without_ll128():
    """NCCL_P2P_DISABLE=1: NCCL prices the path with its PCI row and turns LL128 off; a real LL step costs
    shm_hop_us, a Simple step the PCI row's 5.7 us shifted by the same host-memory delay; the bandwidth is the PCIe
    link's."""
    shm = HARDWARE["h100-no-p2p"].with_(comm_us=0.0, skew_us=0.0)
    e = shm.eff
    for size in (8, 2 ** 16, 2 ** 20, 2 ** 26):
        assert allreduce_time(shm, 8, size)[1] in ("ring/LL", "ring/Simple", "tree/LL", "tree/Simple")
    t, algo = allreduce_time(shm, 8, 8)
    assert algo == "ring/LL" and t == pytest.approx(1e-6 * (6.6 + 14 * e.shm_hop_us) + 8 / (1e9 * min(
        141, 0.5 * 64 * 0.8) * 8 / 14), rel=1e-6)                   # PCIe Gen5 x16 x nccl-tests' 0.8
    big, algo = allreduce_time(shm, 8, 2 ** 30)
    assert algo == "ring/Simple" and big == pytest.approx(
        1e-6 * (8.4 + 14 * (5.7 + e.shm_hop_us - 1.0)) + 2 ** 30 / (1e9 * 64 * 0.8 * 8 / 14), rel=1e-6)


def test_two_nodes_cross_the_network():
    hw = NVL.with_(comm_us=0.0, skew_us=0.0)
    one, _ = allreduce_time(hw, 8, 32 * 1024)
    two, algo = allreduce_time(hw, 16, 32 * 1024, nodes=2)
    assert two > one
    # ring over 2 nodes, LL: base + (30 - 2) NVLink hops + 2 network hops
    ring = 1e-6 * (6.6 + 28 * 0.6 + 2 * 2.7) + 32 * 1024 / (1e9 * min(141 / 3.0 * 0 + 45.0, 0.5 * 45) * 16 / 30)
    assert two <= ring + 1e-9 and algo.split("/")[0] in ("ring", "tree", "nvls")
    with pytest.raises(ValueError, match="no network"):
        allreduce_time(HARDWARE["rtx4090-pcie"], 8, 100, nodes=2)


def test_mlp_cost_by_hand():
    """70B MLP at TP 8, one token: the weight shard streamed at mem_eff, 4 kernels + the copy, one all-reduce
    whose call costs the compute stream ``comm_us`` and runs the rest beside it."""
    e = NVL.eff
    m = module_cost("mlp", Deployment(CFG, NVL, 8, 1), 1, 1536)
    weights = (3 * 8192 * 28672 / 8 * 2 + 2 * 8192 * 2) / (3350e9 * e.mem_eff)
    assert m.parts["weights"] == pytest.approx(weights, rel=1e-9)
    # fixed cost of 2 matmuls (kernel_us) + 2 fused pointwise kernels (small_us); their activations: add+norm 3d,
    # SiLU*mul 3 ffn/n; the all-reduce's calls: the copy (small_us, 2d) and the call itself (comm_us)
    act = (3 * 8192 + 3 * 28672 / 8) * 2
    assert m.parts["small kernels"] == pytest.approx((2 * e.kernel_us + 2 * e.small_us) * 1e-6
                                                     + act / (3350e9 * e.mem_eff), rel=1e-9)
    call = 1e-6 * e.comm_us
    assert m.parts["all-reduce calls"] == pytest.approx(e.small_us * 1e-6 + 2 * 8192 * 2 / (3350e9 * e.mem_eff) + call,
                                                        rel=1e-9)
    assert m.comm + call == pytest.approx(allreduce_time(NVL, 8, 8192 * 2)[0])


def test_attention_reads_the_kv_cache_once_per_kv_head_plus_the_repeats_that_reach_hbm():
    e = NVL.eff
    a1 = module_cost("attn", Deployment(CFG, NVL, 8, 1), 1, 1536).parts["attention"]
    a64 = module_cost("attn", Deployment(CFG, NVL, 8, 64), 1, 1536).parts["attention"]
    reads = 1 + e.kv_repeat * 7                     # 1 K/V head and its 8 query heads per rank
    per_seq = (2 * reads * 1536 * 128 * 2 + 4 * 8 * 1536 * 2) / (3350e9 * e.mem_eff)
    once = module_cost("attn", Deployment(CFG, NVL.with_(kv_repeat=0.0), 8, 1), 1, 1536).parts["attention"]
    every = module_cost("attn", Deployment(CFG, NVL.with_(kv_repeat=1.0), 8, 1), 1, 1536).parts["attention"]
    assert once < a1 < every
    assert a1 == pytest.approx(per_seq, rel=1e-9) and a64 == pytest.approx(64 * per_seq, rel=1e-9)


def test_the_idealised_schedule_by_hand():
    # 4 layers, attention 3, MLP 5, every all-reduce 2. Standard: compute and communication alternate.
    assert total_time(simulate("standard", 4, 3.0, 5.0, 2.0)) == pytest.approx(4 * (3 + 2 + 5 + 2))
    # Ladder: each all-reduce (2) hides under the next module (3 or 5); only the last one is exposed.
    assert total_time(simulate("ladder", 4, 3.0, 5.0, 2.0)) == pytest.approx(4 * (3 + 5) + 2)
    # Ladder with all-reduces longer than compute: the communication lane is the critical path.
    assert total_time(simulate("ladder", 4, 1.0, 1.0, 3.0)) == pytest.approx(1 + 8 * 3.0)
    # Parallel block: one all-reduce per layer, none overlapped.
    assert total_time(simulate("parallel", 4, 3.0, 5.0, 2.0)) == pytest.approx(4 * (8 + 2))
    assert total_time(simulate("upper_bound", 4, 3.0, 5.0, 2.0)) == pytest.approx(32)


def test_the_fitted_path_and_the_drawn_schedule_are_one_simulator():
    lanes = cp.Lanes()
    cp.run(lanes, cp.modules("ladder", 1, 3.0, 5.0, 2.0), 40, 0.0)          # jumps ahead once periodic
    assert cp.finish(lanes) == pytest.approx(total_time(simulate("ladder", 40, 3.0, 5.0, 2.0)))


def test_jumping_ahead_equals_stepping_every_layer():
    layer = [cp.Module(3.0, 4.0, 1), cp.Module(2.0, 4.5, 1)]
    fast, slow = cp.Lanes(), cp.Lanes()
    cp.run(fast, layer, 100, 0.3)
    for _ in range(100):
        for m in layer:
            cp.step(slow, m, 0.3)
    assert cp.finish(fast) == pytest.approx(cp.finish(slow)) and fast.stretch == pytest.approx(slow.stretch)


def test_interference_by_hand():
    """Compute of 5 starting while 4 units of communication are in flight, at s = 0.25: 4 units run at 3/4 speed
    (3 done), the remaining 2 at full speed: it ends at 6 = 5 + s * 4."""
    lanes = cp.Lanes()
    cp.step(lanes, cp.Module(1.0, 4.0, 1), 0.25)          # ends at 1; its all-reduce runs 1..5
    cp.step(lanes, cp.Module(5.0, 0.0, 1), 0.25)
    assert lanes.compute_free == pytest.approx(1 + 5 + 0.25 * 4)


def test_hybrid_ladder_lies_between_standard_and_ladder():
    ts = [forward_time("ladder", Deployment(CFG, NVL, 8, ladder_layers=k), 1, 1536) for k in (0, 20, 40, 80)]
    assert ts[0] == pytest.approx(forward_time("standard", Deployment(CFG, NVL, 8), 1, 1536))
    assert ts[-1] == pytest.approx(forward_time("ladder", Deployment(CFG, NVL, 8), 1, 1536))
    assert ts[0] > ts[1] > ts[2] > ts[3]
    with pytest.raises(ValueError, match=r"must be between 0 and n_layers=80"):
        forward_time("ladder", Deployment(CFG, NVL, 8, ladder_layers=81), 1, 1536)
    with pytest.raises(ValueError, match=r"distinct layer indices in \[0, 79\]"):
        forward_time("ladder", Deployment(CFG, NVL, 8, ladder_layers=(3, 80)), 1, 1536)


def test_a_lone_ladder_layer_by_hand():
    """Three layers, every module 1 unit of compute and 1 of all-reduce: standard takes 6 x (1 + 1) = 12. Layer 1
    alone ladder hides AR(L0.mlp) under L1.attn and AR(L1.attn) under L1.mlp: 10. Layers 1 and 2 also hide
    AR(L1.mlp) and AR(L2.attn): 8; layers 0 and 2 hide 1 + 2 (layer 0 has no module before it): 9."""
    t = {s: cp.total_time(cp.simulate("ladder", 3, 1.0, 1.0, 1.0, s)) for s in ((), (1,), (1, 2), (0, 2))}
    assert t == {(): 12.0, (1,): 10.0, (1, 2): 8.0, (0, 2): 9.0}
    assert cp.total_time(cp.simulate("standard", 3, 1.0, 1.0, 1.0)) == 12.0


def test_the_performance_model_counts_ladder_layers_by_position():
    """Any k ladder layers past layer 0 hide the same all-reduces, so on the critical path the set costs what the
    top k cost (up to the interference of where the overlap happens); the top k equals the integer k."""
    top = forward_time("ladder", Deployment(CFG, NVL, 8, ladder_layers=20), 1, 1536)
    assert top == forward_time("ladder", Deployment(CFG, NVL, 8, ladder_layers=tuple(range(60, 80))), 1, 1536)
    spread = forward_time("ladder", Deployment(CFG, NVL, 8, ladder_layers=tuple(range(1, 80, 4))), 1, 1536)
    assert spread == pytest.approx(top, rel=0.01)
    lone = forward_time("ladder", Deployment(CFG, NVL, 8, ladder_layers=(40,)), 1, 1536)
    std = forward_time("standard", Deployment(CFG, NVL, 8), 1, 1536)
    assert std > lone > top


def test_orderings_breakdown_and_tp1():
    for hw in HARDWARE.values():
        t = {v: x.tokens_per_s for v, x in predict(CFG, hw, 8, 4).items()}
        assert t["upper_bound"] >= t["ladder"] >= t["standard"] and t["parallel"] >= t["standard"]
    one = predict(get_config("llama-3-8b"), NVL, 1, 1, variants=BENCH_VARIANTS)
    tps = [x.tokens_per_s for x in one.values()]                # no communication: only the parallel block's
    assert max(tps) / min(tps) < 1.001                          # fused activations differ, by < 0.1%
    p = forward("ladder", Deployment(CFG, NVL, 8), 1, 1536)
    compute = sum(p.parts[k] for k in ("weights", "attention", "small kernels", "all-reduce calls", "LM head + sampling"))
    assert p.seconds == pytest.approx(compute + p.parts["overlap slow-down"] + p.parts["exposed communication"])


def test_nodes_must_divide_tp_and_fit_a_node():
    with pytest.raises(ValueError, match="must divide TP=16"):
        predict(PRESETS["llama-3.1-405b"], NVL, 16, nodes=3)
    with pytest.raises(ValueError, match="needs 16 GPUs per node"):
        predict(PRESETS["llama-3.1-405b"], NVL, 16, nodes=1)
    two = predict(PRESETS["llama-3.1-405b"], NVL, 16, nodes=2)
    assert two["ladder"].speedup_vs_standard > 1


def test_unknown_hardware_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match="valid choices: h100-nvlink, h100-no-p2p, h200-nvlink, a100-nvswitch"):
        get_hardware("tpu")
    path = tmp_path / "gpu.json"
    NVL.with_(kernel_us=2.0, name="mine").to_json(str(path))
    assert load_hardware(str(path)) == NVL.with_(kernel_us=2.0, name="mine")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot read hardware file"):
        get_hardware(str(tmp_path / "bad.json"))


def test_paper_table():
    assert len(cells()) == 4 * 10 + 3 * 10          # NVLink 4 variants, no-P2P 3; 10 (TP, batch) cells each
    assert PAPER_70B[("h100-nvlink", 1)]["ladder"][2] / PAPER_70B[("h100-nvlink", 1)]["standard"][2] == \
        pytest.approx(1.308, abs=1e-3)


def test_presets_are_the_fit_and_every_constant_has_a_bound():
    assert set(BOUNDS) == set(EFF_FIELDS)
    eff, _ = fit(iters=150, restarts=1)
    for name in EFF_FIELDS:
        lo, hi = BOUNDS[name]
        margin = 0.01 * (hi - lo)                  # none at a bound: a constant stuck there means a missing term
        if name in AT_BOUND:                       # but the one the docs name, at its bound and nowhere beyond
            assert getattr(NVL.eff, name) in (lo, hi), name
            continue
        assert lo + margin < getattr(NVL.eff, name) < hi - margin, name
        assert getattr(eff, name) == pytest.approx(getattr(NVL.eff, name), rel=0.05, abs=0.02), name
    assert validate()["speedup_mae"] <= 0.04                 # README: 0.035 in sample


def test_cross_validation_reports_held_out_errors():
    cv = cross_validate(iters=40)
    assert {f["left_out"] for f in cv["folds"]} == {"batch 1", "batch 4", "batch 16", "batch 64", "tp 2", "tp 4",
                                                    "tp 8"}
    assert cv["leave_one_batch_out_mae"] < 0.1 and cv["leave_one_tp_out_mae"] < 0.1
    assert all(v["spread"] >= 0 for v in cv["params"].values())


def test_calibrated_cpu_preset_is_physical():
    from ladder_edu.perf.measure.cpu_preset import calibrate_this_machine
    hw = calibrate_this_machine(iters=3)
    assert hw.mem_gbps > 0 and hw.tflops > 0 and hw.link_gbps > 0 and hw.intra.hop_us > 0
    assert 0 <= hw.eff.interference <= 1 and hw.eff.kernel_us >= 0 and hw.bytes_per_param == 4
    assert hw.eff.skinny_us == hw.eff.small_us == hw.eff.kernel_us           # nothing borrowed from the H100's logs
    assert hw.eff.kv_repeat == 1.0 and hw.eff.skew_us == 0.0
    small = get_config("small")
    dep = Deployment(small, hw, 2)
    assert forward_time("standard", dep, 1, 64) > forward_time("upper_bound", dep, 1, 64)


def test_perf_explorer_redraws_with_the_sliders(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from ladder_edu.teach import perfplots, widgets
    calls = []
    real = perfplots.plot_prediction
    monkeypatch.setattr(perfplots, "plot_prediction", lambda *a, **k: calls.append(a) or real(*a, **k))
    box = widgets.perf_explorer("h100-no-p2p")
    model, tp, batch = box.children[0].children
    bw, latency = box.children[1].children
    tp.value = 4
    bw.value = 100.0
    latency.value = 10.0
    model.value = "llama-3-8b"
    cfg, hw, tp_used, b = calls[-1]
    assert (cfg.name, tp_used, b, hw.link_gbps, hw.eff.skew_us) == ("llama-3-8b", 4, 1, 100.0, 10.0)


def test_efficiency_fields_are_whatif_fields():
    hw = NVL.with_(mem_eff=0.5, link_gbps=100.0)
    assert hw.eff.mem_eff == 0.5 and hw.intra.gbps == 100.0 and isinstance(hw.eff, Efficiency)
    assert math.isclose(replace(NVL, eff=Efficiency()).eff.mem_eff, Efficiency().mem_eff)


def test_the_all_reduce_is_the_deployments_implementation():
    """``Deployment.allreduce`` is a seam: another implementation changes only the communication, by name or as a
    function; an unknown name is refused with the valid choices."""
    from ladder_edu.perf.model.deployment import ALLREDUCE
    calls = []

    def constant(hw, n, nbytes, nodes):
        calls.append((n, nbytes, nodes))
        return 1e-3, "constant"

    base = Deployment(CFG, NVL, 8)
    slow = forward("standard", base.with_(allreduce=constant), 1, 1536)
    assert calls and all(n == 8 and nodes == 1 for n, _, nodes in calls) and slow.algo == "constant"
    assert slow.seconds > forward("standard", base, 1, 1536).seconds
    assert forward_time("upper_bound", base.with_(allreduce=constant), 1, 1536) == \
        forward_time("upper_bound", base, 1, 1536)                  # no all-reduce: no call, the same time
    assert predict(CFG, NVL, 8, allreduce="nccl")["ladder"].tokens_per_s == predict(CFG, NVL, 8)["ladder"].tokens_per_s
    assert set(ALLREDUCE) >= {"nccl"}
    with pytest.raises(ValueError, match="unknown all-reduce implementation 'mpi'; valid choices: nccl"):
        Deployment(CFG, NVL, 8, allreduce="mpi")


def test_every_call_costs_the_compute_stream_what_no_overlap_hides():
    """An all-reduce call on GPUs costs the compute stream ``comm_us`` whatever its implementation: an all-reduce
    no longer than that leaves ladder nothing to hide, and a fixed latency as long as NCCL's gives about NCCL's
    gain. On a CPU's measured link the whole all-reduce is on the communication lane."""
    from ladder_edu.perf.model.allreduce import fixed_allreduce
    from ladder_edu.perf.model.perfmodel import allreduce_lanes
    short = predict(CFG, NVL, 8, allreduce=fixed_allreduce(0.9 * NVL.eff.comm_us))
    assert short["ladder"].speedup_vs_standard == pytest.approx(1.0, abs=1e-9)
    nccl_us = 1e6 * allreduce_time(NVL, 8, 8192 * 2)[0]
    same = predict(CFG, NVL, 8, allreduce=fixed_allreduce(nccl_us))["ladder"].speedup_vs_standard
    assert same == pytest.approx(predict(CFG, NVL, 8)["ladder"].speedup_vs_standard, abs=0.01)
    compute, comm, _ = allreduce_lanes(Deployment(CFG, NVL, 8), 8192 * 2)
    assert compute == pytest.approx(1e-6 * NVL.eff.comm_us) and compute + comm == pytest.approx(1e-6 * nccl_us)
    cpu = NVL.with_(intra=replace(NVL.intra, kind="measured", hop_us=50.0))
    assert allreduce_lanes(Deployment(CFG, cpu, 8), 8192 * 2)[0] == 0.0


def test_nccl_caps_the_ll_protocol_by_the_cpu_row_across_nodes():
    """NCCL's llMaxBws: on one node the GPU's row (Hopper 141, Ampere 87.7 GB/s); across nodes the CPU vendor's row
    (Intel 39.0 for 2 nodes, 20.4 for more; AMD 22.5 and 19.0), never the Hopper row's 45 / 35."""
    from ladder_edu.perf.model.nccl import ll_max_bw
    h100, a100 = HARDWARE["h100-nvlink"], HARDWARE["a100-nvswitch"]
    assert [ll_max_bw(h100, n) for n in (1, 2, 4)] == [141.0, 39.0, 20.4]
    assert [ll_max_bw(h100.with_(cpu_vendor="amd"), n) for n in (2, 3)] == [22.5, 19.0]
    assert ll_max_bw(a100, 1) == 87.7
    with pytest.raises(ValueError, match="valid: intel, amd"):
        h100.with_(cpu_vendor="arm")


def test_the_allreduce_implementations_reproduce_their_sources_and_hand_big_messages_to_nccl():
    """One-shot 10.8 us at 8 KB, two-shot 15 us and NVLS multimem 11 us at 512 KiB on 8 H100s (the published
    measurements ``perf/model/allreduce.py`` cites); a prefill-sized message goes to NCCL; a faster all-reduce
    leaves ladder less to hide; a kernel that needs one NVLink node refuses others with the valid choice."""
    from ladder_edu.perf.model.allreduce import IMPLEMENTATIONS
    hw = HARDWARE["h100-nvlink"]
    us = lambda name, b: 1e6 * IMPLEMENTATIONS[name](hw, 8, b)[0]   # noqa: E731
    assert us("one-shot", 8192) == pytest.approx(10.8, abs=0.3)
    assert us("two-shot", 512 * 1024) == pytest.approx(15.0, abs=0.5)
    assert us("nvls", 512 * 1024) == pytest.approx(11.0, abs=0.5)
    assert IMPLEMENTATIONS["one-shot"](hw, 8, 16 * 2 ** 20)[1] != "one-shot"          # NCCL's ring takes over
    cfg = get_config("llama-3-70b")
    speedup = {a: predict(cfg, hw, 8, allreduce=a)["ladder"].speedup_vs_standard for a in IMPLEMENTATIONS}
    assert speedup["nvls"] < speedup["one-shot"] < speedup["nccl"]
    with pytest.raises(ValueError, match="needs: nccl"):
        predict(cfg, HARDWARE["h100-no-p2p"], 8, allreduce="one-shot")
