"""The fine-tune loop: schedule, resume after a hard kill, Ctrl-C, divergence; the evaluation and distillation data."""
import math
import os

import pytest
import torch

from ladder_edu import get_config
from ladder_edu.recovery.distill import chat_prompts, distill_loss, pack
from ladder_edu.recovery.evaluate import corpus_split, is_correct, load_probe
from ladder_edu.recovery.finetune import (CHECKPOINT, FinetuneConfig, TrainingDiverged, finetune, lr_at, read_checkpoint,
                                         write_checkpoint)
from ladder_edu import Transformer, init_weights

CFG = get_config("tiny", ladder_layers=2)
DATA = torch.randint(0, CFG.vocab_size, (32, 17), generator=torch.Generator().manual_seed(0))
FT = dict(steps=30, batch=2, lr=3e-3, warmup=3, checkpoint_every=5, eval_every=10, method="plain")

CHILD = """
import sys, time, torch
sys.path.insert(0, {tests!r})
from test_finetune import CFG, DATA, FT, fresh
from ladder_edu.recovery.finetune import FinetuneConfig, finetune
finetune(fresh(), DATA, FinetuneConfig(**{ft!r}), {out!r}, DATA[:4], progress=False,
         on_eval=lambda h: time.sleep(0.2))
"""


def fresh():
    return Transformer.from_full_state_dict(CFG, init_weights(CFG, 0))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_learning_rate_schedule():
    ft = FinetuneConfig(steps=110, warmup=10, lr=1e-4, min_lr=1e-5)
    assert lr_at(0, ft) == pytest.approx(1e-5) and lr_at(9, ft) == pytest.approx(1e-4)
    assert lr_at(60, ft) == pytest.approx(5.5e-5) and lr_at(110, ft) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="valid choices: plain, distill"):
        FinetuneConfig(method="lora")


@pytest.mark.parametrize("ft", [FT, {**FT, "train_layers": [1, 3]}], ids=["top-layers", "a-set-of-layers"])
def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(tmp_path, ft):
    ref = fresh()
    ref_hist = finetune(ref, DATA, FinetuneConfig(**ft), str(tmp_path / "ref"), DATA[:4], progress=False)
    assert ref_hist["eval"][-1]["loss"] < ref_hist["eval"][0]["loss"]           # it learns
    out = tmp_path / "run"
    code = CHILD.format(tests=os.path.dirname(__file__), out=str(out), ft=ft)
    from .killing import kill_after_steps      # (not at the top: the child imports this module)
    kill_after_steps(code, out, 10)                                              # no chance to save anything
    saved = read_checkpoint(str(out / CHECKPOINT))["step"]
    assert 10 <= saved < FT["steps"], saved
    model = fresh()
    hist = finetune(model, DATA, FinetuneConfig(**ft), str(out), DATA[:4], progress=False)
    assert [h["step"] for h in hist["train"]] == list(range(FT["steps"]))
    if ft.get("train_layers"):                                 # of the layers, only the chosen ones changed
        start = fresh().state_dict()
        for k, v in model.state_dict().items():
            if k.startswith("layers."):
                assert (int(k.split(".")[1]) in ft["train_layers"]) != torch.equal(v, start[k]), k
    for k, v in weights(ref).items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=1e-6)


def test_ctrl_c_keeps_every_completed_step(tmp_path):
    def stop(history):
        if history["eval"][-1]["step"] == 7:
            raise KeyboardInterrupt
    ft = FinetuneConfig(**{**FT, "eval_every": 7, "checkpoint_every": 100})
    with pytest.raises(KeyboardInterrupt):
        finetune(fresh(), DATA, ft, str(tmp_path), DATA[:4], progress=False, on_eval=stop)
    assert read_checkpoint(str(tmp_path / CHECKPOINT))["step"] == 7
    with pytest.raises(ValueError, match="different configuration"):
        finetune(fresh(), DATA, FinetuneConfig(**{**FT, "lr": 1.0}), str(tmp_path), progress=False)
    # a checkpoint from before a field existed (here lora_rank) resumes: the new field takes its default
    path = str(tmp_path / CHECKPOINT)
    ck = read_checkpoint(path)
    del ck["config"]["lora_rank"]
    write_checkpoint(path, ck["config"], ck["step"], ck["history"], ck["optimizer"], ck["weights"])
    hist = finetune(fresh(), DATA, ft, str(tmp_path), progress=False)
    assert [h["step"] for h in hist["train"]] == list(range(FT["steps"]))


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_state(tmp_path):
    ft = FinetuneConfig(**{**FT, "lr": 5.0, "clip": 1e9, "warmup": 0, "max_loss": 7.0})
    with pytest.raises(TrainingDiverged, match="NaN or above max_loss=7.0") as err:
        finetune(fresh(), DATA, ft, str(tmp_path), progress=False)
    bad = int(str(err.value).split()[1].rstrip(":"))
    assert bad >= 1 and read_checkpoint(str(tmp_path / CHECKPOINT))["step"] == bad


def test_distillation_loss_is_a_kl_divergence():
    torch.manual_seed(0)
    t = torch.randn(3, 5, 11)
    assert float(distill_loss(t, t, torch.zeros(3, 5, dtype=torch.long))) == pytest.approx(0, abs=1e-6)
    s = torch.randn(3, 5, 11)
    p, q = t.softmax(-1), s.softmax(-1)
    kl = (p * (p.log() - q.log())).sum(-1).mean()
    assert float(distill_loss(s, t, torch.zeros(3, 5, dtype=torch.long))) == pytest.approx(float(kl), rel=1e-5)
    assert pack([[1, 2, 3], [4, 5, 6, 7]], 3).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_hidden_state_distillation_taps_and_loss(tmp_path):
    """with_module_outputs returns h_i of the layers from ``first`` up and leaves no hook behind; the hidden loss is
    each module's relative squared error; fine-tuning with it moves the ladder student's h_i toward the teacher's."""
    from ladder_edu.recovery.distill import hidden_loss, with_module_outputs
    teacher = Transformer.from_full_state_dict(CFG.replace(ladder_layers=0), init_weights(CFG, 0))
    student = fresh()                                   # the same weights, top 2 layers ladder
    x = DATA[:4, :-1]
    with torch.no_grad():
        logits, hs = with_module_outputs(student, x, 1)
        _, ht = with_module_outputs(teacher, x, 1)
        torch.testing.assert_close(logits, student(x))
    assert len(hs) == len(ht) == 2 * (CFG.n_layers - 1)
    assert not any(m._forward_hooks for m in student.modules())
    assert float(hidden_loss(ht, ht)) == 0
    before = float(hidden_loss(hs, ht))
    assert before > 1e-3                                # ladder's stale inputs change the module outputs
    rel = ((hs[0] - ht[0]).pow(2).mean() / ht[0].pow(2).mean() + (hs[1] - ht[1]).pow(2).mean() / ht[1].pow(2).mean())
    assert float(hidden_loss(hs[:2], ht[:2])) == pytest.approx(float(rel) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="same modules"):
        hidden_loss(hs, ht[:-1])
    ft = FinetuneConfig(**{**FT, "method": "distill", "hidden_weight": 1.0, "lr": 3e-4, "freeze_below": 1})
    finetune(student, DATA, ft, str(tmp_path), teacher=teacher, progress=False)
    with torch.no_grad():
        after = float(hidden_loss(with_module_outputs(student, x, 1)[1], with_module_outputs(teacher, x, 1)[1]))
    assert after < 0.75 * before, (before, after)


def test_corpus_split_and_probe():
    train, held = corpus_split()
    assert len(held) > 40_000 and len(train) > 4 * 40_000 and held[:200] not in train
    probe = load_probe()
    assert len(probe) >= 40 and all(item["q"].endswith("?") and item["a"] for item in probe)
    assert is_correct("The capital of France is Paris.", ["Paris"])
    assert not is_correct("Parisian food is great.", ["Paris"]) and not is_correct("well\nParis", ["Paris"])
    prompts = " ".join(chat_prompts(["for", "while"])).lower()
    assert not any(item["q"].lower().rstrip("?") in prompts for item in probe)     # the probe is never taught
    assert math.isclose(len(chat_prompts()), 128)


class _Boom:
    """Unpickling this runs os.system: what a malicious shared checkpoint would do."""
    def __reduce__(self):
        import os
        return (os.system, (f"touch {os.environ['LADDER_EDU_PWNED']}",))


def test_a_planted_pickle_is_refused_not_run(tmp_path, monkeypatch):
    import pickle
    from ladder_edu.recovery.safe_io import load_model_dir, load_tensors
    marker = tmp_path / "pwned"
    monkeypatch.setenv("LADDER_EDU_PWNED", str(marker))
    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ValueError, match="never unpickles"):
        finetune(fresh(), DATA, FinetuneConfig(**FT), str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="pickle"):
        load_model_dir(str(tmp_path))
    with pytest.raises(ValueError, match="refusing to load"):
        load_tensors(str(tmp_path / "checkpoint.pt"))
    (tmp_path / "checkpoint.pt").rename(tmp_path / "checkpoint.safetensors")      # a pickle under a safe name
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ValueError, match="not a readable safetensors file|not a valid model config"):
        load_model_dir(str(tmp_path))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_tensors(str(tmp_path / "checkpoint.safetensors"))
    assert not marker.exists()
