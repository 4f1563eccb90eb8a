"""Lab 5: convert a pretrained model's top layers to ladder, and watch what breaks."""
from __future__ import annotations

import inspect
import textwrap

from ..models.config import get_config
from ..models.model import Transformer
from .runner import Verdict, call, failed, load


def reference_lags(n_layers: int, k: int) -> list[int]:
    """The lag of each layer of a hybrid model whose top k layers are ladder (the Ladder authors' Hybrid-Ladder
    Llama: the last k; see docs/references.md)."""
    return [int(i >= n_layers - k) for i in range(n_layers)]


def check_ladder_lags(fn) -> Verdict:
    """``fn(n_layers, k)`` -> [lag of layer 0, ..., lag of layer n-1]; compared with the model the package builds
    for ``ladder_layers=k`` (its Block.lag), for several (n, k)."""
    fn2, problem = load(textwrap.dedent(inspect.getsource(fn)), fn.__name__)
    if problem:
        return failed(problem)
    for n, k in ((4, 2), (30, 15), (30, 0), (30, 30), (32, 16)):
        got, problem = call(fn2, n, k)
        if problem:
            return failed(problem)
        cfg = get_config("tiny", n_layers=n, ladder_layers=k)
        model_lags = [b.lag for b in Transformer(cfg, device="meta").layers]
        assert model_lags == reference_lags(n, k)
        if list(got) != model_lags:
            hint = "lag 1 for a ladder layer, 0 for a standard one"
            if list(got) == model_lags[::-1]:
                hint = "you converted the bottom k layers; the paper converts the top (last) k"
            elif sum(got) in (k - 1, k + 1):
                hint = "off by one: exactly k layers, the last ones (indices n-k .. n-1)"
            return Verdict(False, f"n_layers={n}, k={k}: you said {list(got)[:8]}{'...' if n > 8 else ''}",
                           hint)
    return Verdict(True)
