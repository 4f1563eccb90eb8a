"""TP on real gloo process groups equals the single-device model (tolerance: see ladder_edu/models/check.py)."""
import pytest
import torch

from ladder_edu import get_config
from ladder_edu.tp import launch
from ladder_edu.models.check import check, compare

CASES = [dict(arch="standard"), dict(arch="parallel"), dict(arch="parallel", parallel_shared_norm=True),
         dict(arch="ladder"), dict(arch="standard", ladder_layers=2), dict(arch="standard", ladder_layers=(0, 2))]


@pytest.mark.parametrize("tp", [2, 4])
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_tp_equals_single_device(kw, tp):
    res = check(get_config("tiny", **kw), tp, batch=2, prompt_len=12, new_tokens=6)
    assert res.max_abs_diff < 1e-4, res.summary()
    assert res.ranks_agree and res.tokens_equal, res.summary()
    assert res.passed


def test_a_lone_ladder_layer_in_the_middle_equals_one_device():
    res = check(get_config("tiny", ladder_layers=(1,)), 2, batch=2, prompt_len=12, new_tokens=6)
    assert res.passed and res.max_abs_diff < 1e-4, res.summary()


def test_check_detects_a_wrong_model():
    """The check has power: TP ladder outputs compared against a *standard* reference must fail."""
    from ladder_edu.models.check import tp_check_worker
    from ladder_edu.models.spec import RunSpec
    ladder = launch.run(tp_check_worker, 2, RunSpec(get_config("tiny", arch="ladder"), 2, batch=2, context=12, steps=4))
    standard = launch.run(tp_check_worker, 2, RunSpec(get_config("tiny"), 2, batch=2, context=12, steps=4))
    mixed = [dict(r, ref_logits=standard[0]["ref_logits"], ref_tokens=standard[0]["ref_tokens"]) for r in ladder]
    res = compare(get_config("tiny", arch="ladder"), 2, mixed)
    assert not res.passed and res.max_abs_diff > 1e-2


def test_upper_bound_is_never_checked():
    with pytest.raises(ValueError, match="not a valid model"):
        check(get_config("tiny", comm="skip"), 2)


def sampled_tokens(cfg, tp_size):
    from ladder_edu import Transformer, TPGroup, init_weights
    from ladder_edu import generate
    from ladder_edu.models.check import example_tokens
    tp = TPGroup.from_dist() if tp_size > 1 else TPGroup.single()
    model = Transformer.from_full_state_dict(cfg, init_weights(cfg, 1), tp)
    return generate(model, example_tokens(cfg, 2, 8), 10, temperature=0.8, top_k=20, seed=5)


def test_sampling_agrees_across_tp():
    cfg = get_config("tiny", arch="ladder", init_std=0.2)
    single = sampled_tokens(cfg, 1)
    ranks = launch.run(sampled_tokens, 2, cfg, 2)
    assert torch.equal(ranks[0], ranks[1])
    assert torch.equal(ranks[0], single)
    assert len(set(single[0].tolist())) > 1


def compiled_ladder_logits(cfg):
    """Ladder under torch.compile (aot_eager backend: no C++ toolchain needed): functional collectives path."""
    from ladder_edu import Transformer, TPGroup, init_weights
    from ladder_edu.models.check import example_tokens
    torch._dynamo.reset()
    model = Transformer.from_full_state_dict(cfg, init_weights(cfg, 0), TPGroup.from_dist())
    tokens = example_tokens(cfg, 1, 8)
    with torch.no_grad():
        eager = model(tokens)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(tokens)
    return (eager - compiled).abs().max().item()


def test_torch_compile_uses_functional_collectives_correctly():
    diffs = launch.run(compiled_ladder_logits, 2, get_config("tiny", arch="ladder", n_layers=2), options=launch.LaunchOptions(timeout_s=120))
    assert max(diffs) < 1e-5
