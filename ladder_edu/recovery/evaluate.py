"""Evaluation for the accuracy-recovery story: held-out perplexity and a short-answer probe.

* **Corpus.** Python's own documentation, ``pydoc_data.topics`` (ships with every CPython). Its topics, sorted by
  name, are split by position: topic i is held out when i % 5 == 0 (16 of 79 topics on CPython 3.11), the rest is
  training text. The split is fixed; the same text is never trained on and evaluated.
* **Out-of-domain text.** CPython's ``LICENSE.txt`` (the history of Python's releases and the licenses' legal
  prose; it ships with CPython next to the standard library). Nothing here trains on it, so a recovery that
  lowers the pydoc perplexity by adapting to Python's documentation shows here whether it kept the original model.
* **Perplexity** = exp(mean next-token negative log-likelihood) over non-overlapping blocks of the held-out text.
* **Probe.** Short questions written for this project (``data/probe.json``), asked in the chat format; a reply
  counts when one of the accepted answers appears as a whole word in the first line of its greedy reply (at most
  12 tokens). The questions were kept only where the original SmolLM2-135M-Instruct answers them, so the original
  scores (near) 100% by construction: the probe measures how much of that a converted model keeps.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.generate import generate
from .options import BLOCK

PROBE_FILE = os.path.join(os.path.dirname(__file__), "data", "probe.json")
HELD_OUT = "pydoc held-out split"     # the held-out text's name in results (corpus_split's second part)
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHAT = f"{IM_START}user\n{{q}}{IM_END}\n{IM_START}assistant\n"
"""SmolLM2-Instruct's chat template (ChatML) for one user turn, ready for the assistant's reply."""


@dataclass(frozen=True)
class ChatFormat:
    """The chat template's token ids, read once from the tokenizer: a turn's start and end, "assistant", newline."""
    start: int
    end: int
    assistant: tuple[int, ...]
    newline: int

    @classmethod
    def of(cls, tokenizer) -> "ChatFormat":
        ids = tokenizer.convert_tokens_to_ids
        return cls(ids(IM_START), ids(IM_END), tuple(tokenizer("assistant").input_ids), tokenizer("\n").input_ids[0])

    @staticmethod
    def prompt_ids(tokenizer, question: str) -> list[int]:
        """The token ids of ``question`` as a user turn, up to where the assistant's reply starts."""
        return tokenizer(CHAT.format(q=question)).input_ids


def corpus_split() -> tuple[str, str]:
    """(train text, held-out text) of pydoc_data.topics, split as in the module docstring."""
    from pydoc_data.topics import topics
    keys = sorted(topics)
    held = [topics[k] for i, k in enumerate(keys) if i % 5 == 0]
    train = [topics[k] for i, k in enumerate(keys) if i % 5 != 0]
    return "\n\n".join(train), "\n\n".join(held)


def out_of_domain_text() -> tuple[str, str]:
    """(name, text) of the out-of-domain evaluation text (module docstring); a clear error if it is missing."""
    import sysconfig
    path = os.path.join(sysconfig.get_paths()["stdlib"], "LICENSE.txt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"the out-of-domain text {path} is missing from this Python installation; pass "
                                f"any text file with ladder-edu evaluate --text FILE instead")
    with open(path, encoding="utf-8") as f:
        return "CPython LICENSE.txt", f.read()


def blocks(tokenizer, text: str, block: int = BLOCK, limit: int | None = None) -> torch.Tensor:
    """Non-overlapping [n, block] token blocks of ``text`` (the tail that does not fill a block is dropped)."""
    ids = torch.tensor(tokenizer(text).input_ids, dtype=torch.long)
    n = len(ids) // block
    if limit is not None:
        n = min(n, limit)
    return ids[: n * block].reshape(n, block)


def token_losses(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of each row of ``tokens`` [B, T]."""
    logits = model(tokens[:, :-1]).float()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none")
    return loss.reshape(tokens.shape[0], -1).mean(1)


@torch.no_grad()
def mean_loss(model, data: torch.Tensor, batch: int = 4) -> float:
    """Mean next-token loss (nats) over the blocks ``data``; perplexity = exp of it."""
    was = model.training
    model.eval()
    losses = torch.cat([token_losses(model, data[i:i + batch]) for i in range(0, len(data), batch)])
    model.train(was)
    return float(losses.mean())


def perplexity(model, data: torch.Tensor, batch: int = 4) -> float:
    return math.exp(mean_loss(model, data, batch))


def load_probe(path: str = PROBE_FILE) -> list[dict]:
    """[{"q": question, "a": [accepted answers]}, ...]"""
    with open(path) as f:
        return json.load(f)


def _words(s: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", s.lower())) + " "


def is_correct(reply: str, answers: list[str]) -> bool:
    """An accepted answer appears as whole words in the reply's first line (case and punctuation ignored)."""
    line = reply.strip().split("\n")[0]
    return any(_words(a) in _words(line) for a in answers)


@torch.no_grad()
def ask(model, tokenizer, question: str, max_new_tokens: int = 12) -> str:
    """The model's greedy reply to ``question`` in the chat format, cut at the end-of-turn token."""
    prompt = torch.tensor([ChatFormat.prompt_ids(tokenizer, question)])
    out = generate(model, prompt, max_new_tokens)[0].tolist()
    end = ChatFormat.of(tokenizer).end
    if end in out:
        out = out[:out.index(end)]
    return tokenizer.decode(out)


def run_probe(model, tokenizer, probe: list[dict] | None = None, limit: int | None = None) -> dict:
    """{"score": fraction correct, "correct": n, "total": n, "replies": [...]}"""
    probe = (probe or load_probe())[:limit]
    was = model.training
    model.eval()
    replies = [ask(model, tokenizer, item["q"]) for item in probe]
    model.train(was)
    ok = [is_correct(r, item["a"]) for r, item in zip(replies, probe)]
    return {"score": sum(ok) / len(ok), "correct": sum(ok), "total": len(ok), "replies": replies, "ok": ok}
