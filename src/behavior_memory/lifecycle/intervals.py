"""Confidence intervals the lifecycle decides with: one proportion, and the difference of two groups.

Three methods, all at 95% by default (``z = 1.96``):

- ``wilson_interval``: the Wilson score interval of one proportion. Unlike the textbook ``p ± z·se``
  it stays inside [0, 1] and is honest at 0 of 3 or 5 of 5, where behaviors spend their first days.
- ``newcombe_difference``: the difference of two independent proportions, Newcombe's hybrid score
  interval (his method 10, 1998), built from the two Wilson intervals. Its coverage is close to 95%
  even for small or lopsided groups, where the Wald interval is too narrow.
- ``welch_difference``: the difference of two means with the unpooled (Welch) standard error and a
  normal quantile; with the ten or more samples per group we ask for, a t quantile changes little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Difference", "newcombe_difference", "welch_difference", "wilson_interval", "wilson_lower_bound"]

Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n``; ``(0.0, 1.0)`` when ``n`` is 0 (nothing known).

    >>> tuple(round(x, 3) for x in wilson_interval(8, 10))
    (0.49, 0.943)
    >>> tuple(round(x, 3) for x in wilson_interval(0, 5))
    (0.0, 0.434)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def wilson_lower_bound(successes: int, n: int, z: float = Z_95) -> float:
    """The lower end of the Wilson interval: a rate we are 97.5% sure is exceeded; 0.0 with no data.

    >>> round(wilson_lower_bound(7, 8), 2)
    0.53
    >>> wilson_lower_bound(0, 0)
    0.0
    """
    return wilson_interval(successes, n, z)[0]


@dataclass(frozen=True)
class Difference:
    """``mean_a - mean_b`` with its interval; for proportions the means are the two rates."""

    estimate: float
    low: float
    high: float
    mean_a: float
    mean_b: float
    n_a: int
    n_b: int
    se: float  # the unpooled standard error of the difference
    method: str

    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0."""
        return self.low > 0 or self.high < 0


def newcombe_difference(successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = Z_95) -> Difference:
    """``p_a - p_b`` with Newcombe's hybrid score interval (from the two Wilson intervals).

    >>> d = newcombe_difference(70, 100, 50, 100)
    >>> round(d.estimate, 2), round(d.low, 3), round(d.high, 3)
    (0.2, 0.064, 0.326)
    """
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"both groups need at least one sample, got {n_a} and {n_b}")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    lo_a, hi_a = wilson_interval(successes_a, n_a, z)
    lo_b, hi_b = wilson_interval(successes_b, n_b, z)
    d = p_a - p_b
    return Difference(
        estimate=d,
        low=d - math.sqrt((p_a - lo_a) ** 2 + (hi_b - p_b) ** 2),
        high=d + math.sqrt((hi_a - p_a) ** 2 + (p_b - lo_b) ** 2),
        mean_a=p_a,
        mean_b=p_b,
        n_a=n_a,
        n_b=n_b,
        se=math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b),
        method="newcombe",
    )


def _mean_var(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return mean, var


def welch_difference(a: Sequence[float], b: Sequence[float], z: float = Z_95) -> Difference:
    """``mean(a) - mean(b)`` with the Welch standard error and a normal quantile.

    >>> d = welch_difference([470, 480, 490], [500, 510, 520])
    >>> d.estimate, round(d.low, 1), round(d.high, 1)
    (-30.0, -46.0, -14.0)
    """
    if not a or not b:
        raise ValueError(f"both groups need at least one sample, got {len(a)} and {len(b)}")
    mean_a, var_a = _mean_var(a)
    mean_b, var_b = _mean_var(b)
    se = math.sqrt(var_a / len(a) + var_b / len(b))
    d = mean_a - mean_b
    return Difference(
        estimate=d,
        low=d - z * se,
        high=d + z * se,
        mean_a=mean_a,
        mean_b=mean_b,
        n_a=len(a),
        n_b=len(b),
        se=se,
        method="welch",
    )
