"""ISO: chunk-interleaved prefill of an unchanged standard model equals the ordinary prefill, KV cache included."""
import pytest
import torch

from ladder_edu import get_config
from ladder_edu.tp import launch
from ladder_edu.models.iso import balanced_split, chunk_bounds, chunk_cost, iso_prefill
from tests import workers


def _max_diff(res):
    d = (res["plain"] - res["iso"]).abs().max().item()
    for (k1, v1), (k2, v2) in zip(res["plain_cache"], res["iso_cache"]):
        d = max(d, (k1 - k2).abs().max().item(), (v1 - v2).abs().max().item())
    return d


@pytest.mark.parametrize("splits", [None, [7], [10, 25]])
def test_iso_equals_prefill_on_one_device(splits):
    assert _max_diff(workers.iso_vs_prefill("tiny", splits)) < 1e-5


def test_iso_equals_prefill_at_tp2():
    results = launch.run(workers.iso_vs_prefill, 2, "tiny", None)
    assert max(_max_diff(r) for r in results) < 1e-4
    full = workers.iso_vs_prefill("tiny", None)["plain"]                 # and equals one device's prefill
    assert (results[0]["iso"] - full).abs().max() < 1e-4


def test_balanced_split_gives_later_chunks_fewer_tokens():
    cfg = get_config("small")
    s = balanced_split(cfg, 512)
    assert 256 < s < 512
    assert abs(chunk_cost(cfg, 0, s) - chunk_cost(cfg, s, 512)) <= chunk_cost(cfg, s - 1, s + 1)
    assert balanced_split(get_config("llama-3-70b"), 1024) in range(512, 560)   # attention matters less there


def test_iso_refuses_changed_models_and_bad_splits():
    from ladder_edu import Transformer, init_weights
    cfg = get_config("tiny", arch="ladder")
    model = Transformer.from_full_state_dict(cfg, init_weights(cfg))
    with pytest.raises(ValueError, match="unchanged \\*standard\\* model"):
        iso_prefill(model, torch.zeros(1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="increasing and inside \\(0, 8\\)"):
        chunk_bounds(8, [5, 3])


def test_iso_in_the_performance_model():
    from ladder_edu.perf.model.deployment import Deployment
    from ladder_edu.perf.model.perfmodel import HARDWARE, forward_time, iso_prefill_time
    cfg, hw = get_config("llama-3-70b"), HARDWARE["rtx4090-pcie"]
    std = forward_time("standard", Deployment(cfg, hw, 8), 1024, 1024)
    assert iso_prefill_time(Deployment(cfg, hw, 8), 1024, splits=[]) == pytest.approx(std, rel=1e-12)   # 1 chunk
    assert iso_prefill_time(Deployment(cfg, hw, 8), 1024) < std
    assert iso_prefill_time(Deployment(cfg, hw.with_(shm_interference=1.0), 8), 1024) >= std * (1 - 1e-9)  # no overlap


def test_iso_in_bench_and_profile(tmp_path):
    from ladder_edu.perf.measure.bench import decode_benchmark
    from ladder_edu.cli import main
    res = decode_benchmark(get_config("tiny"), 2, ["standard", "iso"], context=16, steps=1, rounds=1,
                           phase="prefill")
    assert [r.variant for r in res.rows] == ["standard", "iso"]
    with pytest.raises(ValueError, match="use it with phase='prefill'"):
        decode_benchmark(get_config("tiny"), 2, ["iso"], phase="decode")
    assert main(["profile", "--preset", "tiny", "--arch", "standard,iso", "--phase", "prefill", "--context", "16",
                 "--steps", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "iso.merged.trace.json").exists()
