"""The variants the package builds, times, profiles, models and draws: one record each, read everywhere.

A *variant* is a model's block architecture plus how it communicates. Each record says what every part of the
package needs to know of it, so that adding a variant is one record here and, only if its data flow is new, a
branch of the model's loop (``models/model.py``) and of the critical-path simulator (``perf/model/critical_path.py``):

- ``arch``: the ``ModelConfig.arch`` its model is built with (``config.variant_config``);
- ``lag``: how many of the newest all-reduced outputs a module does not wait for (0: standard; 1: ladder);
- ``layout``: its forward pass as modules: ``sequential`` (attention, then MLP, each all-reduced), ``fused`` (the
  parallel block: attention and MLP read one stream, one all-reduce per layer), ``subsets`` (Kraken: sub-layers on
  their own ranks, one all-reduce per layer after the MLP), ``chunked`` (ISO: every module in two chunks of the
  prompt, one chunk's all-reduce under the other's compute);
- ``all_reduces``: False for the upper bound, the standard model with every all-reduce skipped: a speed ceiling,
  not a valid model;
- ``phases``: the phases it runs in (ISO chunks a prefill; it has no decode of its own);
- ``same_model_as``: the variant whose function it computes (upper bound: none, its outputs are wrong; ISO: the
  standard model's);
- ``emulated``: whether one emulated rank of a big deployment runs it (a Megatron shard; Kraken's sub-layers are not);
- ``color`` and ``marker``: how every figure draws it; ``collectives``, ``critical``, ``retrain`` and ``quality``:
  the design-space table's words (quality: what its paper reports); ``paper``: where it comes from.
"""
from __future__ import annotations

from dataclasses import dataclass

LAYOUTS = ("sequential", "fused", "subsets", "chunked")
PHASES = ("prefill", "decode")


@dataclass(frozen=True)
class Variant:
    name: str
    arch: str
    lag: int
    layout: str
    all_reduces: bool
    phases: tuple[str, ...]
    same_model_as: str | None
    emulated: bool
    color: str
    marker: str
    collectives: str
    critical: str
    retrain: str
    quality: str
    paper: str

    def __post_init__(self):
        if self.layout not in LAYOUTS or not set(self.phases) <= set(PHASES):
            raise ValueError(f"variant {self.name!r}: layout must be one of {', '.join(LAYOUTS)} and phases from "
                             f"{', '.join(PHASES)}")


_ALL = (
    Variant("standard", "standard", 0, "sequential", True, PHASES, "standard", True, "#8C8C8C", "D",
            "2 per layer", "both all-reduces block the next module", "-", "baseline",
            "Megatron-LM (arXiv 1909.08053)"),
    Variant("parallel", "parallel", 0, "fused", True, PHASES, "parallel", True, "#8172B3", "s",
            "1 per layer", "its all-reduce blocks the next layer", "yes (new block)",
            "Ladder paper, 100B tokens: avg 58.75 vs 59.98 (1B), 63.03 vs 64.11 (3B)", "GPT-J; PaLM (arXiv 2204.02311)"),
    Variant("ladder", "ladder", 1, "sequential", True, PHASES, "ladder", True, "#DD8452", "o",
            "2 per layer", "only the last; each hides under the next module", "yes, or convert the top half + retrain",
            "avg 58.92 vs 59.98 (1B), 62.91 vs 64.11 (3B); Llama-3.1-8B top 16 converted: 56.11 -> 41.65 -> 56.24 "
            "after 3B tokens", "Ladder Residual (arXiv 2501.06589)"),
    Variant("upper_bound", "standard", 0, "sequential", False, PHASES, None, True, "#DDDDDD", "^",
            "none (skipped: not a valid model)", "none", "-", "not a valid model",
            "the Ladder paper's speed ceiling (arXiv 2501.06589)"),
    Variant("kraken", "kraken", 0, "subsets", True, PHASES, "kraken", False, "#64B5CD", "v",
            "1 per layer (the last one before the head)", "the last; each hides under the next layer's attention", "yes (new model)",
            "'similar perplexity' to GPT-2 of equal size (values not published in text)", "Kraken (arXiv 2408.07802)"),
    Variant("iso", "standard", 0, "chunked", True, ("prefill",), "standard", True, "#CCB974", "P",
            "2 per layer per chunk", "one chunk's all-reduce hides under the other chunk's compute",
            "no (exact, prefill only)", "none: the same model", "ISO (arXiv 2409.11155)"),
)
VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}

BASELINE = "standard"
"""What every speed-up is relative to."""
CEILING = next(v.name for v in _ALL if not v.all_reduces)
"""The upper bound: the baseline with no all-reduces (its gap to the baseline is the communication's share)."""
ISO = next(v.name for v in _ALL if v.layout == "chunked")
"""The chunked prefill (code about ISO's schedule names it by this)."""
PARALLEL = next(v.name for v in _ALL if v.layout == "fused")
"""The parallel block: attention and MLP in one module, one all-reduce per layer."""
LADDER = next(v.name for v in _ALL if v.lag and v.layout == "sequential")
"""Ladder residual: the baseline's modules, each reading the stream one module stale."""
KRAKEN = next(v.name for v in _ALL if v.layout == "subsets")
"""Kraken's sub-layer model (code about its model names it by this)."""

PREFILL_VARIANTS = tuple(v.name for v in _ALL if "prefill" in v.phases)
ALL_VARIANTS = tuple(v.name for v in _ALL if "decode" in v.phases)
"""Every variant with a decode step (ISO only chunks prefills)."""
BENCH_VARIANTS = tuple(v.name for v in _ALL if "decode" in v.phases and v.emulated)
"""What benchmarks compare by default and the graph-captured emulated rank runs: standard, parallel, ladder and the
upper bound."""
EMULATED = tuple(v.name for v in _ALL if v.emulated)
"""What the eager emulated rank runs: the Megatron shards (Kraken's sub-layers are not one)."""
VALID = tuple(v.name for v in _ALL if v.same_model_as is not None)
"""The design space: every variant that computes a valid model (all but the upper bound)."""


def get_variant(name: str) -> Variant:
    """The record of ``name``; a ValueError names the valid choices."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; valid choices: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def require(names, allowed, what: str) -> None:
    """Raise one ValueError if a name in ``names`` is not in ``allowed``: "<what> runs <allowed>; not <names>"."""
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"{what} runs {', '.join(allowed)}; not {', '.join(bad)}")
