"""Intervals against textbook values, and the three verdicts of a limit."""

from __future__ import annotations

import numpy as np
import pytest

from kws.stats import Interval, Verdict, accuracy_interval, judge, mean_interval, paired_drop


@pytest.mark.parametrize("correct, n, low, high", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, Wilson score method.
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_intervals_match_newcombes_table(correct, n, low, high):
    ci = accuracy_interval(correct, n)
    assert ci.low == pytest.approx(low, abs=5e-5) and ci.high == pytest.approx(high, abs=5e-5)


def test_an_accuracy_needs_clips():
    with pytest.raises(ValueError, match="n >= 1"):
        accuracy_interval(0, 0)


def _pairs(both: int, ref_only: int, model_only: int, neither: int):
    ref = [1] * both + [1] * ref_only + [0] * model_only + [0] * neither
    ours = [1] * both + [0] * ref_only + [1] * model_only + [0] * neither
    return np.array(ref, bool), np.array(ours, bool)


def test_exact_mcnemar_on_the_discordant_clips():
    # 6 clips only the reference got right, 1 only the model: 2 * P(X <= 1 | 7, 1/2) = 16/128.
    result = paired_drop(*_pairs(90, 6, 1, 3))
    assert (result.worse, result.better, result.n) == (6, 1, 100)
    assert result.p_value == pytest.approx(0.125)
    assert result.drop == pytest.approx(0.05)


def test_the_paired_interval_contains_the_drop_and_is_reproducible():
    ref, ours = _pairs(500, 40, 10, 50)  # a 5 pp drop on 600 clips
    first, again = paired_drop(ref, ours), paired_drop(ref, ours)
    assert first == again
    assert first.interval.low < first.drop < first.interval.high
    assert first.interval.low > 0  # 40 against 10 discordant clips: a real loss
    # Pairing: narrower than the two accuracies' own intervals would suggest.
    independent = accuracy_interval(540, 600).half_width + accuracy_interval(510, 600).half_width
    assert first.interval.half_width < independent


def test_identical_predictions_differ_by_nothing():
    ref, ours = _pairs(80, 0, 0, 20)
    result = paired_drop(ref, ours)
    assert result.interval == Interval(0.0, 0.0) and result.p_value == 1.0


def test_mean_over_seeds_has_a_t_interval():
    mean, ci = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2) x sd 1 / sqrt(3)
    assert ci.low == pytest.approx(2 - half) and ci.high == pytest.approx(2 + half)
    assert mean_interval([0.5]) == (0.5, None)


@pytest.mark.parametrize("interval, verdict", [
    (Interval(0.2, 0.8), Verdict.PASS),
    (Interval(0.5, 1.5), Verdict.INCONCLUSIVE),
    (Interval(1.2, 2.0), Verdict.FAIL),
])
def test_a_limit_passes_fails_or_is_inconclusive(interval, verdict):
    assert judge(interval, 1.0) is verdict


def test_resolution_of_a_test_split_follows_the_normal_approximation():
    from kws.stats import resolution

    one, paired = resolution(9_000)
    assert one == pytest.approx(1.959964 * (0.9 * 0.1 / 9_000) ** 0.5, rel=1e-5)  # 0.62 pp
    assert paired == pytest.approx(1.959964 * (0.06 / 9_000) ** 0.5, rel=1e-5)  # 0.51 pp: ~9,000 clips resolve 0.5
    assert resolution(588)[1] > 3 * paired  # the earlier 588-clip split resolved ~2 pp
    with pytest.raises(ValueError, match="n must be"):
        resolution(0)
