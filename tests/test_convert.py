"""Choosing the ladder layers and repairing them in closed form, on toy models with known answers."""
import json

import pytest
import torch

from ladder_edu import Transformer, get_config, init_weights
from ladder_edu.models.config import parse_ladder_layers
from ladder_edu.recovery.choose import choose_layers, scan
from ladder_edu.recovery.repair import least_squares, module_outputs, relative_error, repair

CFG = get_config("tiny", n_layers=4, init_std=0.08)
MODULES = [(1, "attn"), (1, "mlp"), (2, "attn"), (2, "mlp")]


def markov_text(n, length, gen, vocab=12):
    """Structured toy text: a Markov chain over a few tokens (random token ids have nothing a map can learn)."""
    P = torch.softmax(3 * torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(7)), -1)
    x = torch.zeros(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(0, vocab, (n,), generator=gen)
    for t in range(1, length):
        x[:, t] = torch.multinomial(P[x[:, t - 1]], 1, generator=gen)[:, 0]
    return x


def model(state, layers=()):
    return Transformer.from_full_state_dict(CFG.replace(ladder_layers=layers), {k: v.clone() for k, v in state.items()})


def test_least_squares_recovers_a_planted_map_and_ridge_pulls_to_the_old_weight():
    g = torch.Generator().manual_seed(0)
    z, w = torch.randn(500, 16, generator=g), torch.randn(8, 16, generator=g)
    w0 = torch.randn(8, 16, generator=g)
    torch.testing.assert_close(least_squares(z, z @ w.T, w0, ridge=0.0).float(), w, atol=1e-4, rtol=0)
    far = least_squares(z, z @ w.T, w0, ridge=1e6).float()
    assert (far - w0).abs().max() < 1e-3


@torch.no_grad()
def test_closed_form_repair_at_least_halves_the_error_on_held_out_text():
    """Layers 1 and 2 ladder: on text it was not fitted on, every repaired module's output is at least twice as
    close to the original's (relative squared error), and so are the logits."""
    state, g = init_weights(CFG, 0), torch.Generator().manual_seed(0)
    original, converted = model(state), model(state, (1, 2))
    calib, held = markov_text(32, 64, g), markov_text(16, 64, g)
    want = module_outputs(original, held, MODULES)
    before = {k: relative_error(v, want[k]) for k, v in module_outputs(converted, held, MODULES).items()}
    logits_before = relative_error(converted(held), original(held))
    report = repair(converted, original, calib)
    assert [(r["layer"], r["module"]) for r in report] == MODULES
    assert all(r["after"] < r["before"] for r in report)
    after = {k: relative_error(v, want[k]) for k, v in module_outputs(converted, held, MODULES).items()}
    for k in MODULES:
        assert after[k] <= 0.5 * before[k], (k, before[k], after[k])
    assert relative_error(converted(held), original(held)) <= 0.5 * logits_before
    assert set(converted.state_dict()) == set(original.state_dict())        # no new parameters


@torch.no_grad()
def test_the_scan_finds_the_layer_whose_conversion_changes_nothing():
    """Zero layer 3's output projections: its modules write nothing, so converting it alone costs 0 and the
    greedy choice takes it first; the costs are KL divergences (>= 0)."""
    state = init_weights(CFG, 0)
    state["layers.3.self_attn.o_proj.weight"].zero_()
    state["layers.3.mlp.down_proj.weight"].zero_()
    tokens = markov_text(4, 32, torch.Generator().manual_seed(1))
    costs = scan(CFG, state, tokens)
    assert sorted(costs) == [0, 1, 2, 3] and costs[3] < 1e-6 and min(costs[j] for j in (1, 2)) > 1e-4
    assert min(costs.values()) >= 0
    choice = choose_layers(CFG, state, tokens, 3, every=2)
    assert choice["order"][0] == 3 and choice["chosen"] == sorted(choice["order"]) and len(choice["chosen"]) == 3
    assert [r["base"] for r in choice["rounds"]] == [[], choice["order"][:2]]      # re-scored after 2
    with pytest.raises(ValueError, match=r"k must be in \[0, 4\]"):
        choose_layers(CFG, state, tokens, 5)


def test_ladder_layer_specs_parse_or_name_the_valid_forms():
    assert parse_ladder_layers("15", 30) == 15 and parse_ladder_layers("4,5,6", 30) == (4, 5, 6)
    assert parse_ladder_layers("7,", 30) == (7,)
    assert get_config("tiny", ladder_layers=[3, 1]).ladder_layers == (1, 3)
    for bad, msg in (("x", "give K"), ("4,40", r"in \[0, 29\]"), ("31", "between 0 and n_layers=30"),
                     ("2,2", "distinct")):
        with pytest.raises(ValueError, match=msg):
            parse_ladder_layers(bad, 30)


def test_the_conversion_pipeline_runs_every_stage_and_resumes(tmp_path, monkeypatch):
    """ladder-edu convert's stages end to end on a tiny model with SmolLM2's tokenizer (the pretrained model's
    own run is documented in docs/recovery.md); a rerun recomputes nothing, and every model it saved loads."""
    from ladder_edu.models.pretrained import load_tokenizer
    from ladder_edu.recovery import convert
    from ladder_edu.recovery.safe_io import load_model_dir
    cfg = get_config("tiny", vocab_size=49152, max_seq_len=512, n_layers=3)
    loaded = (cfg, init_weights(cfg, 0), load_tokenizer("smollm2"))
    from dataclasses import replace
    opts = convert.ConvertOptions(out=str(tmp_path), choose=1, steps=2, eval_blocks=1, score_blocks=1, calib_blocks=2,
                                  every=1, probe_limit=1, max_prompts=12, prompt_source="templates")

    def run(**changes):
        return convert.run_conversion(replace(opts, **changes), loaded, progress=False)

    r = run()
    assert set(r["rows"]) == set(convert.STAGES) - {"choice"}
    assert r["rows"]["original"]["gen_kl"] == pytest.approx(0, abs=1e-6)
    assert len(r["chosen"]) == 1 and r["choice"]["order"][0] == r["chosen"][0] and len(r["repair"]) == 2
    for row in r["rows"].values():
        assert {"ppl", "ood_ppl", "gen_kl", "probe_correct"} <= set(row)
    for d in ("repaired", *(f"{name}/model" for name in convert.TRAINED)):
        assert load_model_dir(str(tmp_path / d))[0].ladder_set == set(r["chosen"])
    assert set(r["histories"]["chosen+progressive"]) == {"group1", "group2", "group3"}
    assert r["histories"]["chosen+distill:replies"]["selected"]["step"] in (0, 1, 2)
    from ladder_edu.teach.recoveryplots import plot_distill_runs, stage_history
    train, evals = stage_history(r["histories"], "chosen+match+distill")     # continues after the matching
    assert [e["step"] for e in train] == [2, 3] and evals[0]["step"] == 2
    assert [e["step"] for e in stage_history(r["histories"], "chosen+progressive")[0]] == [0, 1, 2, 3]
    assert len(plot_distill_runs(r["histories"]).axes[1].lines) == len(convert.TRAINED)
    monkeypatch.setattr(convert, "choose_layers", lambda *a, **k: pytest.fail("the choice was recomputed"))
    monkeypatch.setattr(convert, "repair", lambda *a, **k: pytest.fail("the repair was recomputed"))
    again = run()
    assert again["rows"] == r["rows"]
    # progressive conversion resumes group by group: with its model gone, every group's checkpoint is complete
    import shutil
    from ladder_edu.recovery.finetune import Trainer

    def forget(name):
        shutil.rmtree(tmp_path / name / "model")
        results = json.loads((tmp_path / "results.json").read_text())
        results["rows"].pop(name, None)
        (tmp_path / "results.json").write_text(json.dumps(results))

    forget("chosen+progressive")
    real_step = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda *a, **k: pytest.fail("a finished step was recomputed"))
    rerun = run(stages=("chosen+progressive",))
    assert rerun["rows"]["chosen+progressive"] == r["rows"]["chosen+progressive"]
    forget("chosen+match")
    forget("chosen+match+distill")
    with pytest.raises(ValueError, match=r"starts from 'chosen\+match'"):
        run(stages=("chosen+match+distill",))
    with pytest.raises(ValueError, match="holds a run with k=1"):
        run(choose=2)
    # another budget of the same conversion reuses the choice (choose_layers would fail) and the original's text
    longer = tmp_path / "longer"
    monkeypatch.setattr(Trainer, "step", real_step)
    convert.reuse_choice(str(tmp_path), str(longer), 1)
    more = run(out=str(longer), steps=3, stages=("chosen+match",))
    assert more["chosen"] == r["chosen"] and more["rows"]["original"] == r["rows"]["original"]
    assert len(more["histories"]["chosen+match"]["train"]) == 3
    with pytest.raises(ValueError, match="chose 1 layers; k=2 needs more"):
        convert.reuse_choice(str(tmp_path), str(tmp_path / "k2"), 2)


def test_the_repairs_mixed_calibration_adds_as_many_training_blocks_spread_over_the_split():
    from types import SimpleNamespace
    from ladder_edu.recovery.convert import repair_tokens
    texts = SimpleNamespace(calib=torch.arange(5)[:, None].expand(5, 4), train=100 + torch.arange(40)[:, None].expand(40, 4))
    assert torch.equal(repair_tokens(texts, 3, "chats"), texts.calib[:3])
    mixed = repair_tokens(texts, 3, "mixed")
    assert mixed[:3, 0].tolist() == [0, 1, 2] and mixed[3:, 0].tolist() == [100, 113, 126]    # stride 40 // 3
