"""Compiled decode (static-shape KV cache, torch.compile): equals eager decode, and keeps ladder's overlap."""
import pytest
import torch

from ladder_edu import Transformer, get_config, init_weights
from ladder_edu.tp import launch
from ladder_edu.models.compiled import CompiledDecode, overlapped_matmuls

from . import workers


def test_static_positions_equal_the_eager_path():
    """The static path (positions tensor, whole cache + mask) gives the eager path's logits, prefill and decode."""
    cfg = get_config("tiny", arch="ladder")
    model = Transformer.from_full_state_dict(cfg, init_weights(cfg, 0))
    tokens = torch.randint(0, cfg.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.setup_cache(2, 16)
        eager = [model(tokens[:, :8])] + [model(tokens[:, i:i + 1], start=i) for i in range(8, 12)]
        model.setup_cache(2, 16)
        static = [model(tokens[:, :8], torch.arange(8))] + \
                 [model(tokens[:, i:i + 1], torch.tensor([i])) for i in range(8, 12)]
    for a, b in zip(eager, static):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["parallel", "ladder", "kraken"])     # standard: test_cli.py checks it compiled
def test_compiled_decode_equals_eager_on_gloo(variant):
    res = launch.run(workers.compiled_vs_eager, 2, variant, options=launch.LaunchOptions(timeout_s=300))
    assert all(r["diff"] < 1e-4 for r in res), res
    assert res[0]["mode"] == "default"                       # CPU: no CUDA graphs
    overlap = res[0]["overlap"]
    assert overlap and overlap[-1] == 0                      # the last all-reduce has nothing to hide behind
    if variant in ("standard", "parallel"):                  # the next module needs the result: no overlap
        assert max(overlap) == 0, overlap
    else:                                                    # ladder and Kraken: a module's matmuls hide each one
        assert min(overlap[:-1]) >= 2, overlap                # fused: wqkv + o_proj, w13 + down_proj


def test_overlap_reading_of_generated_code():
    code = """
        extern_kernels.mm(buf1, arg2_1, out=buf2)
        torch.ops._c10d_functional.all_reduce_.default(reinterpret_tensor(buf2, (1, 1, 64), (64, 64, 1), 0), 'sum', '0')
        extern_kernels.mm(buf3, arg4_1, out=buf4)
        # torch.ops._c10d_functional.wait_tensor.default(buf2) in a comment does not count
        extern_kernels.addmm(buf5, buf4, arg5_1, out=buf6)
        torch.ops._c10d_functional.all_reduce_.default(buf6, 'sum', '0')
        torch.ops._c10d_functional.wait_tensor.default(reinterpret_tensor(buf2, (1, 1, 64), (64, 64, 1), 0))
        torch.ops._c10d_functional.wait_tensor.default(buf6)
    """
    assert overlapped_matmuls(code) == [2, 0]


def test_no_cpp_compiler_is_a_clear_error(monkeypatch):
    import shutil
    cfg = get_config("tiny")
    model = Transformer.from_full_state_dict(cfg, init_weights(cfg, 0))
    model.setup_cache(1, 16)
    monkeypatch.setenv("CXX", "")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="needs a C\\+\\+ compiler.*apt install g\\+\\+"):
        CompiledDecode(model)


def test_compiled_decode_errors():
    cfg = get_config("tiny")
    model = Transformer.from_full_state_dict(cfg, init_weights(cfg, 0))
    with pytest.raises(ValueError, match="setup_cache"):
        CompiledDecode(model)
    model.setup_cache(1, 16)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        CompiledDecode(model, mode="reduce-overhead")
    with pytest.raises(ValueError, match="valid choices: default, reduce-overhead"):
        CompiledDecode(model, mode="fast")
    step = CompiledDecode(model)
    with pytest.raises(ValueError, match=r"shape \[batch, 1\]"):
        step(torch.zeros(1, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"outside the KV cache \[0, 16\)"):
        step(torch.zeros(1, 1, dtype=torch.long), 16)
    with pytest.raises(ValueError, match="positions must be a torch.long tensor of shape"):
        model(torch.zeros(1, 1, dtype=torch.long), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"positions must be in \[0, 16\)"):
        model(torch.zeros(1, 1, dtype=torch.long), torch.tensor([20]))


def test_without_the_fence_inductor_loses_ladders_overlap():
    """The fence is not decoration: compiled without it, some ladder all-reduces hide behind nothing."""
    from ladder_edu.models.compiled import overlap_worker
    overlap = launch.run(overlap_worker, 2, "tiny", "ladder", False, options=launch.LaunchOptions(timeout_s=300))[0]
    assert overlap[-1] == 0 and min(overlap[:-1]) == 0, overlap
