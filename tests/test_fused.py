"""Fused projections: q, k, v as one GEMM and gate, up as one, per rank, with Hugging Face names in state dicts."""
import torch

from ladder_edu import Transformer, TPGroup, get_config, init_weights
from ladder_edu.tp.parallel import FusedColumnParallelLinear, shard_state_dict

CFG = get_config("tiny")


def test_each_ranks_fused_weight_is_its_shard_of_every_part():
    """Rank r's wqkv is [q_r; k_r; v_r]: the row split of each part, so TP sharding is unchanged."""
    full = init_weights(CFG, 0)
    for rank in range(2):
        tp = TPGroup(rank, 2, None)
        model = Transformer(CFG, tp)
        local = shard_state_dict(full, tp)
        model.load_state_dict(local)
        w = model.layers[1].self_attn.wqkv.weight
        want = torch.cat([local[f"layers.1.self_attn.{p}_proj.weight"] for p in "qkv"])
        assert torch.equal(w, want)
        assert torch.equal(model.layers[1].mlp.w13.weight, torch.cat(
            [local["layers.1.mlp.gate_proj.weight"], local["layers.1.mlp.up_proj.weight"]]))


def test_state_dicts_keep_hugging_face_names_in_order_and_round_trip():
    full = init_weights(CFG, 0)
    model = Transformer.from_full_state_dict(CFG, full)
    sd = model.state_dict()
    assert list(sd) == list(full) and all(torch.equal(sd[k], full[k]) for k in full)
    assert "layers.0.self_attn.q_proj.weight" in sd and not any("wqkv" in k or "w13" in k for k in sd)
    assert sd["layers.0.self_attn.q_proj.weight"].untyped_storage().data_ptr() != \
        sd["layers.0.self_attn.k_proj.weight"].untyped_storage().data_ptr()        # safetensors can save them
    again = Transformer(CFG)
    again.load_state_dict(sd)
    x = torch.randint(0, CFG.vocab_size, (2, 9))
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_fused_forward_is_the_separate_projections_and_bad_parts_are_refused():
    torch.manual_seed(0)
    lin = FusedColumnParallelLinear(16, {"a": 8, "b": 4}, TPGroup.single())
    torch.nn.init.normal_(lin.weight)
    x = torch.randn(3, 16)
    a, b = lin(x)
    torch.testing.assert_close(a, x @ lin.weight[:8].T)
    torch.testing.assert_close(b, x @ lin.weight[8:].T)
    try:
        FusedColumnParallelLinear(16, {"a": 8, "b": 3}, TPGroup(0, 2, None))
    except ValueError as e:
        assert "b: out_features=3 is not divisible by the TP degree 2" in str(e)
    else:
        raise AssertionError("an indivisible part was accepted")
