"""plan_lifecycle: which behaviors change status, and why; count_tasks_since_use; LifecycleConfig."""

from __future__ import annotations

import doctest
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from behavior_memory.errors import InvalidInputError
from behavior_memory.lifecycle import policy
from behavior_memory.lifecycle.intervals import newcombe_difference
from behavior_memory.lifecycle.policy import LifecycleConfig, Transition, count_tasks_since_use, plan_lifecycle
from behavior_memory.lifecycle.utility import WITHHELD_KEY, UtilityEstimate
from behavior_memory.types import Behavior, BehaviorStatus, Trace

A, C, S, Q, X = (
    BehaviorStatus.ACTIVE,
    BehaviorStatus.CANDIDATE,
    BehaviorStatus.STALE,
    BehaviorStatus.QUARANTINED,
    BehaviorStatus.ARCHIVED,
)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _b(name: str, status: BehaviorStatus = A, **fields: Any) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction="do the thing", status=status, **fields)


def _plan(behaviors: list[Behavior], unused: dict[str, int] | None = None, **kwargs: Any) -> list[Transition]:
    return plan_lifecycle(behaviors, tasks_since_last_use=unused or {}, **kwargs)


def _moves(plan: list[Transition]) -> list[tuple[str, str, str]]:
    return [(t.name.removeprefix("behavior_"), t.from_status.value, t.to_status.value) for t in plan]


def _utility(name: str, wins_shown: int, wins_withheld: int, n: int = 100, enough: bool = True) -> UtilityEstimate:
    return UtilityEstimate(
        f"behavior_{name}", n, n, newcombe_difference(wins_shown, n, wins_withheld, n), None, enough_data=enough
    )


def test_docstring_examples_run() -> None:
    result = doctest.testmod(policy)
    assert result.attempted > 0
    assert result.failed == 0


# --- the config --------------------------------------------------------------------------------------


def test_config_defaults_and_strictness() -> None:
    config = LifecycleConfig()
    assert (config.stale_after_tasks, config.archive_min_evidence, config.archive_harm_lcb) == (200, 5, 0.5)
    assert (config.revive_stale_on_use, config.withhold_epsilon) == (True, 0.0)
    assert "min_support" not in LifecycleConfig.model_fields  # one number: curation.min_support
    with pytest.raises(ValidationError, match="extra"):
        LifecycleConfig(stale_afer_tasks=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        LifecycleConfig(withhold_epsilon=0.9)
    with pytest.raises(ValidationError):
        LifecycleConfig(stale_after_tasks=0)


# --- stale and back ----------------------------------------------------------------------------------


def test_unused_active_goes_stale_with_a_reason() -> None:
    plan = _plan([_b("old"), _b("fresh"), _b("edge")], {"behavior_old": 240, "behavior_fresh": 3, "behavior_edge": 200})
    assert _moves(plan) == [("edge", "active", "stale"), ("old", "active", "stale")]
    assert plan[1].reason == "unused for 240 tasks (limit 200)"


def test_stale_used_again_revives_unless_switched_off() -> None:
    stale = [_b("back", S), _b("still", S)]
    unused = {"behavior_back": 12, "behavior_still": 500}
    plan = _plan(stale, unused)
    assert _moves(plan) == [("back", "stale", "active")]
    assert plan[0].reason == "used again 12 tasks ago (limit 200)"
    assert _plan(stale, unused, config=LifecycleConfig(revive_stale_on_use=False)) == []


def test_a_behavior_missing_from_the_counts_stays() -> None:
    assert _plan([_b("unknown"), _b("sleepy", S)], {}) == []


def test_pinned_never_goes_stale_or_archived() -> None:
    pinned = _b("pinned", pinned=True, helped=0, hurt=50)
    assert _plan([pinned], {"behavior_pinned": 10_000}) == []
    # a pinned stale behavior (stale before it was pinned) may still come back
    assert _moves(_plan([_b("pin_stale", S, pinned=True)], {"behavior_pin_stale": 1})) == [
        ("pin_stale", "stale", "active")
    ]


# --- candidates --------------------------------------------------------------------------------------


def test_candidate_activates_on_support_from_distinct_sources() -> None:
    two = _b("two", C, sources=["t1", "t2"])
    repeated = _b("repeated", C, sources=["t1", "t1", "t1"])
    plan = _plan([two, repeated])
    assert _moves(plan) == [("two", "candidate", "active")]
    assert plan[0].reason == "confirmed by 2 source traces (min 2)"
    assert _moves(_plan([repeated], min_support=1)) == [("repeated", "candidate", "active")]


def test_candidate_from_a_confirmed_success_activates() -> None:
    lone = _b("lone", C, sources=["t9"])
    assert _plan([lone]) == []
    plan = _plan([lone], confirmed_sources={"t9"})
    assert _moves(plan) == [("lone", "candidate", "active")]
    assert plan[0].reason == "minted from a successful trace (t9)"


def test_candidate_neither_goes_stale_nor_is_archived_by_counters() -> None:
    cand = _b("cand", C, sources=["t1"], hurt=20)
    assert _plan([cand], {"behavior_cand": 999}) == []


# --- harm --------------------------------------------------------------------------------------------


def test_counters_archive_a_harmful_behavior_with_the_numbers_in_the_reason() -> None:
    plan = _plan([_b("harmful", helped=1, hurt=7), _b("harmful_stale", S, helped=0, hurt=9)])
    assert _moves(plan) == [("harmful", "active", "archived"), ("harmful_stale", "stale", "archived")]
    assert plan[0].reason == "hurt 7 of 8 (lower bound 0.53 > 0.5)"


def test_harm_needs_enough_evidence_and_a_high_lower_bound() -> None:
    thin = _b("thin", hurt=4)  # 4 of 4, below archive_min_evidence
    mixed = _b("mixed", helped=4, hurt=6)  # 60% hurt, lower bound 0.31
    assert _plan([thin, mixed]) == []
    assert _moves(_plan([thin], config=LifecycleConfig(archive_min_evidence=4))) == [("thin", "active", "archived")]


def test_harm_wins_over_staleness_and_revival() -> None:
    plan = _plan([_b("bad", hurt=9), _b("bad_back", S, hurt=9)], {"behavior_bad": 999, "behavior_bad_back": 1})
    assert [t.to_status for t in plan] == [X, X]


def test_measured_utility_archives_when_showing_lowers_success() -> None:
    hurts = _utility("hurts", 30, 60)
    unclear = _utility("unclear", 48, 52)
    thin = _utility("thin", 0, 9, n=9, enough=False)
    behaviors = [_b("hurts"), _b("unclear"), _b("thin")]
    plan = _plan(behaviors, utility={e.name: e for e in (hurts, unclear, thin)})
    assert _moves(plan) == [("hurts", "active", "archived")]
    assert plan[0].reason == (
        "showing it lowered success by 30.0 points (95% interval 16.3 to 42.2; shown 100, withheld 100)"
    )


def test_quarantined_and_archived_are_left_alone() -> None:
    q = _b("quar", Q, sources=["t1", "t2", "t3"], hurt=50)
    x = _b("arch", X, sources=["t1", "t2"])
    unused = {"behavior_quar": 0, "behavior_arch": 0}
    assert _plan([q, x], unused, confirmed_sources={"t1"}, utility={"behavior_quar": _utility("quar", 0, 90)}) == []


def test_plan_is_ordered_by_name_and_one_namespace_only() -> None:
    plan = _plan([_b("zeta", hurt=9), _b("alpha", hurt=9)])
    assert [t.name for t in plan] == ["behavior_alpha", "behavior_zeta"]
    with pytest.raises(InvalidInputError, match="one namespace"):
        _plan([_b("one"), _b("two", namespace="acme")])


# --- count_tasks_since_use ---------------------------------------------------------------------------


def _trace(
    minutes: int, shown: Sequence[str] = (), cited: Sequence[str] = (), withheld: list[str] | None = None
) -> Trace:
    return Trace(
        task="t",
        shown=[f"behavior_{n}" for n in shown],
        cited=[f"behavior_{n}" for n in cited],
        metadata={} if withheld is None else {WITHHELD_KEY: [f"behavior_{n}" for n in withheld]},
        created_at=T0 + timedelta(minutes=minutes),
    )


def test_count_tasks_since_use() -> None:
    behaviors = [
        _b("shown", created_at=T0),
        _b("cited", created_at=T0),
        _b("held", created_at=T0),
        _b("never", created_at=T0 + timedelta(minutes=2, seconds=30)),
        _b("last", created_at=T0),
    ]
    traces = [
        _trace(4, shown=["last"]),
        _trace(0, shown=["shown"]),
        _trace(1, cited=["cited"]),
        _trace(2, withheld=["held"]),
        _trace(3),
    ]  # out of order on purpose
    assert count_tasks_since_use(behaviors, traces) == {
        "behavior_shown": 4,
        "behavior_cited": 3,
        "behavior_held": 2,  # withheld by the experiment still means retrieval chose it
        "behavior_never": 2,  # made at 2:30; two traces since
        "behavior_last": 0,
    }


def test_counts_feed_the_plan() -> None:
    behaviors = [_b("busy", created_at=T0), _b("idle", created_at=T0 - timedelta(minutes=1))]
    traces = [_trace(i, shown=["busy"]) for i in range(5)]
    counts = count_tasks_since_use(behaviors, traces)
    plan = _plan(behaviors, counts, config=LifecycleConfig(stale_after_tasks=5))
    assert _moves(plan) == [("idle", "active", "stale")]
    assert plan[0].reason == "unused for 5 tasks (limit 5)"


def test_count_tasks_since_use_refuses_traces_of_another_namespace() -> None:
    stray = Trace(task="t", namespace="acme", shown=["behavior_busy"])
    with pytest.raises(InvalidInputError, match="acme"):
        count_tasks_since_use([_b("busy")], [stray])
    assert count_tasks_since_use([], [stray]) == {}
