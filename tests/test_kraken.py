"""Kraken: the model equals the official code's equations written out plainly, and TP equals one device."""
import pytest
import torch

from ladder_edu import get_config
from ladder_edu.models.check import check
from ladder_edu.models.kraken import KrakenTransformer
from ladder_edu import build_model, init_weights

TOKENS = torch.randint(0, 512, (2, 10), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def reference(m):
    """The official Kraken code (rohan-bp/kraken, training/kraken.py), literally: layer 1 a standard block per split; then a_i = x_i + Attn_i(n1(x_i)),
    u_i = a_i + sum_{j != i} x_j, x_i' = a_i + FFN_i(n2(u_i)); logits = head(norm(W [x_1; ...; x_N]))."""
    rope = (m.rope_cos, m.rope_sin)
    e = m.embed_tokens(TOKENS)
    xs = [e for _ in m.splits]
    for layer in range(m.cfg.n_layers):
        new = []
        for i, split in enumerate(m.splits):
            sub = split[layer]
            a = xs[i] + sub.self_attn(sub.input_layernorm(xs[i]), 0, rope)
            others = sum(xs[j] for j in range(len(xs)) if j != i) if layer > 0 else 0
            u = a + others
            new.append(a + sub.mlp(sub.post_attention_layernorm(u)))
        xs = new
    return m.lm_head(m.norm(m.conj(torch.cat(xs, dim=-1))))


@pytest.mark.parametrize("degree", [2, 4])
def test_kraken_matches_the_official_equations(degree):
    cfg = get_config("tiny", arch="kraken", kraken_degree=degree, init_std=0.1)
    m = build_model(cfg, init_weights(cfg, 1))
    assert isinstance(m, KrakenTransformer) and len(m.splits) == degree
    assert m.splits[0][0].self_attn.n_heads == 8 // degree and m.splits[0][0].self_attn.head_dim == 64 * degree // 8
    with torch.no_grad():
        torch.testing.assert_close(m(TOKENS), reference(m), rtol=0, atol=1e-5)


@torch.no_grad()
def test_kraken_kv_cache_decode_equals_full_forward():
    cfg = get_config("tiny", arch="kraken")
    m = build_model(cfg, init_weights(cfg))
    full = m(TOKENS)
    m.setup_cache(2)
    pieces = [m(TOKENS[:, :6], 0)] + [m(TOKENS[:, i:i + 1], i) for i in range(6, 10)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tp", [2, 4])
def test_kraken_tp_equals_single_device(tp):
    res = check(get_config("tiny", arch="kraken", kraken_degree=tp), tp)
    assert res.passed, res.summary()


def test_kraken_tp_must_be_its_degree():
    with pytest.raises(ValueError, match="TP must be 1 .* or 2; valid TP degrees: 1, 2"):
        get_config("tiny", arch="kraken").check_tp(4)
    with pytest.raises(ValueError, match="kraken_degree=3 must divide n_heads=8"):
        get_config("tiny", arch="kraken", kraken_degree=3)


def test_cli_check_kraken(capsys):
    from ladder_edu.cli import main
    assert main(["check", "--arch", "kraken", "--tp", "2"]) == 0
    assert "PASS  kraken" in capsys.readouterr().out
