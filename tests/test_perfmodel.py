"""The performance model: its schedule algebra, its limits, and its fit to the Ladder paper's 70B table."""
import pytest

from ladder_edu.perf.calibrate import PAPER_70B, calibrate_this_machine, cells, fit, validate
from ladder_edu.models.config import BENCH_VARIANTS, PRESETS, get_config
from ladder_edu.perf.perfmodel import HARDWARE, forward_time, get_hardware, kraken_module_times, module_times, predict
from ladder_edu.perf.schedule import simulate, total_time

CFG = PRESETS["llama-3-70b"]


@pytest.mark.parametrize("batch, tp, hw", [(1, 8, "h100-nvlink"), (64, 4, "h100-no-p2p"), (4, 2, "rtx4090-pcie")])
def test_closed_form_ladder_equals_the_two_lane_schedule(batch, tp, hw):
    """With overlap = 1 the closed form of perfmodel.py is exactly schedule.simulate's critical path."""
    h = get_hardware(hw).with_(overlap=1.0)
    m = module_times(CFG, h, tp, batch, 1, 1024)
    fixed = m.head + h.step_overhead_us * 1e-6
    for v in ("standard", "parallel", "ladder", "upper_bound"):
        sim = total_time(simulate(v, CFG.n_layers, m.attn, m.mlp, m.allreduce))
        assert forward_time(v, CFG, h, tp, batch, 1, 1024) - fixed == pytest.approx(sim, rel=1e-9)
    k = kraken_module_times(CFG, h, tp, batch, 1, 1024)
    sim = total_time(simulate("kraken", CFG.n_layers, k.attn, k.mlp, k.allreduce))
    fixed = k.head + h.step_overhead_us * 1e-6
    assert forward_time("kraken", CFG, h, tp, batch, 1, 1024) - fixed == pytest.approx(sim, rel=1e-9)


def test_orderings_and_tp1():
    for hw in HARDWARE.values():
        p = predict(CFG, hw, 8, 4)
        t = {v: x.tokens_per_s for v, x in p.items()}
        assert t["upper_bound"] >= t["ladder"] >= t["standard"] and t["parallel"] >= t["standard"]
        assert t["kraken"] >= t["standard"]
    one = predict(get_config("llama-3-8b"), HARDWARE["h100-nvlink"], 1, 1, variants=BENCH_VARIANTS)
    assert len({round(x.tokens_per_s, 9) for x in one.values()}) == 1      # no communication, no difference


def test_unknown_hardware_lists_the_choices():
    with pytest.raises(ValueError, match="valid choices: h100-nvlink, h100-no-p2p, a100-nvswitch, a800-nvlink, rtx4090-pcie"):
        get_hardware("tpu")


def test_paper_table_and_split():
    assert len(cells((1, 4, 16, 64))) == 4 * 10 + 3 * 10          # NVLink 4 variants, no-P2P 3; 10 (TP, batch)
    assert PAPER_70B[("h100-nvlink", 1)]["ladder"][2] / PAPER_70B[("h100-nvlink", 1)]["standard"][2] == \
        pytest.approx(1.308, abs=1e-3)


def test_fit_reproduces_the_presets_and_the_readme_claim():
    params, _ = fit()
    preset = HARDWARE["h100-nvlink"]
    assert params["mem_eff"] == pytest.approx(preset.mem_eff, rel=0.02)
    assert params["nvl_overlap"] == pytest.approx(preset.overlap, rel=0.02)
    assert params["p2p_overlap"] == pytest.approx(HARDWARE["h100-no-p2p"].overlap, rel=0.02)
    report = validate(params)
    assert report["held_out_speedup_mae"] <= 0.05                  # README: 0.049
    held = [r for r in report["rows"] if r["held_out"]]
    assert {r["batch"] for r in held} == {4, 64}


def test_calibrated_cpu_preset_is_physical():
    hw = calibrate_this_machine(iters=3)
    assert hw.mem_gbps > 0 and hw.tflops > 0 and hw.link_gbps > 0 and hw.link_latency_us > 0
    assert 0 <= hw.overlap <= 1 and hw.module_overhead_us >= 0 and hw.bytes_per_param == 4
    small = get_config("small")
    assert forward_time("standard", small, hw, 2, 1, 1, 64) > forward_time("upper_bound", small, hw, 2, 1, 1, 64)


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
    model.value = "llama-3-8b"
    cfg, hw, tp_used, b = calls[-1]
    assert (cfg.name, tp_used, b, hw.link_gbps) == ("llama-3-8b", 4, 1, 100.0)
