"""CurationPass: consolidation then lifecycle, written through the store (or only planned, in a dry run)."""

from __future__ import annotations

from typing import Any

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.reflection.curation import CurationPass, CurationReport
from behavior_memory.types import Behavior, BehaviorStatus, Outcome

UNION = "Count a union by adding the set sizes and subtracting the overlaps."
UNION_TWIN = "Count a union by adding the set sizes and then subtracting the overlaps."
ANGLES = "The interior angles of a triangle sum to 180 degrees."


def _memory(tmp_path: Any, **curation: Any) -> BehaviorMemory:
    config = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
            "curation": {"lifecycle": {"stale_after_tasks": 3}, **curation},
        }
    )
    return BehaviorMemory(config)


@pytest.fixture
def memory(tmp_path: Any) -> Any:
    m = _memory(tmp_path)
    yield m
    m.close()


def _put(m: BehaviorMemory, name: str, instruction: str, namespace: str | None = None, **fields: Any) -> Behavior:
    behavior = Behavior(name=name, instruction=instruction, namespace=namespace or m.namespace, **fields)
    assert m.embedder is not None
    return m.store.put_behavior(behavior, m.embedder.embed([behavior.text])[0])


def _task(m: BehaviorMemory, text: str = "a task", *, shown: tuple[str, ...] = (), **kwargs: Any) -> str:
    outcome = kwargs.pop("outcome", Outcome.UNKNOWN)
    with m.trace(text, hits=shown, **kwargs) as t:
        t.finish(answer="done", outcome=outcome)
    return t.id


def _pass(m: BehaviorMemory, **kwargs: Any) -> CurationPass:
    return CurationPass(m.store, m.embedder, m.config.curation, **kwargs)


def _moves(report: CurationReport) -> list[tuple[str, str, str, str]]:
    return [(c.name, c.action, c.from_status, c.to_status) for c in report.changes]


def test_near_duplicates_fold_into_the_keeper_with_sources_and_counters(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_union_count", UNION, sources=["t1"], helped=3, shown=9)
    _put(memory, "behavior_count_union", UNION_TWIN, sources=["t2", "t1"], helped=1, shown=4, hurt=1)
    _put(memory, "behavior_angle_sum", ANGLES)
    report = _pass(memory).run(memory.namespace)
    assert _moves(report)[:2] == [
        ("behavior_union_count", "absorb", "active", "active"),
        ("behavior_count_union", "merge", "active", "archived"),
    ]
    assert report.changes[1].reason.startswith("merged into behavior_union_count (cosine >= 0.9")
    assert "+1 sources" in report.changes[0].reason and "+4 shown" in report.changes[0].reason
    keeper = memory.handbook.get("behavior_union_count")
    assert keeper.sources == ["t1", "t2"]
    assert (keeper.shown, keeper.helped, keeper.hurt) == (13, 4, 1)  # moved by increment
    merged = memory.handbook.get("behavior_count_union")  # archived, never deleted
    assert merged.status == BehaviorStatus.ARCHIVED and merged.shown == 4
    last = merged.metadata["history"][-1]
    assert (last["by"], last["to"], last["merged_into"]) == ("curation", "archived", "behavior_union_count")
    assert memory.handbook.get("behavior_angle_sum").status == BehaviorStatus.ACTIVE
    # a second pass finds nothing to merge: the counters moved once
    again = _pass(memory).run(memory.namespace)
    assert [c for c in again.changes if c.action != "status"] == []
    assert memory.handbook.get("behavior_union_count").shown == 13


def test_a_candidate_keeper_absorbing_an_active_twin_becomes_active(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_union_count", UNION, status=BehaviorStatus.CANDIDATE, helped=5)
    _put(memory, "behavior_count_union", UNION_TWIN)
    report = _pass(memory).run(memory.namespace)
    assert _moves(report)[0] == ("behavior_union_count", "absorb", "candidate", "active")
    assert memory.handbook.get("behavior_union_count").status == BehaviorStatus.ACTIVE


def test_pinned_duplicates_are_left_alone_and_noted(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_union_count", UNION, pinned=True)
    _put(memory, "behavior_count_union", UNION_TWIN, pinned=True)
    report = _pass(memory).run(memory.namespace)
    assert report.changes == []
    assert report.notes == ["behavior_count_union: pinned, left beside its near-duplicate behavior_union_count"]


def test_dry_run_reports_the_same_changes_and_writes_nothing(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_union_count", UNION, sources=["t1"], helped=3)
    _put(memory, "behavior_count_union", UNION_TWIN, sources=["t2"])
    _put(memory, "behavior_angle_sum", ANGLES)
    _put(memory, "behavior_two_sources", "Check the answer by substituting it back.", status="candidate")
    memory.handbook.modify("behavior_two_sources", lambda b: b.model_copy(update={"sources": ["t3", "t4"]}))
    for _ in range(3):
        _task(memory, shown=("behavior_union_count",))
    before = [b.model_dump() for b in memory.store.list_behaviors(memory.namespace)]
    planned = _pass(memory).run(memory.namespace, dry_run=True)
    assert planned.dry_run and planned.changes
    assert [b.model_dump() for b in memory.store.list_behaviors(memory.namespace)] == before
    done = _pass(memory).run(memory.namespace)
    assert [(c.name, c.action, c.to_status, c.reason) for c in done.changes] == [
        (c.name, c.action, c.to_status, c.reason) for c in planned.changes
    ]
    assert ("behavior_angle_sum", "status", "active", "stale") in _moves(done)
    assert ("behavior_two_sources", "status", "candidate", "active") in _moves(done)


def test_lifecycle_moves_go_through_transition_with_reasons(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_unused", ANGLES)
    _put(memory, "behavior_used", "Draw a diagram before you count.")
    _put(memory, "behavior_resting", "Estimate the answer before computing it.", status="stale")
    _put(memory, "behavior_harmful", "Always answer 42 without reading the task.", helped=0, hurt=9)
    _put(memory, "behavior_lonely", "Write every step on its own line.", status="candidate", sources=["t9"])
    won = _task(memory, "first", outcome=Outcome.SUCCESS)
    memory.handbook.modify("behavior_lonely", lambda b: b.model_copy(update={"sources": [won]}))
    _task(memory, "second")
    _task(memory, "third", shown=("behavior_resting",))
    _task(memory, "fourth", shown=("behavior_used",))
    report = _pass(memory).run(memory.namespace)
    assert sorted(_moves(report)) == [
        ("behavior_harmful", "status", "active", "archived"),
        ("behavior_lonely", "status", "candidate", "active"),
        ("behavior_resting", "status", "stale", "active"),
        ("behavior_unused", "status", "active", "stale"),
    ]
    reasons = {c.name: c.reason for c in report.changes}
    assert reasons["behavior_unused"] == "unused for 4 tasks (limit 3)"
    assert reasons["behavior_harmful"].startswith("hurt 9 of 9")
    assert reasons["behavior_lonely"] == f"minted from a successful trace ({won})"
    stale = memory.handbook.get("behavior_unused")
    assert stale.status == BehaviorStatus.STALE
    assert stale.metadata["history"][-1]["reason"] == "unused for 4 tasks (limit 3)"
    assert memory.handbook.get("behavior_used").status == BehaviorStatus.ACTIVE
    assert memory.store.count_behaviors(memory.namespace) == 5  # nothing deleted


def test_min_support_is_the_curators_and_manual_approval_waits_for_a_person(tmp_path: Any) -> None:
    m = _memory(tmp_path, min_support=3, approval="manual")
    try:
        _put(m, "behavior_two", ANGLES, status="candidate", sources=["t1", "t2"])
        _put(m, "behavior_three", UNION, status="candidate", sources=["t1", "t2", "t3"])
        report = _pass(m).run(m.namespace)
        assert report.changes == []
        assert report.notes == [
            "behavior_three: confirmed by 3 source traces (min 3), but approval is manual: `bmem review` decides"
        ]
        assert m.handbook.get("behavior_three").status == BehaviorStatus.CANDIDATE
    finally:
        m.close()


def test_measured_harm_archives_and_utility_reads_steps_only_for_the_experiment(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_misleads", ANGLES)
    for i in range(10):
        _task(memory, f"shown {i}", shown=("behavior_misleads",), metadata={"withheld": []}, outcome="failure")
        _task(memory, f"withheld {i}", metadata={"withheld": ["behavior_misleads"]}, outcome="success")
    _task(memory, "no experiment", shown=("behavior_misleads",))
    report = _pass(memory).run(memory.namespace)
    assert _moves(report) == [("behavior_misleads", "status", "active", "archived")]
    assert report.changes[0].reason.startswith("showing it lowered success by 100.0 points")
    estimates, read = _pass(memory).utility(memory.namespace)
    assert read == 20 and estimates["behavior_misleads"].verdict == "lowers success"


def test_traces_read_are_bounded_and_read_without_steps(memory: BehaviorMemory, monkeypatch: Any) -> None:
    _put(memory, "behavior_angle_sum", ANGLES)
    limits: list[int] = []
    original = memory.store.list_traces

    def spy(*args: Any, **kwargs: Any) -> Any:
        limits.append(kwargs["limit"])
        return original(*args, **kwargs)

    def no_steps(trace_id: str) -> Any:
        raise AssertionError("a curation pass reads no steps")

    monkeypatch.setattr(memory.store, "list_traces", spy)
    monkeypatch.setattr(memory.store, "get_trace", no_steps)
    _pass(memory, max_traces=50).run(memory.namespace)
    _pass(memory, max_traces=1).run(memory.namespace)
    assert limits == [50, 3]  # at least stale_after_tasks


def test_run_all_covers_every_namespace(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_union_count", UNION, namespace="team-a")
    _put(memory, "behavior_count_union", UNION_TWIN, namespace="team-a")
    _put(memory, "behavior_union_count", UNION, namespace="team-b")
    reports = _pass(memory).run_all(dry_run=True)
    assert [(r.namespace, len(r.changes)) for r in reports] == [("team-a", 2), ("team-b", 0)]
    assert memory.store.get_behavior("team-a", "behavior_count_union").status == BehaviorStatus.ACTIVE


def test_a_behavior_changed_meanwhile_is_left_alone(memory: BehaviorMemory, monkeypatch: Any) -> None:
    _put(memory, "behavior_unused", ANGLES)
    for _ in range(3):
        _task(memory)
    curation = _pass(memory)
    original = curation._lifecycle

    def person_first(*args: Any) -> None:
        memory.handbook.quarantine("behavior_unused", reason="a person looked", by="user:test")
        original(*args)

    monkeypatch.setattr(curation, "_lifecycle", person_first)
    report = curation.run(memory.namespace)
    assert report.changes == [] and report.notes == ["behavior_unused: is no longer active"]
    assert memory.handbook.get("behavior_unused").status == BehaviorStatus.QUARANTINED


def test_a_behavior_just_activated_does_not_count_its_wait_as_unused(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_waited", ANGLES, status="candidate", sources=["t1", "t2"])
    for _ in range(5):
        _task(memory)  # a candidate is never retrieved: these tasks could not use it
    first = _pass(memory).run(memory.namespace)
    assert _moves(first) == [("behavior_waited", "status", "candidate", "active")]
    assert _pass(memory).run(memory.namespace).changes == []
    for _ in range(3):
        _task(memory)
    assert _moves(_pass(memory).run(memory.namespace)) == [("behavior_waited", "status", "active", "stale")]


def test_a_keeper_is_in_use_when_the_duplicate_it_absorbed_was(memory: BehaviorMemory) -> None:
    _put(memory, "behavior_union_count", UNION, status="stale", helped=4)
    _put(memory, "behavior_count_union", UNION_TWIN)
    for _ in range(4):
        _task(memory, shown=("behavior_count_union",))
    report = _pass(memory).run(memory.namespace, dry_run=True)
    assert _moves(report) == [
        ("behavior_union_count", "absorb", "stale", "active"),
        ("behavior_count_union", "merge", "active", "archived"),
    ]
