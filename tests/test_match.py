"""Recovery stages beyond distillation: teacher-forced per-module matching, the completion-only KL and its reply
mask, the checkpoint chosen by generation score; each resumes after a kill and ends where an uninterrupted run does."""
import os

import pytest
import torch

from ladder_edu import Transformer, get_config, init_weights
from ladder_edu.recovery.choose import divergence, teacher_log_probs
from ladder_edu.recovery.distill import reply_mask
from ladder_edu.recovery.finetune import BEST, CHECKPOINT, FinetuneConfig, finetune, read_checkpoint
from ladder_edu.recovery.match import match_loss, original_streams

CFG = get_config("tiny", n_layers=4, init_std=0.08)
LADDER = (1, 2)
DATA = torch.randint(0, CFG.vocab_size, (32, 17), generator=torch.Generator().manual_seed(0))
CHATS = torch.randint(3, CFG.vocab_size, (16, 17), generator=torch.Generator().manual_seed(1))
CHATS[:, ::6] = 1                                                   # "<|im_start|>" every 6 tokens
CHATS[:, 1::12], CHATS[:, 7::12] = 20, 21                           # roles alternate: 20 user, 21 assistant
CHATS[:, 2::6], CHATS[:, 5::6] = 0, 2                               # newline after the role; "<|im_end|>"
MASK = reply_mask(CHATS, 1, 2, (21,), 0)
FT = dict(steps=20, batch=4, lr=3e-3, warmup=2, checkpoint_every=4, eval_every=5, chat_fraction=0.5,
          train_layers=list(LADDER))
RUNS = {"match": {"method": "match"},
        "replies-by-generation": {"method": "distill", "reply_only": True, "select": "gen_kl"}}

CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_match import CHATS, DATA, FT, MASK, RUNS, student, teacher
from ladder_edu.recovery.finetune import FinetuneConfig, finetune
finetune(student(), DATA, FinetuneConfig(**FT, **RUNS[{run!r}]), {out!r}, DATA[:4], teacher=teacher(),
         chat_blocks=CHATS, chat_mask=MASK, progress=False, on_eval=lambda h: time.sleep(0.3))
"""


def state():
    return init_weights(CFG, 0)


def student(s=None):
    return Transformer.from_full_state_dict(CFG.replace(ladder_layers=LADDER), s or state())


def teacher(s=None):
    return Transformer.from_full_state_dict(CFG, s or state())


def test_the_reply_mask_marks_the_assistants_tokens_and_its_end():
    row = [1, 20, 0, 7, 2, 9, 1, 21, 0, 8, 8, 2, 9, 1]    # user "7", then assistant "8 8" <|im_end|>
    mask = reply_mask(torch.tensor([row, row[9:] + row[:9]]), 1, 2, (21,), 0)
    #               targets: 20 0  7  2  9  1  21 0  8  8  2  9  1
    assert mask[0].int().tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    # a block that starts inside a reply: the turn after it is the user's, so the start is the assistant's
    assert mask[1].int().tolist()[:3] == [1, 1, 0]
    assert MASK.shape == (16, 16) and 0 < MASK.float().mean() < 0.5


@torch.no_grad()
def test_teacher_forced_matching_is_zero_where_the_stale_stream_is_the_fresh_one():
    """Zero layer 1's MLP output and layer 2's attention output: then both modules of layer 2, made ladder, read a stale
    stream equal to the fresh one, and its term is 0; layer 1's attention reads a stream without layer 0's MLP."""
    s = state()
    s["layers.1.mlp.down_proj.weight"].zero_()
    s["layers.2.self_attn.o_proj.weight"].zero_()
    tokens = DATA[:4]
    only_2 = Transformer.from_full_state_dict(CFG.replace(ladder_layers=(2,)), s)
    assert float(match_loss(only_2, teacher(s), tokens)) < 1e-10
    assert float(match_loss(student(s), teacher(s), tokens)) > 1e-3            # layer 1 is stale for real
    inputs, outputs = original_streams(teacher(s), tokens)
    assert len(inputs) == 2 * CFG.n_layers
    torch.testing.assert_close(inputs[1], inputs[0] + outputs[0])               # r_1 = r_0 + h_1
    with pytest.raises(ValueError, match="no ladder layers"):
        match_loss(teacher(s), teacher(s), tokens)


def test_matching_trains_the_converted_modules_towards_the_originals_outputs(tmp_path):
    """On structured toy text (random token ids have nothing to learn), 40 steps at least halve every converted
    module's mean held-out error relative to the original's outputs."""
    from .test_convert import markov_text
    text = markov_text(40, 17, torch.Generator().manual_seed(0))
    model, orig, held = student(), teacher(), text[-8:]
    with torch.no_grad():
        before = float(match_loss(model, orig, held))
    finetune(model, text[:-8], FinetuneConfig(**{**FT, "steps": 40, "method": "match"}), str(tmp_path), held,
             teacher=orig, progress=False)
    with torch.no_grad():
        after = float(match_loss(model, orig, held))
    assert after <= 0.5 * before, (before, after)
    for k, v in model.state_dict().items():                           # only the converted layers changed
        if k.startswith("layers."):
            assert (int(k.split(".")[1]) in LADDER) != torch.equal(v, state()[k]), k


def test_the_checkpoint_is_the_best_generation_score():
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ladder-edu-select-{os.getpid()}")
    model, orig = student(), teacher()
    hist = finetune(model, DATA, FinetuneConfig(**FT, **RUNS["replies-by-generation"]), out, DATA[:4],
                    teacher=orig, chat_blocks=CHATS, chat_mask=MASK, progress=False)
    scores = {e["step"]: e["gen_kl"] for e in hist["eval"]}
    best = min(scores, key=scores.get)
    assert hist["selected"]["step"] == best and os.path.exists(os.path.join(out, BEST))
    assert divergence(model, teacher_log_probs(orig, DATA[:4]), DATA[:4]) == pytest.approx(scores[best], rel=1e-4)
    with pytest.raises(ValueError, match="reply_only needs"):
        finetune(student(), DATA, FinetuneConfig(**FT, method="distill", reply_only=True), out + "x", DATA[:4],
                 teacher=orig, chat_blocks=CHATS, progress=False)
    with pytest.raises(ValueError, match="valid choices: last, gen_kl"):
        FinetuneConfig(select="best")


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(tmp_path, run):
    ft = FinetuneConfig(**FT, **RUNS[run])
    ref = student()
    finetune(ref, DATA, ft, str(tmp_path / "ref"), DATA[:4], teacher=teacher(), chat_blocks=CHATS, chat_mask=MASK,
             progress=False)
    out = tmp_path / "run"
    from .killing import kill_after_steps      # (not at the top: the child imports this module)
    kill_after_steps(CHILD.format(tests=os.path.dirname(__file__), out=str(out), run=run), out, 8)
    assert 8 <= read_checkpoint(str(out / CHECKPOINT))["step"] < FT["steps"]
    model = student()
    hist = finetune(model, DATA, ft, str(out), DATA[:4], teacher=teacher(), chat_blocks=CHATS, chat_mask=MASK,
                    progress=False)
    assert [h["step"] for h in hist["train"]] == list(range(FT["steps"]))
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=1e-6)
