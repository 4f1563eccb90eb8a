"""Per-module output matching with teacher-forced inputs: train each converted module alone to write what the
original module wrote (LoLCATs' first stage, arXiv 2410.10254; MOHAWK's block alignment, arXiv 2408.10189).

Number every attention and MLP as module i, with r_i the original's residual stream after it and h_i(r) its output
(``models/model.py``). In the original h_i reads r_{i-1}; converted to ladder it reads r_{i-2}, one module stale.
Teacher forcing takes both the input and the target from the original, so that every module is fitted on its own,
from the stream it will read, whatever the other modules do:

    L = mean over ladder modules i of  |h_i^student(r_{i-2}) - h_i(r_{i-1})|^2 / |h_i(r_{i-1})|^2

(r_{-1} = r_0, the embeddings, as in the model's loop). Each term is normalised by its target's energy, so early
layers with small outputs weigh as much as late ones with large outputs. The closed-form repair (``repair.py``)
refits only the output projection, from the inputs of the model repaired so far; this trains every weight of the
module (norm, projections) by gradient, from the original's inputs.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def original_streams(original, tokens: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """([r_0, r_1, ..., r_{M-1}] the stream before each module, [h_0, ..., h_{M-1}] each module's output) of a
    one-device standard model over ``tokens`` [B, T] (the lag-0 loop of ``models/model.py``)."""
    if original.tp.size != 1 or original.cfg.ladder_set or original.cfg.arch != "standard":
        raise ValueError("teacher forcing needs the original: a one-device standard model with no ladder layers")
    x = original.embed_tokens(tokens)
    rope = (original.rope_cos, original.rope_sin)
    inputs, outputs = [], []
    for layer in original.layers:
        for _, module in layer.steps(0, rope):
            h = module(x)
            inputs.append(x)
            outputs.append(h)
            x = x + h
    return inputs, outputs


def match_loss(student, original, tokens: torch.Tensor) -> torch.Tensor:
    """L of the module docstring: the student's ladder modules, each fed the original's stale stream r_{i-2}."""
    inputs, targets = original_streams(original, tokens)
    rope = (student.rope_cos, student.rope_sin)
    terms, i = [], 0
    for layer in student.layers:
        for _, module in layer.steps(0, rope):
            if layer.lag:
                h = module(inputs[max(i - 1, 0)])          # r_{i-2} is the stream before module i-1
                t = targets[i].float()
                terms.append((h.float() - t).pow(2).sum() / t.pow(2).sum().clamp_min(1e-12))
            i += 1
    if not terms:
        raise ValueError("the student has no ladder layers: there is nothing to match")
    return torch.stack(terms).mean()
