"""The measured constants: the fits of calibrate-gpu's measurements, by hand, and the presets against the committed
H100 measurements (docs/gpu/h100, written by docs/gpu/run.sh on a GPU); the measurement code on CPU tensors."""
import json
import os

import pytest
import torch

from ladder_edu.models.config import get_config
from ladder_edu.perf.measure import gpu_terms
from ladder_edu.perf.measure.gpu_preset import fit_projections, small_kernel_cost
from ladder_edu.perf.measure.timing import relative_line
from ladder_edu.perf.model.hardware import BOUNDS, HARDWARE

H100 = os.path.join(os.path.dirname(__file__), "..", "docs", "gpu", "h100")


def _load(name):
    with open(os.path.join(H100, name)) as f:
        return json.load(f)


def test_relative_least_squares_recovers_a_line():
    xs = [1.0, 10.0, 100.0, 1000.0]
    a, b, err = relative_line(xs, [3.0 + 0.5 * x for x in xs])
    assert a == pytest.approx(3.0) and b == pytest.approx(0.5) and err == pytest.approx(0.0, abs=1e-12)
    a, b, _ = relative_line(xs, [3.0 + 0.25 * x for x in xs], intercept=3.0)
    assert a == 3.0 and b == pytest.approx(0.25)


def test_fit_projections_by_hand():
    """Rows made from known constants (1 us fixed, 80% of 1000 GB/s, 50% of 100 TFLOP/s) give them back."""
    rows = []
    for out_f, in_f in [(1024, 1024), (4096, 1024), (8192, 8192)]:
        for t in (1, 16, 1024):
            nbytes = 2 * (out_f * in_f + t * (in_f + out_f))
            us = 1.0 + (nbytes / (0.8 * 1000e3) if t < 512 else 2 * out_f * in_f * t / (0.5 * 100e6))
            rows.append({"out": out_f, "in": in_f, "tokens": t, "us": us})
    m = fit_projections(rows, 1000, 100)
    assert m["kernel_us"] == pytest.approx(1.0) and m["mem_eff"] == pytest.approx(0.8)
    assert m["skinny_eff"] == pytest.approx(0.8) and m["flop_eff"] == pytest.approx(0.5)


def test_small_kernel_cost_by_hand():
    step = {"pipelined_us": 30.0, "kernels": [
        {"name": "nvjet_sm90_gemv", "calls": 2, "us": 16.0},          # a matmul: not a small kernel
        {"name": "triton_poi_fused_add", "calls": 2, "us": 4.0},       # 2 us each
        {"name": "triton_red_fused_rsqrt", "calls": 1, "us": 3.0},     # 3 us
        {"name": "elementwise_kernel", "calls": 1, "us": 1.0}]}        # 1 us
    # median of [2, 2, 3, 1] = 2; gap = (30 - 24) / 6 kernels = 1
    assert small_kernel_cost(step) == pytest.approx(3.0)


def test_the_h100_measurements_and_the_logs_agree_where_both_measure():
    """docs/gpu/h100's single-kernel measurements, fitted as calibrate-gpu fits them, lie inside their physical
    ranges; the presets keep the GEMV's fixed cost from them (the logs cannot separate it), and the logs'
    calibration of a small kernel's fixed cost lands within 15% of the profiled one."""
    proj = _load("projections.json")
    assert proj["device"].startswith("NVIDIA H100") and len(proj["rows"]) >= 100
    m = fit_projections(proj["rows"], 3350, 989)
    eff = HARDWARE["h100-nvlink"].eff
    assert eff.kernel_us == pytest.approx(m["kernel_us"], abs=1e-3)
    assert m["mem_err"] < 0.1 and m["flop_err"] < 0.05                # the lines describe the shapes
    profiled = [r for r in _load("steps.json")["rows"] if "kernels" in r]
    measured_small = small_kernel_cost(profiled[0])
    assert eff.small_us == pytest.approx(measured_small, rel=0.15)
    for name in ("kernel_us", "mem_eff", "skinny_eff", "flop_eff"):
        lo, hi = BOUNDS[name]
        assert lo < m[name] < hi, name
    other = fit_projections(_load("run1-projections.json")["rows"], 3350, 989)     # a second machine
    assert all(other[k] == pytest.approx(m[k], rel=0.02) for k in ("kernel_us", "mem_eff", "flop_eff"))


def test_projection_shapes_are_megatron_shards():
    cfg = get_config("llama-3-70b")
    s = gpu_terms.projection_shapes(cfg, 8)
    assert s == {"wqkv": ((64 + 16) * 128 // 8, 8192), "wo": (8192, 1024), "w13": (2 * 28672 // 8, 8192),
                 "w2": (8192, 28672 // 8), "lm_head": (128256, 8192)}


def test_measurement_code_runs_on_cpu():
    torch.set_num_threads(1)
    r = gpu_terms.time_projection(64, 32, 4, "cpu", torch.float32, min_bytes=1 << 16, reps=2)
    assert r["copies"] == 8 and r["us"] > 0
    assert r["gbps"] == pytest.approx(4 * (64 * 32 + 4 * 96) / (r["us"] * 1e-6) / 1e9)
    rows = gpu_terms.projection_sweep(("tiny",), (1, 2), (1,), "cpu", torch.float32, min_bytes=1 << 14, reps=1)
    assert {(r["tp"], r["kind"]) for r in rows} >= {(1, "wqkv"), (2, "w2"), (1, "lm_head")}
    model = gpu_terms.shard_model("tiny", 2, 1, "cpu", torch.float32)
    assert model.cfg.comm == "skip" and model.layers[0].mlp.down_proj.weight.shape == (64, 96)


def test_calibration_refuses_another_gpus_data_sheet_and_unphysical_results():
    from ladder_edu.perf.measure.gpu_preset import base_for, check_measured
    assert base_for("NVIDIA H200", None) == "h200-nvlink" and base_for("NVIDIA H100 80GB HBM3", None) == "h100-nvlink"
    assert base_for("NVIDIA H100 80GB HBM3", "h100-no-p2p") == "h100-no-p2p"
    with pytest.raises(ValueError, match="use --base h200-nvlink"):
        base_for("NVIDIA H200", "h100-nvlink")
    with pytest.raises(ValueError, match="no data sheet for 'Tesla T4'.*valid: h100-nvlink"):
        base_for("Tesla T4", None)
    with pytest.raises(ValueError, match=r"mem_eff = 1.24 is outside its physical range \[0.6, 0.95\]"):
        check_measured(dict(kernel_us=3.0, small_us=2.0, mem_eff=1.24, skinny_eff=0.8, flop_eff=0.7))


def test_h200_preset_is_its_committed_measurement():
    path = os.path.join(H100, "..", "h200", "h200.json")
    with open(path) as f:
        measured = json.load(f)
    assert measured["note"].startswith("measured by ladder-edu calibrate-gpu on NVIDIA H200")
    eff = HARDWARE["h200-nvlink"].eff
    for name in ("kernel_us", "small_us", "mem_eff", "skinny_eff", "flop_eff"):
        assert getattr(eff, name) == pytest.approx(measured["eff"][name], abs=1e-3), name
    assert HARDWARE["h200-nvlink"].mem_gbps == measured["mem_gbps"] == 4800


def test_every_command_of_the_gpu_script_parses(tmp_path):
    """docs/gpu/run.sh runs on a lent GPU, where a misspelt option costs the whole session: each of its
    ``-m ladder_edu`` commands must be accepted by the command line's parser (argparse exits 2 on an unknown one),
    and the script must be valid bash."""
    import re
    import shlex
    import subprocess

    from ladder_edu.cli.main import build_parser
    path = os.path.join(H100, "..", "run.sh")
    assert subprocess.run(["bash", "-n", path]).returncode == 0
    text = open(path).read().replace("\\\n", " ")
    snapshot = tmp_path / "gpt-fast"            # options that name a directory need one that exists
    snapshot.mkdir()
    values = {"py": "python3", "out": str(tmp_path), "gpu": "h200-nvlink", "gpus": "2", "arch": "ladder",
              "gf": f"--gpt-fast {snapshot}"}
    commands = []
    for line in text.splitlines():
        m = re.search(r'-m ladder_edu (.*)$', line)
        if m:
            cmd = re.sub(r"\$(\w+)", lambda v: values[v.group(1)], m.group(1))
            commands.append(shlex.split(cmd))
    assert {c[0] for c in commands} >= {"bench", "calibrate-gpu", "profile", "check"}
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)                  # SystemExit(2) on an unknown option or a bad choice


def test_the_alpha_beta_fit_has_physical_bounds():
    """notebook 00's fit (teach.costs.fit_alpha_beta): relative error, so a small-message floor sets alpha (a plain
    least-squares line through these points has a negative intercept); alpha >= 0 even when the line's intercept
    is negative; the line is close to the points it describes; times that do not grow give an error."""
    from ladder_edu.teach.costs import fit_alpha_beta, fit_error
    sizes = [1 << k for k in range(10, 26)]
    floor = [max(400e-6, 50e-6 + s / 1.4e9) for s in sizes]          # a CPU's all-reduce: a floor, then a slope
    n, mx, my = len(sizes), sum(sizes) / len(sizes), sum(floor) / len(floor)
    slope = sum((x - mx) * (y - my) for x, y in zip(sizes, floor)) / sum((x - mx) ** 2 for x in sizes)
    alpha, beta = fit_alpha_beta(sizes, floor)
    assert 300e-6 < alpha < 450e-6 and 1e9 < beta < 2e9 and fit_error(sizes, floor, alpha, beta) < 0.2
    assert my - slope * mx < alpha                                   # the plain fit sits lower
    convex = [s / 1.4e9 * (0.5 if s < 1 << 16 else 1.0) for s in sizes]
    assert fit_alpha_beta(sizes, convex)[0] == 0.0
    with pytest.raises(ValueError, match="do not grow with the message size"):
        fit_alpha_beta(sizes, [1e-3 - s * 1e-12 for s in sizes])


def test_the_single_kernel_preset_is_what_calibrate_gpu_measured():
    """The model of single kernels on the H100 (notebook 04 draws this package's compiled step beside it): the
    five measured constants, one fixed cost per matmul, every repeated K/V read from HBM."""
    from ladder_edu.perf.measure.gpu_preset import load_measurements, single_kernel_preset
    gpu = load_measurements(os.path.join(os.path.dirname(__file__), "..", "docs", "gpu", "h100"))
    single = single_kernel_preset(gpu, HARDWARE["h100-nvlink"])
    m = fit_projections(gpu["projections"]["rows"], 3350, 989)
    assert single.eff.mem_eff == pytest.approx(m["mem_eff"], abs=1e-4)
    assert single.eff.mem_eff < HARDWARE["h100-nvlink"].eff.mem_eff
    assert single.eff.skinny_us == single.eff.kernel_us and single.eff.kv_repeat == 1.0
    assert "H100" in single.name
