"""The one rule for reading a speed comparison: used by ``bench``, the notebooks, the labs and the docs.

Variants are timed in interleaved rounds (:func:`~ladder_edu.perf.measure.timing.interleaved`): round r of a
variant and round r of the baseline ran back to back, under the same drift of the machine (another job, a clock
change, a cache going cold). So the comparison is paired, round by round:

    ratio_r = median(baseline's samples in round r) / median(variant's samples in round r)      (> 1: faster)

The speed-up is the median of ratio_1..ratio_R. Its uncertainty is a percentile bootstrap interval: draw R of the
R ratios with replacement, take that draw's median, repeat ``BOOTSTRAP_DRAWS`` times (fixed seed, so the same
samples always give the same interval) and keep the central ``LEVEL`` of those medians. The reading:

- **faster** when the whole interval lies above 1, **slower** when it lies below 1,
- otherwise **not distinguishable on this machine**: the rounds disagree about the sign, so no claim is made.

With few rounds the interval is wide (the median of a draw can only be one of the R ratios or a mean of two), which
is the honest answer: more rounds (``--rounds``) narrow it. Comparing unpaired medians with their p10-p90 spreads
throws the pairing away and calls a drift of the machine a difference between variants.
"""
from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

LEVEL = 0.95
BOOTSTRAP_DRAWS = 2000
FASTER, SLOWER, SAME = "faster", "slower", "not distinguishable on this machine"


@dataclass(frozen=True)
class Comparison:
    """``variant`` against ``baseline``: the median per-round ratio (``speedup`` > 1: variant faster), its
    bootstrap interval ``lo``-``hi`` over ``rounds`` rounds, and the verdict the interval allows."""
    variant: str
    baseline: str
    speedup: float
    lo: float
    hi: float
    rounds: int

    @property
    def verdict(self) -> str:
        return FASTER if self.lo > 1 else SLOWER if self.hi < 1 else SAME

    def sentence(self) -> str:
        """One line a notebook prints; never typed into markdown, so a rerun that changes the numbers changes it."""
        ci = f"{100 * LEVEL:.0f}% interval {self.lo:.3f}-{self.hi:.3f}x over {self.rounds} interleaved rounds"
        if self.verdict == SAME:
            return f"{self.variant} vs {self.baseline}: {self.speedup:.2f}x, {SAME} ({ci})"
        return f"{self.variant} is {self.verdict} than {self.baseline}: {self.speedup:.2f}x ({ci})"


def per_round(samples: list[float], rounds: int) -> list[float]:
    """The median of each round's samples; ``samples`` is ``rounds`` equal runs, in round order."""
    if rounds < 1 or len(samples) % rounds or not samples:
        raise ValueError(f"{len(samples)} samples do not split into {rounds} equal rounds; rounds must divide "
                         f"the number of samples")
    k = len(samples) // rounds
    return [statistics.median(samples[r * k:(r + 1) * k]) for r in range(rounds)]


def bootstrap_interval(values: list[float], level: float = LEVEL, draws: int = BOOTSTRAP_DRAWS,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` (deterministic for a given ``seed``)."""
    if not 0 < level < 1:
        raise ValueError(f"level {level} must lie between 0 and 1")
    rng = random.Random(seed)
    n = len(values)
    meds = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(draws))
    tail = (1 - level) / 2
    return meds[int(tail * (draws - 1))], meds[round((1 - tail) * (draws - 1))]


def paired_ratios(baseline_rounds: list[float], variant_rounds: list[float],
                  higher_is_faster: bool = False) -> list[float]:
    """ratio_r of each round (> 1: the variant faster), from per-round medians (``per_round``) or per-round rates."""
    pairs = zip(baseline_rounds, variant_rounds)
    return [v / b for b, v in pairs] if higher_is_faster else [b / v for b, v in pairs]


def compare_rounds(baseline_rounds: list[float], variant_rounds: list[float], *, names=("variant", "baseline"),
                   higher_is_faster: bool = False, level: float = LEVEL) -> Comparison:
    """``compare`` for samples already reduced to one value per round."""
    if len(baseline_rounds) != len(variant_rounds):
        raise ValueError(f"baseline has {len(baseline_rounds)} rounds and variant {len(variant_rounds)}: the rounds "
                         f"must pair")
    ratios = paired_ratios(baseline_rounds, variant_rounds, higher_is_faster)
    lo, hi = bootstrap_interval(ratios, level)
    return Comparison(names[0], names[1], statistics.median(ratios), lo, hi, len(ratios))


def compare(baseline: list[float], variant: list[float], rounds: int, *, names=("variant", "baseline"),
            higher_is_faster: bool = False, level: float = LEVEL) -> Comparison:
    """Pair ``variant``'s samples with ``baseline``'s round by round (both ``rounds`` equal runs, in order).
    Samples are times (smaller is faster) unless ``higher_is_faster`` (rates, e.g. tokens/s)."""
    if len(baseline) != len(variant):
        raise ValueError(f"baseline has {len(baseline)} samples and variant {len(variant)}: the rounds must pair")
    return compare_rounds(per_round(baseline, rounds), per_round(variant, rounds), names=names,
                          higher_is_faster=higher_is_faster, level=level)


def short(verdict: str | None) -> str:
    """A verdict in a few letters, for a bar label or a table cell ("n.d.": not distinguishable)."""
    return verdict if verdict in (FASTER, SLOWER) else "n.d."
