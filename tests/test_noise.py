"""The one rule for reading a speed comparison (perf/measure/noise.py): paired rounds, bootstrap interval, verdict."""
import pytest

from ladder_edu.util.noise import FASTER, SAME, SLOWER, bootstrap_interval, compare, per_round


def test_per_round_medians_and_bad_splits():
    assert per_round([1, 2, 3, 10, 20, 30], 2) == [2, 20]
    with pytest.raises(ValueError, match="do not split into 4 equal rounds"):
        per_round([1, 2, 3, 4, 5, 6], 4)


def test_a_clear_win_is_faster_and_a_clear_loss_slower():
    base = [10.0, 10.2, 9.9, 10.1, 10.0, 10.3]
    fast = [x / 1.2 for x in base]
    c = compare(base, fast, 6, names=("ladder", "standard"))
    assert c.verdict == FASTER and c.lo > 1 and abs(c.speedup - 1.2) < 1e-9
    assert c.sentence().startswith("ladder is faster than standard: 1.20x")
    assert compare(base, [x * 1.1 for x in base], 6).verdict == SLOWER


def test_rounds_that_disagree_are_not_distinguishable():
    base = [10.0] * 6
    mixed = [9.0, 11.0, 9.5, 10.5, 9.0, 11.0]          # faster in some rounds, slower in others
    c = compare(base, mixed, 6)
    assert c.verdict == SAME and c.lo < 1 < c.hi and SAME in c.sentence()


def test_pairing_removes_a_drift_that_unpaired_spreads_would_not():
    """The machine slows down round by round; the variant is 5% faster in every round. Unpaired p10-p90 ranges
    overlap; the paired ratio sees the win."""
    drift = [1.0, 1.3, 1.6, 1.9, 2.2, 2.5]
    base = [10 * d for d in drift]
    var = [10 * d / 1.05 for d in drift]
    assert min(base) < max(var)                       # the spreads overlap
    assert compare(base, var, 6).verdict == FASTER


def test_rates_and_determinism():
    rates_a, rates_b = [100, 101, 99, 100], [120, 118, 121, 119]
    c = compare(rates_a, rates_b, 4, higher_is_faster=True)
    assert c.speedup > 1.15 and c.verdict == FASTER
    assert bootstrap_interval([1, 2, 3, 4, 5]) == bootstrap_interval([1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="the rounds must pair"):
        compare([1, 2], [1, 2, 3], 1)
