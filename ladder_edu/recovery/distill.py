"""Recovery by distillation: the original model teaches the converted one, with no outside data.

The teacher is the unconverted model, the student the converted one (same weights, ladder dataflow in its top
layers). The student is trained to match the teacher's next-token distribution:

    loss = alpha * T^2 * KL( softmax(z_teacher / T) || softmax(z_student / T) ) + (1 - alpha) * CE(z_student, next)
           + beta * mean_i |h_i^student - h_i^teacher|^2 / mean |h_i^teacher|^2          (optional, "hidden")

The last term matches every module's output h_i (attention or MLP) in the converted layers to the teacher's:
a ladder module reads a stream one module stale, and this asks it to write what the original module wrote. The
stream is the embeddings plus the sum of all module outputs in every architecture, so matching the h_i matches
the stream too. It is a far denser signal than the logits alone.

on two kinds of text: the training corpus, and chat turns that the teacher itself writes in reply to prompts,
generated here from templates (``chat_prompts``) or written by the teacher too (``prompts.self_prompts``). The
prompts never ask the probe's questions (tests check that), so what the probe measures is not taught directly: the
chat turns restore the assistant behaviour that documentation text alone does not.

**On-policy** (GKD, Agarwal et al. 2024): fixed teacher text shows the student only the teacher's own paths; at
generation time the student walks its own, and its first mistake leads it where it was never trained. So the chat
part of each batch is sampled by the student itself at that step (``student_samples``), and the teacher's
distribution is matched on those tokens (only on reply tokens, up to the end of the turn). ``divergence="reverse"``
uses KL(student || teacher), MiniLLM's mode-seeking choice, instead of the forward KL above.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .evaluate import ChatFormat
from ..models.generate import generate

DIVERGENCES = ("forward", "reverse")

_NOUNS = ["bicycles", "kitchens", "rain", "music", "libraries", "gardens", "trains", "bread", "winter mornings",
          "city parks", "old maps", "coffee", "bridges", "mountains at night", "markets", "clocks", "paper",
          "rivers", "birdsong", "football", "teachers", "computers", "letters", "lamps", "shoes", "tea",
          "museums", "keyboards", "cats", "boats", "forests", "sandwiches"]
_TASKS = ["Write one short sentence about {x}.", "Describe {x} in a few words.", "Give me a short tip about {x}.",
          "Why do people like {x}? Answer briefly."]


def chat_prompts(topic_names: list[str] | None = None) -> list[str]:
    """Prompts for the teacher to answer: everyday nouns x four tasks, and Python documentation topics."""
    prompts = [t.format(x=n) for n in _NOUNS for t in _TASKS]
    for name in topic_names or []:
        prompts.append(f"In Python, what does '{name}' refer to? Explain briefly.")
    return prompts


@torch.no_grad()
def teacher_chats(teacher, tokenizer, prompts: list[str], max_new_tokens: int = 48,
                  progress: bool = False) -> list[list[int]]:
    """Each prompt in the chat format plus the teacher's greedy reply, as token ids ending in <|im_end|>.

    Prompts of equal token length are generated together as one batch (no padding needed)."""
    from tqdm.auto import tqdm
    end = ChatFormat.of(tokenizer).end
    encoded = [ChatFormat.prompt_ids(tokenizer, p) for p in prompts]
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_len.setdefault(len(ids), []).append(i)
    out: list[list[int]] = [[] for _ in prompts]
    for n, idx in tqdm(sorted(by_len.items()), desc="teacher replies", disable=not progress):
        replies = generate(teacher, torch.tensor([encoded[i] for i in idx]), max_new_tokens)
        for i, reply in zip(idx, replies.tolist()):
            reply = reply[:reply.index(end)] if end in reply else reply
            out[i] = encoded[i] + reply + [end] + tokenizer("\n").input_ids
    return out


def pack(sequences: list[list[int]], block: int) -> torch.Tensor:
    """Concatenate token sequences and cut them into [n, block] rows (the tail that does not fill one is dropped)."""
    flat = [t for s in sequences for t in s]
    n = len(flat) // block
    if n == 0:
        raise ValueError(f"{len(flat)} tokens of teacher text do not fill one block of {block}")
    return torch.tensor(flat[: n * block], dtype=torch.long).reshape(n, block)


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                 alpha: float = 1.0, temperature: float = 1.0, divergence: str = "forward",
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """alpha * T^2 * D + (1 - alpha) * cross-entropy, averaged over the tokens where ``mask`` is true (all by
    default), with D = KL(teacher || student) ("forward": cover every mode of the teacher) or KL(student ||
    teacher) ("reverse", MiniLLM: put no mass where the teacher puts little), over the full vocabulary."""
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; valid choices: {', '.join(DIVERGENCES)}")
    s = F.log_softmax(student_logits.float().reshape(-1, student_logits.shape[-1]) / temperature, -1)
    t = F.log_softmax(teacher_logits.float().reshape(-1, teacher_logits.shape[-1]) / temperature, -1)
    p, q = (t, s) if divergence == "forward" else (s, t)
    per_token = (p.exp() * (p - q)).sum(-1) * temperature ** 2
    keep = None if mask is None else mask.reshape(-1)
    kl = per_token.mean() if keep is None else per_token[keep].sum() / keep.sum().clamp_min(1)
    if alpha >= 1.0:
        return kl
    ce = F.cross_entropy(student_logits.float().reshape(-1, student_logits.shape[-1]), targets.reshape(-1),
                         reduction="none")
    return alpha * kl + (1 - alpha) * (ce.mean() if keep is None else ce[keep].sum() / keep.sum().clamp_min(1))


@torch.no_grad()
def student_samples(model, prompts: list[list[int]], n: int, max_new_tokens: int, end: int, gen: torch.Generator,
                    seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """On-policy data (GKD, Agarwal et al. 2024): ``n`` prompts of one token length drawn with ``gen``, each
    continued by ``model`` itself (temperature 1). Returns (tokens [n, P + max_new_tokens], mask [n, P +
    max_new_tokens - 1]: true where the next token is a reply token up to and including the first ``end``)."""
    first = prompts[int(torch.randint(len(prompts), (1,), generator=gen))]
    same = [p for p in prompts if len(p) == len(first)]
    pick = torch.tensor([same[i] for i in torch.randint(len(same), (n,), generator=gen).tolist()])
    was = model.training
    model.eval()
    reply = generate(model, pick, max_new_tokens, temperature=1.0, seed=seed)
    model.train(was)
    ended_before = torch.cumsum((reply == end).int(), 1) - (reply == end).int()   # an end token earlier in the row
    mask = torch.cat([torch.zeros(n, pick.shape[1] - 1, dtype=torch.bool), ended_before == 0], 1)
    return torch.cat([pick, reply], 1), mask


def reply_mask(blocks: torch.Tensor, start: int, end: int, assistant: tuple[int, ...], newline: int) -> torch.Tensor:
    """[n, T-1] bool for packed chat blocks [n, T]: true at t where token t+1 is part of an assistant reply (after
    ``start`` + the ``assistant`` role tokens + ``newline``, up to and including ``end``): the targets of a
    completion-only loss. A block that starts inside a turn takes that turn's role from the turn after it (roles
    alternate user, assistant)."""
    rows = []
    for row in blocks.tolist():
        first = row.index(start) if start in row else None
        role_after = tuple(row[first + 1:first + 1 + len(assistant)]) if first is not None else None
        inside = first is not None and role_after != assistant       # the block starts in a reply
        label, i = [], 0
        while i < len(row):
            t = row[i]
            if t == start:                                   # header: start, role tokens, newline
                j = i + 1
                while j < len(row) and row[j] != newline:
                    j += 1
                inside = tuple(row[i + 1:j]) == assistant
                label += [False] * (min(j + 1, len(row)) - i)
                i = j + 1
                continue
            label.append(inside)
            if t == end:
                inside = False
            i += 1
        rows.append(label[1:])
    return torch.tensor(rows, dtype=torch.bool)


def with_module_outputs(model, tokens: torch.Tensor, first: int = 0):
    """(model(tokens), [h_i]): the logits, and the output h_i of every attention and MLP of ``model.layers[first:]``
    in the order they ran (forward hooks, attached for this one call)."""
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda module, args, out: outputs.append(out))
               for layer in model.layers[first:] for m in (layer.self_attn, layer.mlp)]
    try:
        return model(tokens), outputs
    finally:
        for h in handles:
            h.remove()


def hidden_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """mean over modules of |h_student - h_teacher|^2 / mean |h_teacher|^2 (each module's relative error)."""
    if len(student) != len(teacher) or not student:
        raise ValueError(f"hidden-state distillation needs the same modules on both sides, got {len(student)} "
                         f"student and {len(teacher)} teacher outputs")
    terms = [(s.float() - t.float()).pow(2).mean() / t.float().pow(2).mean().clamp_min(1e-12)
             for s, t in zip(student, teacher)]
    return torch.stack(terms).mean()
