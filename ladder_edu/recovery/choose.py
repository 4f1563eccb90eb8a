"""Which layers to convert: a sensitivity scan, then a greedy choice with re-scoring.

By the due rule (``models/model.py``) a ladder layer i > 0 hides two all-reduces wherever it sits (the previous
module's and its attention's), so k ladder layers cost about the same time wherever they are
(``perf.model.critical_path.modules``); where they are decides how much the model changes. The cost of a set S of
ladder layers is the mean per-token divergence of the converted model from the original

    cost(S) = mean_t KL( p_original(. | x_<t) || p_S(. | x_<t) )

on text the original wrote itself (its replies to its own questions: what it would say, never the probe's
questions). The scan scores every layer alone; the greedy choice adds the ``every`` cheapest layers given those
already chosen, then re-scores the rest with the chosen ones converted (layers interact: two adjacent ladder layers
change more than the sum of their parts), until k are chosen. The Ladder paper always converts the top k layers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.model import Transformer


@torch.no_grad()
def divergence(model, teacher_logp: list[torch.Tensor], tokens: torch.Tensor, batch: int = 4) -> float:
    """Mean per-token KL(original || model) over ``tokens``, given the original's log-probabilities per batch."""
    total, n = 0.0, 0
    for b, i in enumerate(range(0, len(tokens), batch)):
        q = F.log_softmax(model(tokens[i:i + batch]).float(), -1)
        p = teacher_logp[b]
        total += float((p.exp() * (p - q)).sum(-1).sum())
        n += p.shape[0] * p.shape[1]
    return total / n


@torch.no_grad()
def teacher_log_probs(original, tokens: torch.Tensor, batch: int = 4) -> list[torch.Tensor]:
    return [F.log_softmax(original(tokens[i:i + batch]).float(), -1) for i in range(0, len(tokens), batch)]


def converted(cfg, state: dict, layers) -> Transformer:
    """A one-device model of ``cfg`` with exactly ``layers`` ladder (sharing ``state``: for scoring, not
    training)."""
    return Transformer.from_full_state_dict(cfg.replace(ladder_layers=tuple(sorted(layers))), state).eval()


def scan(cfg, state: dict, tokens: torch.Tensor, base=(), candidates=None, teacher_logp=None, original=None,
         progress: bool = False) -> dict[int, float]:
    """{layer: cost(base + {layer})} for every candidate layer not in ``base`` (module docstring)."""
    from tqdm.auto import tqdm
    if teacher_logp is None:
        teacher_logp = teacher_log_probs(original or converted(cfg, state, ()), tokens)
    todo = [j for j in (range(cfg.n_layers) if candidates is None else candidates) if j not in base]
    return {j: divergence(converted(cfg, state, (*base, j)), teacher_logp, tokens)
            for j in tqdm(todo, desc=f"scan ({len(base)} chosen)", disable=not progress)}


def choose_layers(cfg, state: dict, tokens: torch.Tensor, k: int, every: int = 5, candidates=None,
                  progress: bool = False) -> dict:
    """Greedy choice of k ladder layers (module docstring). Returns {"scores": the one-layer scan, "rounds": each
    round's scores, "order": the layers in the order they were added, "chosen": the k layers sorted,
    "cost": cost(chosen)}. ``candidates``: the layers that may be chosen (default: all)."""
    pool = list(range(cfg.n_layers) if candidates is None else candidates)
    if not 0 <= k <= len(pool) or every < 1:
        raise ValueError(f"k must be in [0, {len(pool)}] and every >= 1, got k={k}, every={every}")
    teacher_logp = teacher_log_probs(converted(cfg, state, ()), tokens)
    chosen: list[int] = []
    rounds = []
    while len(chosen) < k:
        scores = scan(cfg, state, tokens, tuple(chosen), pool, teacher_logp=teacher_logp, progress=progress)
        rounds.append({"base": list(chosen), "scores": scores})
        chosen += sorted(scores, key=scores.get)[:min(every, k - len(chosen))]
    cost = divergence(converted(cfg, state, chosen), teacher_logp, tokens) if chosen else 0.0
    return {"scores": rounds[0]["scores"] if rounds else {}, "rounds": rounds, "order": chosen, "chosen": sorted(chosen),
            "cost": cost}
