"""Scores of a behavior's counters and the interval methods under them."""

from __future__ import annotations

import doctest
import random

import pytest

from behavior_memory.lifecycle import intervals, scores
from behavior_memory.lifecycle.intervals import (
    newcombe_difference,
    welch_difference,
    wilson_interval,
    wilson_lower_bound,
)
from behavior_memory.lifecycle.scores import score
from behavior_memory.types import Behavior


def _behavior(**counters: int) -> Behavior:
    return Behavior(name="behavior_demo", instruction="do the thing", **counters)


@pytest.mark.parametrize("module", [intervals, scores])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


# --- Wilson ------------------------------------------------------------------------------------------


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), table I: 81 of 263 -> 0.2553 to 0.3662; 15 of 148 -> 0.0624 to 0.1605
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(5, 5)
    assert high == 1.0 and 0.5 < low < 0.6
    assert wilson_interval(0, 5)[0] == 0.0
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(6, 5)


def test_wilson_lower_bound_grows_with_evidence_at_the_same_rate() -> None:
    bounds = [wilson_lower_bound(7 * k, 8 * k) for k in (1, 2, 4, 16)]
    assert bounds == sorted(bounds)
    assert bounds[-1] < 7 / 8


# --- Newcombe and Welch ------------------------------------------------------------------------------


def test_newcombe_matches_published_values() -> None:
    # Newcombe (1998), table II, method 10
    d = newcombe_difference(56, 70, 48, 80)
    assert (d.estimate, d.low, d.high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)
    d = newcombe_difference(9, 10, 3, 10)
    assert (d.low, d.high) == pytest.approx((0.1705, 0.8090), abs=1e-4)
    assert d.method == "newcombe" and d.n_a == 10 and d.mean_b == pytest.approx(0.3)


def test_newcombe_stays_inside_minus_one_to_one() -> None:
    d = newcombe_difference(10, 10, 0, 10)
    assert -1.0 <= d.low <= d.estimate == 1.0 <= d.high <= 1.0


def test_welch_uses_unpooled_variances() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [10.0, 10.0]
    d = welch_difference(a, b)
    assert d.estimate == pytest.approx(-7.5)
    assert d.se == pytest.approx((1.6666666 / 4) ** 0.5)  # b has no spread and adds nothing
    assert d.excludes_zero()
    with pytest.raises(ValueError):
        welch_difference([], b)


@pytest.mark.parametrize(("p_a", "p_b", "n_a", "n_b"), [(0.7, 0.5, 40, 60), (0.1, 0.1, 30, 200)])
def test_newcombe_covers_the_true_difference_about_95_percent(p_a: float, p_b: float, n_a: int, n_b: int) -> None:
    rng = random.Random(7)
    runs, covered = 2000, 0
    for _ in range(runs):
        wins_a = sum(rng.random() < p_a for _ in range(n_a))
        wins_b = sum(rng.random() < p_b for _ in range(n_b))
        d = newcombe_difference(wins_a, n_a, wins_b, n_b)
        covered += d.low <= p_a - p_b <= d.high
    assert 0.93 <= covered / runs <= 0.985


def test_welch_covers_the_true_difference_about_95_percent() -> None:
    rng = random.Random(11)
    runs, covered = 2000, 0
    for _ in range(runs):
        a = [rng.gauss(470, 60) for _ in range(80)]
        b = [rng.gauss(500, 120) for _ in range(20)]
        d = welch_difference(a, b)
        covered += d.low <= -30 <= d.high
    assert 0.92 <= covered / runs <= 0.98


# --- score -------------------------------------------------------------------------------------------


def test_score_of_a_fresh_behavior_claims_nothing() -> None:
    s = score(_behavior())
    assert (s.evidence, s.helpfulness, s.harm, s.citation_rate, s.citation_lcb) == (0, 0.0, 0.0, 0.0, 0.0)
    assert s.helped_rate is None and s.hurt_rate is None


def test_score_lower_bounds_sit_below_the_rates() -> None:
    s = score(_behavior(shown=40, cited=10, helped=2, hurt=6))
    assert s.evidence == 8
    assert s.hurt_rate == 0.75 and s.harm < 0.75
    assert s.helped_rate == 0.25 and s.helpfulness < 0.25
    assert s.citation_rate == 0.25 and 0 < s.citation_lcb < 0.25
    assert (s.shown, s.cited, s.helped, s.hurt, s.name) == (40, 10, 2, 6, "behavior_demo")


def test_one_hurt_is_not_proof_of_harm() -> None:
    assert score(_behavior(hurt=1)).harm < 0.25
    assert score(_behavior(hurt=7, helped=1)).harm == pytest.approx(0.529, abs=1e-3)


def test_citations_beyond_shown_are_capped() -> None:
    s = score(_behavior(shown=3, cited=5))
    assert s.citation_rate == 1.0 and s.cited == 5
