"""Instructions written by the original model itself (self-instruct), kept off the probe's topics.

Distillation needs inputs on which the teacher shows the behaviour to keep. Templates (``distill.chat_prompts``)
are narrow; here the original model writes the instructions too, as in Self-Instruct (Wang et al., 2023): asked
in its own chat format for "10 short, different questions a curious person might ask about <subject>" (everyday
subjects, ``SUBJECTS``; sampled at temperature 0.8, top-k 50), it writes a numbered list, and every item becomes a
user turn. (Sampled from the bare user header instead, SmolLM2 writes code and web text: it never learned to
write user turns, only to answer them.) No outside data enters.

**The probe is never taught.** A written question is dropped when it shares a *topic word* with the probe: any word
of four letters or more (outside a short list of function words) of a probe question or of its accepted answers
(``probe_topics``), plurals included. All 12 capital questions make "capital" a topic, so no question about a capital
is ever trained on: the recovered model's probe score measures what it kept, not what it was shown.
"""
from __future__ import annotations

import re

import torch

from .evaluate import IM_END, load_probe
from ..models.generate import generate

# Function words and generic verbs: too common to name a topic.
_GENERIC = set("""what which where when does have that this with from into about your they them their there these
those many much some more most also been were will would could should only like name named known comes come make
made used uses need needs think live lives home does doing after before over under than then very""".split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def probe_topics(probe: list[dict] | None = None) -> set[str]:
    """The topic words of the probe: words of >= 4 characters of its questions and answers, less ``_GENERIC``;
    and each whole question (as " word word ... ", for questions of short words only, such as "What is 2 + 2?")."""
    words = set()
    for item in probe or load_probe():
        for text in [item["q"], *item["a"]]:
            words |= {w for w in _words(text) if len(w) >= 4 and w not in _GENERIC}
        words.add(" " + " ".join(_words(item["q"])) + " ")
    return words


def keep_prompt(text: str, topics: set[str], min_words: int = 3, max_words: int = 25) -> bool:
    """A usable instruction: ``min_words`` .. ``max_words`` words, printable, and no probe topic word in it."""
    words = _words(text)
    line = " " + " ".join(words) + " "
    return (min_words <= len(words) <= max_words and text.isprintable()
            and not any(w in topics or w.rstrip("s") in topics for w in words)
            and not any(q in line for q in topics if q.startswith(" ")))


SUBJECTS = ["history", "cooking", "sports", "music", "health", "travel", "money", "school", "gardening",
            "the weather", "art", "movies", "books", "computers", "cars", "friendship", "jobs", "the human body",
            "space", "insects", "the sea", "houses", "clothes", "holidays", "games", "numbers", "words",
            "machines", "electricity", "birds", "medicine", "farming", "shopping", "sleep", "the internet"]
ASK = "Write 10 short, different questions that a curious person might ask about {s}. One per line."


def _items(text: str) -> list[str]:
    """The numbered items of a generated list, up to the end of the assistant's turn."""
    text = "1." + text.split(IM_END)[0]
    return [m.strip() for m in re.findall(r"(?m)^\s*\d+[.)]\s*(.+)$", text)]


@torch.no_grad()
def self_prompts(teacher, tokenizer, n: int | None, seed: int = 0, subjects=SUBJECTS, per_subject: int = 2,
                 max_tokens: int = 120, topics: set[str] | None = None) -> list[str]:
    """Up to ``n`` (None: all) distinct instructions written by ``teacher`` (module docstring), in a reproducible order:
    ``per_subject`` sampled lists per subject, subjects interleaved so that any prefix is varied."""
    from .evaluate import CHAT
    topics = probe_topics() if topics is None else topics
    per: list[list[str]] = []
    seen: set[str] = set()
    for i, subject in enumerate(subjects):
        ids = tokenizer(CHAT.format(q=ASK.format(s=subject)) + "1.").input_ids
        out = generate(teacher, torch.tensor([ids] * per_subject), max_tokens, temperature=0.8, top_k=50,
                       seed=seed * 1009 + i)
        mine = []
        for row in out.tolist():
            for text in _items(tokenizer.decode(row)):
                key = " ".join(_words(text))
                if key not in seen and keep_prompt(text, topics):
                    seen.add(key)
                    mine.append(text)
        per.append(mine)
    kept = [p for j in range(max(map(len, per), default=0)) for p in (m[j] for m in per if j < len(m))]
    if not kept:
        raise RuntimeError("the teacher wrote no usable instruction; check the model and its chat format")
    return kept[:n]
