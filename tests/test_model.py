"""Single-device model: each architecture equals an independent, plainly written reference of its equations."""
import pytest
import torch

from ladder_edu import Transformer, get_config, init_weights


def _model(**kw):
    cfg = get_config("tiny", **kw)
    return Transformer.from_full_state_dict(cfg, init_weights(cfg, seed=3))


def _modules(m):
    """h_1, h_2, ... : attention and MLP of every layer, as functions of the residual stream (no all-reduce)."""
    rope = (m.rope_cos, m.rope_sin)
    hs = []
    for layer in m.layers:
        hs.append(lambda r, L=layer: L.self_attn(L.input_layernorm(r), 0, rope))
        hs.append(lambda r, L=layer: L.mlp(L.post_attention_layernorm(r)))
    return hs


def _head(m, r):
    return m.lm_head(m.norm(r))


TOKENS = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def reference(m, ladder_from_module):
    """r_i = h_i(r_{i-1}) + r_{i-1} for standard modules, r_i = h_i(r_{i-2}) + r_{i-1} for ladder modules.

    r_0 = r_{-1} = embeddings (a full ladder model feeds the embeddings to its first attention and MLP).
    """
    r = [m.embed_tokens(TOKENS)] * 2            # r[-1], r[0]
    for i, h in enumerate(_modules(m)):
        stale = i >= ladder_from_module
        r.append(h(r[-2] if stale else r[-1]) + r[-1])
    return _head(m, r[-1])


@torch.no_grad()
def test_standard_matches_reference():
    m = _model(arch="standard")
    torch.testing.assert_close(m(TOKENS), reference(m, ladder_from_module=10**9), rtol=0, atol=1e-5)


@torch.no_grad()
def test_ladder_matches_sequential_reference_and_differs_from_standard():
    m = _model(arch="ladder")
    out = m(TOKENS)
    torch.testing.assert_close(out, reference(m, ladder_from_module=0), rtol=0, atol=1e-5)
    standard = reference(m, ladder_from_module=10**9)          # same weights, standard dataflow
    assert (out - standard).abs().max() > 1e-2, "ladder must not silently compute the standard model"


@pytest.mark.parametrize("k", [1, 2, 3])
@torch.no_grad()
def test_hybrid_ladder_converts_last_k_layers(k):
    m = _model(arch="standard", ladder_layers=k)
    n = m.cfg.n_layers
    assert [layer.arch for layer in m.layers] == ["standard"] * (n - k) + ["ladder"] * k
    # The first ladder attention (module 2(n-k)) reads the stream before the last standard MLP's output.
    torch.testing.assert_close(m(TOKENS), reference(m, ladder_from_module=2 * (n - k)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("layers", [(0,), (1,), (2,), (0, 2), (1, 3), (0, 1, 3)])
@torch.no_grad()
def test_any_set_of_ladder_layers_matches_its_reference(layers):
    """Layer j ladder: its attention (module 2j) and its MLP (2j+1) read the stream one module stale."""
    m = _model(arch="standard", ladder_layers=layers)
    assert [layer.arch for layer in m.layers] == ["ladder" if j in layers else "standard" for j in range(4)]
    r = [m.embed_tokens(TOKENS)] * 2
    for i, h in enumerate(_modules(m)):
        r.append(h(r[-2] if i // 2 in layers else r[-1]) + r[-1])
    torch.testing.assert_close(m(TOKENS), _head(m, r[-1]), rtol=0, atol=1e-5)
    assert (m(TOKENS) - reference(m, 10**9)).abs().max() > 1e-3, "a ladder layer must change the dataflow"


@torch.no_grad()
def test_hybrid_extremes_equal_standard_and_ladder():
    full = init_weights(get_config("tiny"), seed=3)
    out = {}
    for name, kw in {"std": dict(arch="standard"), "k0": dict(ladder_layers=0), "ladder": dict(arch="ladder"),
                     "kall": dict(ladder_layers=4)}.items():
        out[name] = Transformer.from_full_state_dict(get_config("tiny", **kw), full)(TOKENS)
    torch.testing.assert_close(out["k0"], out["std"], rtol=0, atol=0)
    torch.testing.assert_close(out["kall"], out["ladder"], rtol=0, atol=0)


@pytest.mark.parametrize("shared", [False, True])
@torch.no_grad()
def test_parallel_block_matches_reference(shared):
    m = _model(arch="parallel", parallel_shared_norm=shared)
    rope = (m.rope_cos, m.rope_sin)
    x = m.embed_tokens(TOKENS)
    for L in m.layers:
        mlp_norm = L.input_layernorm if shared else L.post_attention_layernorm
        x = x + L.self_attn(L.input_layernorm(x), 0, rope) + L.mlp(mlp_norm(x))
    torch.testing.assert_close(m(TOKENS), _head(m, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ["standard", "parallel", "ladder"])
@torch.no_grad()
def test_kv_cache_decode_equals_full_forward(arch):
    m = _model(arch=arch)
    full = m(TOKENS)
    m.setup_cache(2)
    pieces = [m(TOKENS[:, :5], 0), m(TOKENS[:, 5:9], 5)] + [m(TOKENS[:, i:i + 1], i) for i in range(9, 12)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=0, atol=1e-5)


@torch.no_grad()
def test_tied_embeddings_and_gqa_presets_run():
    cfg = get_config("tiny", tie_embeddings=True, n_kv_heads=2)
    m = Transformer.from_full_state_dict(cfg, init_weights(cfg))
    assert m.lm_head is None
    assert "lm_head.weight" not in m.state_dict()
    assert m(TOKENS).shape == (2, 12, cfg.vocab_size)


def test_paper_presets_have_the_papers_shapes():
    from ladder_edu.models.config import PRESETS
    assert PRESETS["llama-3-70b"].n_layers == 80 and PRESETS["llama-3-70b"].dim == 8192
    assert PRESETS["llama-3-70b"].valid_tp_degrees() == [1, 2, 4, 8]
    assert PRESETS["smollm2-135m"].valid_tp_degrees() == [1, 3]
    assert 7.5e9 < PRESETS["llama-3-8b"].num_params() < 8.5e9
    assert 69e9 < PRESETS["llama-3-70b"].num_params() < 72e9
