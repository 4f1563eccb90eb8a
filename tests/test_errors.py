"""Bad input gets a clear error that names the problem and the valid choices."""
import pytest
import torch

from ladder_edu import Transformer, TPGroup, get_config, init_weights
from ladder_edu import generate
from ladder_edu.models.config import ModelConfig, variant_config


def test_tp_degree_that_does_not_divide_heads():
    with pytest.raises(ValueError, match=r"TP degree 4 cannot shard .*smollm2-135m.*valid TP degrees: 1, 3"):
        get_config("smollm2-135m").check_tp(4)
    with pytest.raises(ValueError, match=r"n_kv_heads=2.*valid TP degrees: 1, 2"):
        Transformer(get_config("tiny", n_kv_heads=2), TPGroup(0, 4, None), device="meta")


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'huge'; valid choices: tiny, small"):
        get_config("huge")
    with pytest.raises(ValueError, match="unknown architecture 'mamba'; valid choices: standard, parallel, ladder, kraken"):
        get_config("tiny", arch="mamba")
    with pytest.raises(ValueError, match="unknown variant 'fast'; valid choices: .*upper_bound"):
        variant_config(get_config("tiny"), "fast")
    with pytest.raises(ValueError, match="unknown config field"):
        get_config("tiny", layers=3)


def test_inconsistent_shapes():
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        ModelConfig(dim=60, n_heads=8)
    with pytest.raises(ValueError, match="not a multiple of n_kv_heads"):
        ModelConfig(n_heads=8, n_kv_heads=3)
    with pytest.raises(ValueError, match="ladder_layers=9 must be between 0 and n_layers=4"):
        ModelConfig(ladder_layers=9)
    with pytest.raises(ValueError, match="converts the last k layers of a \\*standard\\* model"):
        ModelConfig(arch="ladder", ladder_layers=2)


@pytest.fixture(scope="module")
def model():
    cfg = get_config("tiny", max_seq_len=32)
    return Transformer.from_full_state_dict(cfg, init_weights(cfg))


def test_token_ids_out_of_range(model):
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 512\), got min 0, max 999"):
        model(torch.tensor([[0, 999]]))
    with pytest.raises(ValueError, match="got min -1"):
        model(torch.tensor([[-1, 3]]))


def test_no_value_is_read_back_while_a_cuda_graph_is_captured(model, monkeypatch):
    """A device-to-host read fails a CUDA graph's capture (the graph-captured emulated rank captures eager decode
    steps), so during a capture only shapes are checked; outside one the same ids are refused."""
    from ladder_edu.models.layers import check_tokens, reading_values_is_allowed
    bad = torch.tensor([[0, 999]])
    with pytest.raises(ValueError, match="token ids must be in"):
        check_tokens(model, bad, 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    assert not reading_values_is_allowed()
    check_tokens(model, bad, 0)                     # ids not read: no sync inside the capture
    with pytest.raises(ValueError, match="sequence too long"):
        check_tokens(model, torch.zeros(1, 40, dtype=torch.long), 0)    # shapes still checked


def test_sequence_longer_than_context(model):
    with pytest.raises(ValueError, match="sequence too long: positions up to 40 but the context is max_seq_len=32"):
        model(torch.zeros(1, 40, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds the context max_seq_len=32"):
        generate(model, torch.zeros(1, 30, dtype=torch.long), 5)


def test_wrong_dtypes(model):
    with pytest.raises(TypeError, match="tokens must be an integer tensor .* got torch.float32"):
        model(torch.zeros(1, 4))
    with pytest.raises(TypeError, match="unsupported dtype torch.int32; valid choices: float32, bfloat16, float16"):
        Transformer(get_config("tiny"), dtype=torch.int32, device="meta")
    with pytest.raises(ValueError, match="shape \\[batch, seq\\]"):
        model(torch.zeros(4, dtype=torch.long))


def test_decoding_without_a_cache(model):
    with pytest.raises(ValueError, match="needs a KV cache"):
        model(torch.zeros(1, 1, dtype=torch.long), start=5)


def test_sampling_parameters(model):
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), 2, temperature=-1)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), 2, temperature=1.0, top_k=0)
