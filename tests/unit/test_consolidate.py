"""Consolidation: near-duplicate clusters and the plan that folds each into one keeper."""

from __future__ import annotations

import doctest
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from behavior_memory.errors import InvalidInputError
from behavior_memory.lifecycle import consolidate
from behavior_memory.lifecycle.consolidate import Cluster, find_near_duplicates, merge_plan
from behavior_memory.types import Behavior, BehaviorStatus

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _b(name: str, **fields: Any) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction="do the thing", **fields)


def _at(*degrees: float) -> npt.NDArray[np.float32]:
    """Unit vectors in the plane at these angles: cos(a - b) is their similarity."""
    return np.array([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees], dtype=np.float32)


def _cluster(*members: Behavior) -> Cluster:
    return Cluster(members[0].namespace, members[0].topic, tuple(members), 0.95)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(consolidate)
    assert result.attempted > 0
    assert result.failed == 0


# --- find_near_duplicates ----------------------------------------------------------------------------


def test_threshold_is_inclusive_and_singletons_are_not_clusters() -> None:
    behaviors = [_b("aa"), _b("bb"), _b("cc")]
    vectors = _at(0, 10, 90)  # cos 10° = 0.985
    assert [c.names for c in find_near_duplicates(behaviors, vectors, threshold=0.98)] == [
        ["behavior_aa", "behavior_bb"]
    ]
    assert find_near_duplicates(behaviors, vectors, threshold=0.99) == []
    exact = find_near_duplicates(behaviors[:2], np.array([[1, 0], [1, 0]], dtype=np.float32), threshold=1.0)
    assert [c.names for c in exact] == [["behavior_aa", "behavior_bb"]]


def test_single_linkage_chains_through_a_middle_member() -> None:
    behaviors = [_b("left"), _b("middle"), _b("right")]
    clusters = find_near_duplicates(behaviors, _at(0, 20, 40), threshold=0.9)  # cos 20° = 0.94, cos 40° = 0.77
    assert [c.names for c in clusters] == [["behavior_left", "behavior_middle", "behavior_right"]]
    assert clusters[0].similarity == pytest.approx(math.cos(math.radians(20)), abs=1e-6)


def test_clusters_stay_within_namespace_and_topic() -> None:
    behaviors = [
        _b("geo_one", topic="geometry"),
        _b("geo_two", topic="geometry"),
        _b("alg_one", topic="algebra"),
        _b("none_one"),
        _b("none_two"),
        _b("other_ns", namespace="acme", topic="geometry"),
    ]
    clusters = find_near_duplicates(behaviors, _at(0, 0, 0, 0, 0, 0))
    assert [(c.namespace, c.topic, c.names) for c in clusters] == [
        ("default", None, ["behavior_none_one", "behavior_none_two"]),
        ("default", "geometry", ["behavior_geo_one", "behavior_geo_two"]),
    ]


def test_archived_and_quarantined_take_no_part_unless_asked() -> None:
    behaviors = [_b("live"), _b("gone", status=BehaviorStatus.ARCHIVED), _b("held", status=BehaviorStatus.QUARANTINED)]
    assert find_near_duplicates(behaviors, _at(0, 0, 0)) == []
    everything = find_near_duplicates(behaviors, _at(0, 0, 0), skip_statuses=frozenset())
    assert [c.names for c in everything] == [["behavior_gone", "behavior_held", "behavior_live"]]


def test_order_is_deterministic_whatever_the_input_order() -> None:
    behaviors = [_b(n) for n in ("dd", "aa", "cc", "bb")]
    vectors = _at(90, 0, 90, 0)
    first = find_near_duplicates(behaviors, vectors)
    again = find_near_duplicates(behaviors[::-1], vectors[::-1])
    assert (
        [c.names for c in first]
        == [c.names for c in again]
        == [
            ["behavior_aa", "behavior_bb"],
            ["behavior_cc", "behavior_dd"],
        ]
    )


def test_vectors_are_normalised_again_and_checked() -> None:
    behaviors = [_b("aa"), _b("bb"), _b("zero")]
    vectors = np.array([[3, 0], [10, 0.5], [0, 0]], dtype=np.float32)
    assert [c.names for c in find_near_duplicates(behaviors, vectors)] == [["behavior_aa", "behavior_bb"]]
    with pytest.raises(InvalidInputError, match="one vector row per behavior"):
        find_near_duplicates(behaviors, vectors[:2])
    with pytest.raises(InvalidInputError, match="cosine"):
        find_near_duplicates(behaviors, vectors, threshold=1.5)
    assert find_near_duplicates([], np.zeros((0, 4), dtype=np.float32)) == []


def test_a_large_random_handbook_finds_the_planted_pairs() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 64)).astype(np.float32)
    twins = base[:20] + 0.05 * rng.normal(size=(20, 64)).astype(np.float32)
    vectors = np.vstack([base, twins])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    behaviors = [_b(f"n{i:03d}") for i in range(300)] + [_b(f"twin{i:03d}") for i in range(20)]
    clusters = find_near_duplicates(behaviors, vectors)
    assert sorted(c.names for c in clusters) == sorted(
        [f"behavior_n{i:03d}", f"behavior_twin{i:03d}"] for i in range(20)
    )


# --- merge_plan --------------------------------------------------------------------------------------


def test_keeper_is_pinned_first() -> None:
    pinned = _b("pinned", pinned=True, created_at=T0 + timedelta(days=9))
    busy = _b("busy", helped=50, hurt=5, cited=90)
    assert merge_plan(_cluster(busy, pinned)).keeper == "behavior_pinned"


def test_keeper_then_most_evidence_then_most_cited_then_oldest_then_name() -> None:
    assert merge_plan(_cluster(_b("few", helped=1), _b("many", helped=2, hurt=1))).keeper == "behavior_many"
    assert merge_plan(_cluster(_b("quiet", cited=1), _b("loud", cited=4))).keeper == "behavior_loud"
    old, new = _b("young", created_at=T0 + timedelta(days=1)), _b("elder", created_at=T0)
    assert merge_plan(_cluster(old, new)).keeper == "behavior_elder"
    assert merge_plan(_cluster(_b("zz", created_at=T0), _b("yy", created_at=T0))).keeper == "behavior_yy"


def test_sources_union_keeps_order_without_repeats_keeper_first() -> None:
    keeper = _b("keeper", helped=9, sources=["t3", "t1"])
    a = _b("aa", sources=["t1", "t4", "t4"])
    b = _b("bb", sources=["t2", "t3"])
    assert merge_plan(_cluster(a, keeper, b)).sources == ["t3", "t1", "t4", "t2"]


def test_counters_of_the_merged_become_the_keepers_delta() -> None:
    keeper = _b("keeper", shown=100, cited=40, helped=20, hurt=2)
    a = _b("aa", shown=10, cited=3, helped=2, hurt=1)
    b = _b("bb", shown=5, cited=1, helped=0, hurt=1)
    plan = merge_plan(_cluster(a, b, keeper))
    assert plan.counter_delta == {"shown": 15, "cited": 4, "helped": 2, "hurt": 2}


def test_the_others_are_archived_never_deleted_with_a_reason() -> None:
    keeper = _b("keeper", helped=9)
    plan = merge_plan(_cluster(_b("zz", status=BehaviorStatus.STALE), keeper, _b("aa")))
    assert [(t.name, t.from_status, t.to_status, t.reason) for t in plan.archive] == [
        ("behavior_aa", BehaviorStatus.ACTIVE, BehaviorStatus.ARCHIVED, "merged into behavior_keeper"),
        ("behavior_zz", BehaviorStatus.STALE, BehaviorStatus.ARCHIVED, "merged into behavior_keeper"),
    ]
    assert plan.keeper_transition is None and plan.skipped == []


def test_a_second_pinned_member_is_skipped_not_merged() -> None:
    first = _b("first", pinned=True, helped=3, sources=["t1"])
    second = _b("second", pinned=True, shown=7, sources=["t2"])
    other = _b("other", shown=2, sources=["t3"])
    plan = merge_plan(_cluster(second, other, first))
    assert plan.keeper == "behavior_first"
    assert plan.skipped == ["behavior_second"]
    assert [t.name for t in plan.archive] == ["behavior_other"]
    assert plan.sources == ["t1", "t3"] and plan.counter_delta["shown"] == 2


def test_a_stale_or_candidate_keeper_of_an_active_duplicate_becomes_active() -> None:
    keeper = _b("keeper", status=BehaviorStatus.STALE, helped=30)
    plan = merge_plan(_cluster(keeper, _b("fresh")))
    assert plan.keeper_transition is not None
    assert (plan.keeper_transition.from_status, plan.keeper_transition.to_status) == (
        BehaviorStatus.STALE,
        BehaviorStatus.ACTIVE,
    )
    both_stale = merge_plan(_cluster(keeper, _b("also", status=BehaviorStatus.STALE)))
    assert both_stale.keeper_transition is None
