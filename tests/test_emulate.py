"""Emulated rank: one rank's shard on one device, all-reduces replaced by waits of the modeled duration."""
import time

import pytest
import torch

from ladder_edu.models.config import get_config
from ladder_edu.perf.measure.emulate import ModeledGroup, allreduce_seconds, emulated_benchmark, emulated_rank_model
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


def test_emulated_benchmark_runs_every_variant_and_says_it_is_modeled():
    res = emulated_benchmark(get_config("tiny"), 4, HARDWARE["h100-no-p2p"], steps=2, rounds=1, context=8)
    assert [r.variant for r in res.rows] == ["standard", "parallel", "ladder", "upper_bound"]
    assert "MODELED" in res.backend and "MODELED" in res.table()
