"""Decode benchmark plumbing (no timing assertions: timings are measured by benchmarks, not tests)."""
import pytest

from ladder_edu import get_config
from ladder_edu.perf.measure.bench import decode_benchmark, summarize


def test_decode_benchmark_reports_every_variant():
    res = decode_benchmark(get_config("tiny"), 2, steps=3, rounds=2, context=8)
    assert [r.variant for r in res.rows] == ["standard", "parallel", "ladder", "upper_bound", "kraken"]
    assert all(r.samples == 6 and 0 < r.p10_ms <= r.median_ms <= r.p90_ms for r in res.rows)
    assert res.row("standard").speedup_vs_standard == 1.0 and res.rounds == 2
    assert all(r.verdict in ("faster", "slower", "not distinguishable on this machine") for r in res.rows)
    assert len(res.readings()) == 4 and "interleaved rounds" in res.readings()[0]
    assert res.comm_share is not None and "upper_bound skips every all-reduce" in res.table()


def test_summary_statistics_by_hand():
    res = summarize(get_config("tiny"), 2, "gloo", 1, 8,
                    {"standard": [0.004, 0.002, 0.003], "upper_bound": [0.001, 0.001, 0.001]})
    assert res.row("standard").median_ms == 3.0
    assert abs(res.row("upper_bound").speedup_vs_standard - 3.0) < 1e-12
    assert abs(res.comm_share - 2 / 3) < 1e-12
    assert abs(res.row("standard").p10_ms - 2.2) < 1e-9


def test_kraken_prefill_next_to_the_others_and_its_matched_config():
    """Kraken is a different model with (about) the same parameters per layer; it runs one sub-layer per rank."""
    import torch
    from ladder_edu.models.config import kraken_config, variant_config
    from ladder_edu.models.kraken import KrakenTransformer
    from ladder_edu.models.model import Transformer
    cfg = get_config("small")
    for n in (2, 4, 8):
        k = variant_config(cfg, "kraken", n)
        assert k.arch == "kraken" and k.kraken_degree == n == kraken_config(cfg, n).kraken_degree
        count = lambda m: sum(p.numel() for name, p in m.named_parameters() if name.startswith(("layers", "splits")))
        ratio = count(KrakenTransformer(k, device=torch.device("meta"))) / count(Transformer(cfg, device="meta"))
        assert abs(ratio - 1) < 0.05, (n, ratio)
    res = decode_benchmark(get_config("tiny"), 2, ["standard", "kraken"], steps=2, rounds=2, context=8,
                           phase="prefill")
    assert [r.variant for r in res.rows] == ["standard", "kraken"] and res.row("kraken").median_ms > 0


def test_compiled_decode_benchmark_and_its_errors():
    import pytest
    res = decode_benchmark(get_config("tiny"), 2, ["ladder"], steps=2, rounds=1, context=8,   # one compile: CI time
                           compile_mode="auto")
    assert res.compiled == "default" and "compiled (default)" in res.table()     # CPU: no CUDA graphs
    assert [r.variant for r in res.rows] == ["ladder"] and all(r.samples == 2 for r in res.rows)
    with pytest.raises(ValueError, match="compile applies to decode"):
        decode_benchmark(get_config("tiny"), 2, ["standard"], phase="prefill", compile_mode="auto")
    with pytest.raises(ValueError, match="valid choices: auto, default"):
        decode_benchmark(get_config("tiny"), 2, ["standard"], compile_mode="turbo")


def test_decode_against_transformers_agrees_and_reports_both_speeds():
    pytest.importorskip("transformers")
    from ladder_edu import get_config, init_weights
    from ladder_edu.perf.measure.hf_decode import decode_vs_transformers, table
    cfg = get_config("tiny", n_kv_heads=2)
    res = decode_vs_transformers(cfg, init_weights(cfg), prompt_tokens=5, new_tokens=4, rounds=2)
    assert res["same_tokens"]                          # the same weights decode the same greedy tokens
    assert len(res["ours"]["rounds"]) == len(res["transformers"]["rounds"]) == 2
    assert res["ours"]["min"] <= res["ours"]["tokens_per_s"] <= res["ours"]["max"]
    assert "transformers LlamaForCausalLM" in table(res)
