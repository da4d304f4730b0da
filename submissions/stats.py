"""Statistics of a verification: means, sample spreads and the one-sided one-sample t-test.

Pure functions over numbers; the verdict rules that use them live in ``submissions.rules``, and the
site's pooled re-verification uses the same test (``leaderboard/entries/pool.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from contract.schema import StatSummary


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean: no values")
    return math.fsum(values) / len(values)


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator); 0.0 for a single value."""
    if not values:
        raise ValueError("sample_std: no values")
    if len(values) == 1:
        return 0.0
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def p_text(p: float) -> str:
    """A p-value as every page, reason and report of this project writes it: three significant
    digits from 0.001 up ('0.97', '0.0253', '0.00412'), scientific below ('4.1e-05'), '0' for 0."""
    if p == 0:
        return "0"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3g}"


def summarize(values: Sequence[float]) -> StatSummary:
    return StatSummary(mean=mean(values), std=sample_std(values), n=len(values))


@dataclass(frozen=True)
class TTest:
    """One-sided one-sample t-test of H1: mean > threshold."""

    t: float  # +inf / -inf when the sample has no spread
    df: int
    p_value: float


def one_sided_t_test(values: Sequence[float], threshold: float) -> TTest:
    """p-value of the observed mean under H0: mean <= threshold (Student t, n - 1 dof).

    Needs n >= 2. With zero spread the test degenerates: p = 0 above the threshold, 1 otherwise.
    """
    n = len(values)
    if n < 2:
        raise ValueError(f"one_sided_t_test: needs at least 2 values, got {n}")
    return t_test_of(mean(values), sample_std(values), n, threshold)


def t_test_of(m: float, s: float, n: int, threshold: float) -> TTest:
    """The same test from a sample's mean ``m``, standard deviation ``s`` and size ``n`` (>= 2)."""
    if n < 2:
        raise ValueError(f"t_test_of: needs n >= 2, got {n}")
    if s == 0.0:
        return TTest(t=math.inf if m > threshold else -math.inf, df=n - 1, p_value=0.0 if m > threshold else 1.0)
    from scipy.stats import t as student_t  # here, not at the top: scipy costs the site ~0.9 s at start-up

    t_stat = (m - threshold) / (s / math.sqrt(n))
    return TTest(t=t_stat, df=n - 1, p_value=float(student_t.sf(t_stat, n - 1)))
