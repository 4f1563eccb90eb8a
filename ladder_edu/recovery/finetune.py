"""The recovery fine-tune: AdamW, warm-up + cosine, gradient clipping, bf16 autocast, resumable checkpoints.

The configuration and the learning-rate schedule (warm-up + cosine) are in ``ftconfig.py``.

Each step draws its batch with a generator seeded by (seed, step), so a resumed run sees exactly the batches an
uninterrupted one would. ``plain`` minimises next-token cross-entropy on the training blocks; ``distill`` minimises
``distill.distill_loss`` to a teacher's logits, on training blocks mixed with teacher-written chat blocks;
``onpolicy`` replaces the chat blocks by replies the student itself samples at that step (``distill.student_samples``,
seeded by (seed, step), so a resumed run samples what an uninterrupted one would), scored by the teacher; ``match``
trains each converted module alone on the original's streams (``match.match_loss``: teacher-forced per-module output
matching). ``reply_only`` keeps distillation's KL on the chat blocks' reply tokens (``distill.reply_mask``); the
text blocks keep every token. With ``lora_rank`` r > 0 the trained layers are frozen and learn through rank-r
adapters (``lora``), merged at the end.

``select="gen_kl"``: every evaluation also measures the *generation score*, KL(teacher || model) per token on the
held-out blocks (the teacher's own replies), keeps the trainable weights of the best evaluation so far in
``best.safetensors`` (atomically), and loads them at the end: the checkpoint is chosen by generation, not by the
last step.

Checkpoints (every ``checkpoint_every`` steps, at the end, and when interrupted by Ctrl-C / a notebook's stop
button) hold the trainable weights (by default the embeddings stay frozen: a conversion changes the dataflow, not
the vocabulary), the AdamW state and the history. They are written to a temporary file and renamed over the old
one, so a run killed at any moment leaves the last complete checkpoint; ``finetune`` on the same ``out_dir``
resumes from it. Checkpoints are safetensors with a JSON header (``safe_io``): students share these directories,
and a pickle found there is refused, never loaded. A NaN or a loss above ``max_loss`` stops the run
with ``TrainingDiverged`` before the bad step is applied; the last good checkpoint stays.
"""
from __future__ import annotations

import math
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .distill import distill_loss, hidden_loss, student_samples, with_module_outputs
from .ftconfig import METHODS, PROMPTS, SELECT, FinetuneConfig, lr_at  # noqa: F401  (re-exported)
from .lora import add_lora, merge_lora
from .evaluate import mean_loss
from .match import match_loss
from .safe_io import load_tensors, refuse_pickles, save_tensors
from ..util import atomic

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"


class TrainingDiverged(RuntimeError):
    pass


def write_checkpoint(path: str, config: dict, step: int, history: dict, optimizer: dict, weights: dict) -> None:
    """Weights and AdamW tensors in safetensors; config, step, history and the optimizer's scalars in its header."""
    tensors = {f"weights.{n}": t for n, t in weights.items()}
    scalars = {}
    for i, st in optimizer["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer.{i}.{k}"] = v.reshape(-1) if v.dim() == 0 else v
                scalars[f"{i}.{k}"] = "scalar" if v.dim() == 0 else "tensor"
            else:
                scalars[f"{i}.{k}"] = v
    save_tensors(path, tensors, {"config": config, "step": step, "history": history, "optimizer_state": scalars,
                                 "param_groups": optimizer["param_groups"]})


def read_checkpoint(path: str) -> dict:
    """The inverse of ``write_checkpoint`` (no pickle involved)."""
    tensors, meta = load_tensors(path)
    state: dict = {}
    for key, kind in meta["optimizer_state"].items():
        i, name = key.split(".", 1)
        t = tensors.get(f"optimizer.{key}")
        state.setdefault(int(i), {})[name] = (t.reshape(()) if kind == "scalar" else t) if t is not None else kind
    return {"config": meta["config"], "step": meta["step"], "history": meta["history"],
            "weights": {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")},
            "optimizer": {"state": state, "param_groups": meta["param_groups"]}}


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _batch(blocks: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    return blocks[torch.randint(len(blocks), (n,), generator=gen)]


def finetune(model, train_blocks: torch.Tensor, ft: FinetuneConfig, out_dir: str, eval_blocks=None, teacher=None,
             chat_blocks=None, progress: bool = True, desc: str = "fine-tune", on_eval=None,
             prompts: tuple[list[list[int]], int] | None = None, chat_mask: torch.Tensor | None = None) -> dict:
    """Fine-tune ``model`` (one device) in place; returns the history {"train": [...], "eval": [...]}.

    ``on_eval(history)`` is called after each evaluation (a notebook redraws its loss curve there).
    ``prompts`` = (chat prompts as token ids, the end-of-turn token): what ``onpolicy`` samples replies to."""
    data = Data(train_blocks, eval_blocks, chat_blocks, prompts, chat_mask)
    trainer = Trainer(model, ft, out_dir, data, teacher, on_eval)
    return trainer.run(progress, desc)


@dataclass
class Data:
    """What a fine-tune reads: training blocks, held-out blocks, teacher-written chat blocks, chat prompts."""
    train: torch.Tensor
    eval: torch.Tensor | None = None
    chats: torch.Tensor | None = None
    prompts: tuple[list[list[int]], int] | None = None
    chat_mask: torch.Tensor | None = None      # [n_chats, block - 1]: true where the target is a reply token


class Trainer:
    """One resumable fine-tune: the model, its optimizer and history, and the checkpoint that holds them.

    Each step draws a batch (``batch``), computes the loss of ``ft.method`` (``loss``), clips and applies the
    gradient; every ``eval_every`` steps it evaluates, every ``checkpoint_every`` it saves atomically, so a run
    that is killed resumes from its last checkpoint when started again with the same configuration."""

    def __init__(self, model, ft: FinetuneConfig, out_dir: str, data: Data, teacher=None, on_eval=None):
        if ft.method != "plain" and teacher is None:
            raise ValueError(f"method {ft.method!r} needs the teacher: the unconverted model")
        if ft.method == "onpolicy" and not (data.prompts and data.prompts[0]):
            raise ValueError("method 'onpolicy' needs prompts=(token ids of chat prompts, end-of-turn token id)")
        if ft.reply_only and (ft.method != "distill" or data.chat_mask is None):
            raise ValueError("reply_only needs method 'distill' and the chat blocks' reply mask (Data.chat_mask)")
        if ft.select == "gen_kl" and (teacher is None or data.eval is None):
            raise ValueError("select='gen_kl' needs the teacher and held-out blocks (eval_blocks) to score")
        self.model, self.ft, self.data, self.teacher, self.on_eval = model, ft, data, teacher, on_eval
        self.out_dir, self.path = out_dir, os.path.join(out_dir, CHECKPOINT)
        os.makedirs(out_dir, exist_ok=True)
        if ft.freeze_embeddings:
            model.embed_tokens.weight.requires_grad_(False)
        for layer in (model.layers[:ft.freeze_below] if ft.freeze_below else ()):    # Kraken has no .layers
            layer.requires_grad_(False)
        if ft.train_layers is not None:
            bad = [i for i in ft.train_layers if not 0 <= i < len(model.layers)]
            if bad:
                raise ValueError(f"train_layers {bad} out of range: the model has layers 0..{len(model.layers) - 1}")
            for i, layer in enumerate(model.layers):
                layer.requires_grad_(i in ft.train_layers)
        if ft.lora_rank:
            add_lora(model, ft.freeze_below, ft.lora_rank, seed=ft.seed)
        self.params = trainable(model)
        self.opt = torch.optim.AdamW(self.params.values(), lr=ft.lr, weight_decay=ft.weight_decay, betas=(0.9, 0.95))
        self.history = {"config": asdict(ft), "train": [], "eval": []}
        self.start = self._resume()
        self._teacher_logp = None                                         # generation_score's, computed once
        self.hidden = ft.method != "plain" and ft.hidden_weight > 0       # also match module outputs
        chats = ft.method == "onpolicy" or (ft.method in ("distill", "match") and data.chats is not None)
        self.n_chat = round(ft.batch * ft.chat_fraction) if chats else 0

    def _resume(self) -> int:
        refuse_pickles(self.out_dir)
        if not os.path.exists(self.path):
            return 0
        ck = read_checkpoint(self.path)
        if {**asdict(FinetuneConfig()), **ck["config"]} != asdict(self.ft):    # fields added since: their defaults
            raise ValueError(f"{self.path} was written by a run with a different configuration; use another "
                             f"out_dir or delete it. Checkpoint: {ck['config']}")
        self.model.load_state_dict(ck["weights"], strict=False)
        self.opt.load_state_dict(ck["optimizer"])
        self.history = ck["history"]
        return ck["step"]

    def evaluate(self, step: int) -> None:
        ev = self.history["eval"]
        if self.data.eval is not None and (not ev or ev[-1]["step"] != step):
            ev.append({"step": step, "loss": mean_loss(self.model, self.data.eval)})
            if self.ft.select == "gen_kl":
                ev[-1]["gen_kl"] = self.generation_score()
                if ev[-1]["gen_kl"] <= min(e["gen_kl"] for e in ev):
                    save_tensors(os.path.join(self.out_dir, BEST), {n: p.detach() for n, p in self.params.items()},
                                 {"step": step, "gen_kl": ev[-1]["gen_kl"]})
            if self.on_eval:
                self.on_eval(self.history)

    def generation_score(self) -> float:
        """KL(teacher || model) per token on the held-out blocks (the teacher's log-probabilities computed once)."""
        from .choose import divergence, teacher_log_probs
        if self._teacher_logp is None:
            self._teacher_logp = teacher_log_probs(self.teacher, self.data.eval)
        was = self.model.training
        self.model.eval()
        score = divergence(self.model, self._teacher_logp, self.data.eval)
        self.model.train(was)
        return score

    def load_best(self) -> None:
        """The trainable weights of the best evaluation (``select="gen_kl"``) back into the model."""
        tensors, meta = load_tensors(os.path.join(self.out_dir, BEST))
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[n])
        self.history["selected"] = meta

    def save(self, step: int) -> None:
        write_checkpoint(self.path, asdict(self.ft), step, self.history, self.opt.state_dict(),
                         {n: p.detach() for n, p in self.params.items()})
        atomic.write_json(os.path.join(self.out_dir, "history.json"), self.history)

    def run(self, progress: bool = True, desc: str = "fine-tune") -> dict:
        from tqdm.auto import tqdm
        self.model.train()
        if self.start == 0:
            self.evaluate(0)
        elif progress:
            print(f"{desc}: resuming from step {self.start} of {self.ft.steps} ({self.path})")
            if self.on_eval and self.history["eval"]:
                self.on_eval(self.history)
        bar = tqdm(range(self.start, self.ft.steps), desc=desc, initial=self.start, total=self.ft.steps,
                   disable=not progress)
        try:
            for step in bar:
                bar.set_postfix(loss=f"{self.step(step):.3f}")
        except (KeyboardInterrupt, TrainingDiverged):
            if len(self.history["train"]) > self.start:    # history["train"] holds steps 0 .. done-1
                self.save(len(self.history["train"]))      # every completed step is kept; run again to resume
            raise
        if self.ft.select == "gen_kl":
            self.load_best()
        if self.ft.lora_rank:
            merge_lora(self.model)
        self.model.eval()
        return self.history

    def batch(self, step: int):
        """This step's tokens [batch, block] (text, then teacher-written chats) and, for ``onpolicy``, the student's
        own sampled replies with their mask; every draw from this step's seed, so a resumed run draws the same."""
        ft, device = self.ft, self.model.embed_tokens.weight.device
        step_seed = ft.seed * 1_000_003 + step
        gen = torch.Generator().manual_seed(step_seed)
        rows = [_batch(self.data.train, ft.batch - self.n_chat, gen)]
        self.mask = None
        if self.n_chat and ft.method in ("distill", "match"):      # teacher-written chat blocks
            pick = torch.randint(len(self.data.chats), (self.n_chat,), generator=gen)
            rows.append(self.data.chats[pick])
            if ft.reply_only:                                      # text rows: every token; chats: the replies
                text = torch.ones(len(rows[0]), rows[0].shape[1] - 1, dtype=torch.bool)
                self.mask = torch.cat([text, self.data.chat_mask[pick]]).to(device)
        sampled = None
        if self.n_chat and ft.method == "onpolicy":     # the student's own replies, this step's seed
            prompts, eot = self.data.prompts
            sampled = student_samples(self.model, prompts, self.n_chat, ft.reply_tokens, eot, gen, step_seed)
        return torch.cat(rows).to(device), sampled

    def loss(self, tokens: torch.Tensor, sampled) -> torch.Tensor:
        """Next-token cross-entropy (plain) or the distillation loss against the teacher (``distill.py``)."""
        ft, model, teacher, device = self.ft, self.model, self.teacher, tokens.device
        x = tokens[:, :-1]
        if ft.method == "match":
            return match_loss(model, teacher, x)
        logits, h_student = with_module_outputs(model, x, ft.freeze_below) if self.hidden else (model(x), None)
        if ft.method == "plain":
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        with torch.no_grad():
            teacher_logits, h_teacher = with_module_outputs(teacher, x, ft.freeze_below) if self.hidden else \
                (teacher(x), None)
        loss = distill_loss(logits, teacher_logits, tokens[:, 1:], ft.alpha, ft.temperature, ft.divergence, self.mask)
        if sampled is not None:                        # the teacher scores the student's samples
            samples, mask = sampled
            x = samples[:, :-1].to(device)
            with torch.no_grad():
                teacher_logits = teacher(x)
            on = distill_loss(model(x), teacher_logits, samples[:, 1:].to(device), ft.alpha, ft.temperature,
                              ft.divergence, mask.to(device))
            loss = (loss * tokens.shape[0] + on * self.n_chat) / (tokens.shape[0] + self.n_chat)
        if self.hidden:
            loss = loss + ft.hidden_weight * hidden_loss(h_student, h_teacher)
        return loss

    def step(self, step: int) -> float:
        """One optimizer step; returns its loss. Raises TrainingDiverged before applying a NaN or huge loss."""
        ft = self.ft
        tokens, sampled = self.batch(step)
        lr = lr_at(step, ft)
        for g in self.opt.param_groups:
            g["lr"] = lr
        with torch.autocast(tokens.device.type, dtype=torch.bfloat16) if ft.amp else nullcontext():
            loss = self.loss(tokens, sampled)
        value = float(loss.detach())
        if not math.isfinite(value) or value > ft.max_loss:
            raise TrainingDiverged(f"step {step}: loss {value} (NaN or above max_loss={ft.max_loss}); the run "
                                   f"stopped before applying it, and {self.path} keeps the last good state (step "
                                   f"{step}). Lower lr (now {ft.lr}) and start again in a new out_dir.")
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(self.params.values(), ft.clip))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.history["train"].append({"step": step, "loss": value, "lr": lr, "grad_norm": norm})
        done = step + 1
        if done % ft.eval_every == 0 or done == ft.steps:
            self.evaluate(done)
        if done % ft.checkpoint_every == 0 or done == ft.steps:
            self.save(done)
        return value
