"""How sure a number is: 95% intervals for an accuracy, for the paired difference of two
models' accuracies on the same clips, and for a mean over seeds; and the verdict of a
limit against an interval (pass, fail, or inconclusive when the interval straddles it).

Built on SciPy's implementations: Wilson score intervals (``binomtest``), the exact
McNemar test (a binomial test on the discordant clips) and the paired bootstrap
(``bootstrap(paired=True)``, seeded so the same predictions give the same interval).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

CONFIDENCE = 0.95
#: Resamples of the paired bootstrap: between bootstrap seeds its interval ends moved by at
#: most one clip (measured on a 588-clip test split: 0.17 pp there).
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
#: Resamples drawn at a time: memory stays at batch x clips values however many clips there
#: are (the same interval as drawing them all at once).
BOOTSTRAP_BATCH = 500


class Interval(NamedTuple):
    """A 95% interval ``[low, high]`` (fractions, as the values it brackets)."""

    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_list(self) -> list[float]:
        return [self.low, self.high]


def accuracy_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of an accuracy of ``correct`` out of ``n`` clips."""
    from scipy.stats import binomtest

    if n < 1 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n >= 1, got correct={correct}, n={n}")
    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(float(ci.low), float(ci.high))


def resolution(n: int, accuracy: float = 0.9, discordant: float = 0.06,
               confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Half-widths (fractions) that ``n`` test clips give, by the normal approximation: of
    one ``accuracy``, and of a paired difference between two models that disagree on a
    ``discordant`` fraction of the clips (REFERENCE.md section 9: about 6% for a
    compressed model against its baseline)."""
    from scipy.stats import norm

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    z = float(norm.ppf(0.5 + confidence / 2))
    return z * float(np.sqrt(accuracy * (1 - accuracy) / n)), z * float(np.sqrt(discordant / n))


@dataclass(frozen=True)
class PairedDifference:
    """``drop``: the reference's accuracy minus the model's, on the same clips (a fraction);
    ``interval``: its paired-bootstrap interval; ``worse``/``better``: clips only the
    reference / only the model got right; ``p_value``: exact McNemar (two-sided)."""

    drop: float
    interval: Interval
    n: int
    worse: int
    better: int
    p_value: float


def paired_drop(reference_correct: np.ndarray, model_correct: np.ndarray,
                confidence: float = CONFIDENCE) -> PairedDifference:
    """How much accuracy a model loses against a reference scored on the same clips,
    with an interval that uses the pairing (two models that fail on the same clips
    differ by less noise than two independent accuracies)."""
    from scipy.stats import binomtest, bootstrap

    ref = np.asarray(reference_correct, dtype=bool)
    ours = np.asarray(model_correct, dtype=bool)
    if ref.shape != ours.shape or ref.ndim != 1 or not len(ref):
        raise ValueError(f"need two equal, non-empty 1-D per-clip results, got {ref.shape} and {ours.shape}")
    worse, better = int(np.sum(ref & ~ours)), int(np.sum(~ref & ours))
    drop = (worse - better) / len(ref)
    if worse + better == 0:
        return PairedDifference(0.0, Interval(0.0, 0.0), len(ref), 0, 0, 1.0)
    p_value = float(binomtest(worse, worse + better).pvalue)
    res = bootstrap((ref.astype(np.float64), ours.astype(np.float64)),
                    lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
                    paired=True, vectorized=True, confidence_level=confidence, method="percentile",
                    n_resamples=BOOTSTRAP_RESAMPLES, batch=BOOTSTRAP_BATCH,
                    random_state=np.random.default_rng(BOOTSTRAP_SEED))
    ci = res.confidence_interval
    return PairedDifference(drop, Interval(float(ci.low), float(ci.high)), len(ref), worse, better, p_value)


def mean_interval(values, confidence: float = CONFIDENCE) -> tuple[float, Interval | None]:
    """Mean over seeds and its Student-t interval (``None`` for a single value)."""
    from scipy.stats import t

    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(values):
        raise ValueError("no values to average")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None
    half = float(t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, Interval(mean - half, mean + half)


class Verdict(enum.StrEnum):
    PASS = "pass"  # within the limit with the stated confidence
    FAIL = "fail"  # beyond the limit with the stated confidence
    INCONCLUSIVE = "inconclusive"  # the interval straddles the limit


def judge(interval: Interval, limit: float) -> Verdict:
    """A "no more than ``limit``" rule against the interval of the quantity it limits."""
    if interval.low > limit:
        return Verdict.FAIL
    if interval.high <= limit:
        return Verdict.PASS
    return Verdict.INCONCLUSIVE
