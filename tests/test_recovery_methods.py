"""The recovery methods beyond plain distillation: on-policy distillation, LoRA, reverse KL, self-written prompts."""
import math
import os

import pytest
import torch

from ladder_edu import Transformer, get_config, init_weights
from ladder_edu.recovery.distill import distill_loss, student_samples
from ladder_edu.recovery.evaluate import load_probe
from ladder_edu.recovery.finetune import CHECKPOINT, FinetuneConfig, finetune, read_checkpoint
from ladder_edu.recovery.lora import add_lora, merge_lora
from ladder_edu.recovery.prompts import _items, keep_prompt, probe_topics

CFG = get_config("tiny", ladder_layers=2)
DATA = torch.randint(0, CFG.vocab_size, (32, 17), generator=torch.Generator().manual_seed(0))
PROMPTS = ([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11], [12, 13, 14]], 0)     # (token ids, end-of-turn id)
FT = dict(steps=24, batch=4, lr=3e-3, warmup=3, checkpoint_every=4, eval_every=8, method="onpolicy",
          chat_fraction=0.5, reply_tokens=6, lora_rank=2, freeze_below=1)

CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_recovery_methods import DATA, FT, PROMPTS, student, teacher
from ladder_edu.recovery.finetune import FinetuneConfig, finetune
finetune(student(), DATA, FinetuneConfig(**FT), {out!r}, DATA[:4], teacher=teacher(), prompts=PROMPTS,
         progress=False, on_eval=lambda h: time.sleep(0.3))
"""


def student():
    return Transformer.from_full_state_dict(CFG, init_weights(CFG, 0))


def teacher():
    return Transformer.from_full_state_dict(CFG.replace(ladder_layers=0), init_weights(CFG, 0))


def test_forward_and_reverse_kl_and_the_reply_mask():
    s, t = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    ls, lt = s.log_softmax(-1), t.log_softmax(-1)
    fwd = (lt.exp() * (lt - ls)).sum(-1)
    rev = (ls.exp() * (ls - lt)).sum(-1)
    y = torch.zeros(2, 5, dtype=torch.long)
    assert torch.isclose(distill_loss(s, t, y), fwd.mean())
    assert torch.isclose(distill_loss(s, t, y, divergence="reverse"), rev.mean())
    assert not torch.isclose(fwd.mean(), rev.mean())                       # they are different objectives
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    assert torch.isclose(distill_loss(s, t, y, mask=mask), fwd[mask].mean())
    assert float(distill_loss(t, t, y, divergence="reverse")) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="valid choices: forward, reverse"):
        distill_loss(s, t, y, divergence="sideways")
    with pytest.raises(ValueError, match="valid choices: plain, distill, onpolicy"):
        FinetuneConfig(method="gkd")
    with pytest.raises(ValueError, match="needs prompts"):
        finetune(student(), DATA, FinetuneConfig(method="onpolicy"), "unused", teacher=teacher(), progress=False)


def test_student_samples_are_the_students_own_and_masked_after_the_end_of_turn():
    model = student()
    gen = torch.Generator().manual_seed(3)
    tokens, mask = student_samples(model, PROMPTS[0], 3, 6, end=int(DATA[0, 0]), gen=gen, seed=7)
    assert tokens.shape[1] in (4 + 6, 3 + 6) and mask.shape == (3, tokens.shape[1] - 1)
    p = tokens.shape[1] - 6
    assert not mask[:, :p - 1].any() and mask[:, p - 1].all()             # prompt positions never count
    for row, m in zip(tokens, mask):                                      # nothing after the first end token
        reply = row[p:].tolist()
        if int(DATA[0, 0]) in reply:
            assert m[p - 1:].sum() == reply.index(int(DATA[0, 0])) + 1
    again, _ = student_samples(model, PROMPTS[0], 3, 6, int(DATA[0, 0]), torch.Generator().manual_seed(3), 7)
    assert torch.equal(tokens, again)                                     # seeded: a resumed run samples the same


def test_lora_starts_at_the_model_trains_only_adapters_and_merges_into_a_plain_model():
    model, x = student(), DATA[:2, :9]
    before, names = model(x), set(model.state_dict())
    assert add_lora(model, first=1, rank=2) == 7 * (CFG.n_layers - 1)     # 7 projections per adapted layer
    torch.testing.assert_close(model(x), before)                          # B = 0: the converted model exactly
    adapted = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("layers.")
               and not n.startswith("layers.0.")]                       # (finetune freezes what lies below)
    assert adapted and all(n.endswith((".A", ".B")) for n in adapted)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".B"):
                p.normal_()
    adapted = model(x)
    merge_lora(model)
    assert set(model.state_dict()) == names                               # an ordinary model again
    torch.testing.assert_close(model(x), adapted, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        add_lora(student(), 0, 0)


def test_a_killed_onpolicy_lora_run_resumes_and_ends_where_an_uninterrupted_one_does(tmp_path):
    ref = student()
    hist = finetune(ref, DATA, FinetuneConfig(**FT), str(tmp_path / "ref"), DATA[:4], teacher=teacher(),
                    prompts=PROMPTS, progress=False)
    # 24 steps of a 2-layer toy move its held-out loss by less than rounding differences between CPUs, so this
    # test asserts what it is for (the run resumes exactly, and the weights moved), not that the loss fell.
    assert len(hist["eval"]) == 4 and all(math.isfinite(e["loss"]) for e in hist["eval"])
    assert not any(n.endswith((".A", ".B")) for n in ref.state_dict())   # merged at the end
    out = tmp_path / "run"
    from .killing import kill_after_steps      # (not at the top: the child imports this module)
    kill_after_steps(CHILD.format(tests=os.path.dirname(__file__), out=str(out)), out, 8)
    saved = read_checkpoint(str(out / CHECKPOINT))
    assert 8 <= saved["step"] < FT["steps"], saved["step"]
    layers = [k for k in saved["weights"] if k.startswith("layers.")]
    assert layers and all(k.endswith((".A", ".B")) for k in layers)     # of the layers, only the adapters
    model = student()
    hist = finetune(model, DATA, FinetuneConfig(**FT), str(out), DATA[:4], teacher=teacher(), prompts=PROMPTS,
                    progress=False)
    assert [h["step"] for h in hist["train"]] == list(range(FT["steps"]))
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=1e-6)
    assert not torch.equal(model.state_dict()["layers.2.mlp.down_proj.weight"],
                           student().state_dict()["layers.2.mlp.down_proj.weight"])      # it did learn
    torch.testing.assert_close(model.state_dict()["layers.0.mlp.down_proj.weight"],
                               student().state_dict()["layers.0.mlp.down_proj.weight"])  # frozen below


def test_self_written_prompts_never_touch_the_probes_topics():
    topics = probe_topics()
    assert {"capital", "paris", "shakespeare", "oxygen", "triangle"} <= topics
    assert not {"what", "which", "many", "does"} & topics and " what is 2 2 " in topics
    for item in load_probe():
        assert not keep_prompt(item["q"], topics), item["q"]             # every probe question is refused
    assert not keep_prompt("Which capitals in Europe are the oldest?", topics)   # plurals too
    assert keep_prompt("How do I keep bread fresh for longer?", topics)
    assert not keep_prompt("Hi", topics) and not keep_prompt("word " * 30, topics)
    assert _items(" How do bees fly?\n2. Why is toast crunchy?\n3) What is jazz?<|im_end|>\n4. after end") == \
        ["How do bees fly?", "Why is toast crunchy?", "What is jazz?"]
