"""GPU paths, tested where CUDA exists (skipped, and reported as skipped, on CPU-only machines such as CI).

Run on a GPU machine with `python -m pytest tests/test_gpu.py -rs`: NCCL on one GPU, CUDA-graph decode, NVTX
ranges, the emulated rank of a 70B TP=8 deployment against its HBM floor (eager and captured in a CUDA graph), and
`calibrate-gpu`."""
import pytest
import torch

from ladder_edu.models.spec import RunSpec
from ladder_edu.tp import launch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def test_nccl_at_tp1_on_one_gpu():
    from ladder_edu import get_config
    from ladder_edu.models.check import check
    for arch in ("standard", "ladder"):
        res = check(get_config("tiny", arch=arch), 1, options=launch.LaunchOptions(backend="nccl"))
        assert res.passed, res.summary()


def test_cuda_graph_decode_equals_eager():
    from ladder_edu import build_model, get_config, init_weights
    from ladder_edu.models.compiled import CompiledDecode
    cfg = get_config("tiny", arch="ladder")
    model = build_model(cfg, init_weights(cfg), device=torch.device("cuda"))
    model.setup_cache(2)
    tokens = torch.randint(0, cfg.vocab_size, (2, 9), device="cuda")
    with torch.no_grad():
        model(tokens[:, :8], 0)
        eager = model(tokens[:, 8:9], 8).clone()
        model.setup_cache(2)
        model(tokens[:, :8], 0)
        step = CompiledDecode(model, "reduce-overhead")
        graphed = step(tokens[:, 8:9], 8).clone()
    torch.testing.assert_close(graphed, eager, rtol=1e-3, atol=1e-3)


def test_nvtx_ranges_are_pushed_around_modules():
    from ladder_edu.tp import comm
    assert comm._nvtx_available()
    with comm.region("L0.attn"):
        pass                                                  # raises on a build without NVTX


def test_emulated_70b_tp8_rank_is_above_its_hbm_floor():
    from ladder_edu.models.config import get_config
    from ladder_edu.perf.measure.emulate import emulated_benchmark
    from ladder_edu.perf.model.hardware import HARDWARE
    cfg = get_config("llama-3-70b").replace(n_layers=8, ladder_layers=0)
    hw = HARDWARE["h100-nvlink"]
    res = emulated_benchmark(RunSpec(cfg, 8, ("standard", "ladder"), steps=8, rounds=2, dtype="bfloat16"), hw)
    rows = {r.variant: r.median_ms for r in res.rows}
    layer_bytes = 2 * (cfg.dim * cfg.head_dim * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) + 3 * cfg.dim * cfg.ffn_dim) / 8
    floor_ms = 1e3 * cfg.n_layers * layer_bytes / 3.35e12          # H100 HBM3: the fastest GPU we model
    assert rows["standard"] > floor_ms and rows["ladder"] > floor_ms
    print(f"emulated 70B TP=8 rank, {cfg.n_layers} layers: standard {rows['standard']:.3f} ms, ladder "
          f"{rows['ladder']:.3f} ms, HBM floor of the shards {floor_ms:.3f} ms")


def test_graph_captured_70b_tp8_rank_hides_what_the_schedule_lets_it():
    from ladder_edu.models.config import get_config
    from ladder_edu.perf.measure.graphed import graphed_benchmark
    from ladder_edu.perf.model.hardware import HARDWARE
    cfg = get_config("llama-3-70b").replace(n_layers=8, ladder_layers=0)
    res = graphed_benchmark(RunSpec(cfg, 8, ("standard", "ladder", "upper_bound"), context=256, steps=10, rounds=4,
                                    dtype="bfloat16"), HARDWARE["h100-nvlink"])
    print(res.table())
    ms = {r.variant: r.median_ms for r in res.bench.rows}
    ladder = res.schedules["ladder"]
    assert res.schedules["upper_bound"] == []
    assert ladder.index(("wait", 0)) > ladder.index(("start", 1))            # forked, joined one module later
    assert ms["standard"] >= res.modeled_comm_ms                             # every all-reduce on its path
    assert ms["upper_bound"] < ms["ladder"] < ms["standard"]
    assert ms["upper_bound"] > res.hbm_floor_ms


def test_calibrate_gpu_writes_a_preset_predict_reads(tmp_path):
    from ladder_edu.cli import main
    path = tmp_path / "gpu.json"
    assert main(["calibrate-gpu", "--out", str(path)]) == 0
    assert main(["predict", "--gpu", str(path)]) == 0
