"""The store contract's concurrency rules: no edit, merge, counter or trace is ever lost.

Checked against every store in ``STORE_FACTORIES`` with real threads (SQLite: one connection each).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from behavior_memory.errors import ConflictError, NotFoundError
from behavior_memory.store.base import HandbookStore
from behavior_memory.store.edits import modify_behavior
from behavior_memory.types import Behavior, BehaviorStatus, ReflectionStatus, Trace

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def behavior(name: str, ns: str = "default", **fields: object) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction=f"instruction of {name}", namespace=ns, **fields)  # type: ignore[arg-type]


def trace(ns: str = "default", minutes: int = 0, **fields: object) -> Trace:
    return Trace(task="2+2?", namespace=ns, created_at=T0 + timedelta(minutes=minutes), **fields)  # type: ignore[arg-type]


def run_threads(count: int, work: object) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)  # type: ignore[operator]
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


# --- optimistic concurrency ---------------------------------------------------------------------


def test_an_edit_from_a_stale_read_is_refused_and_changes_nothing(store: HandbookStore) -> None:
    stored = store.put_behavior(behavior("aa"))
    first = store.update_behavior(stored.model_copy(update={"instruction": "first edit wins"}))
    with pytest.raises(ConflictError, match="changed since it was read"):
        store.update_behavior(stored.model_copy(update={"instruction": "a stale edit"}))
    now = store.get_behavior("default", "behavior_aa")
    assert now.instruction == "first edit wins" and now.version == first.version == stored.version + 1


def test_an_edit_never_rolls_back_counters_moved_since_the_read(store: HandbookStore) -> None:
    read = store.put_behavior(behavior("aa"))
    store.increment("default", ["behavior_aa"], "shown", by=5)
    store.increment("default", ["behavior_aa"], "helped")
    result = store.update_behavior(read.model_copy(update={"instruction": "edited", "shown": 0, "helped": 99}))
    now = store.get_behavior("default", "behavior_aa")
    assert (now.shown, now.helped, now.instruction) == (5, 1, "edited")
    assert (result.shown, result.helped) == (5, 1)  # the result is what is stored


def test_metadata_and_last_use_round_trip(store: HandbookStore) -> None:
    store.put_behavior(behavior("aa", metadata={"guard": {"rule": None}, "history": [{"to": "active"}]}))
    got = store.get_behavior("default", "behavior_aa")
    assert got.metadata == {"guard": {"rule": None}, "history": [{"to": "active"}]}
    assert got.last_used_at is None
    got.metadata["history"].append({"to": "archived"})  # a copy: the store does not change
    assert store.get_behavior("default", "behavior_aa").metadata["history"] == [{"to": "active"}]
    store.increment("default", ["behavior_aa"], "helped")
    assert store.get_behavior("default", "behavior_aa").last_used_at is None  # feedback is not use
    store.increment("default", ["behavior_aa"], "shown")
    assert store.get_behavior("default", "behavior_aa").last_used_at is not None


def test_modify_behavior_retries_until_it_lands_and_skips_no_ops(store: HandbookStore) -> None:
    store.put_behavior(behavior("aa"))
    calls: list[int] = []

    def change(b: Behavior) -> Behavior:
        calls.append(b.version)
        if len(calls) == 1:  # someone else edits between our read and our write
            store.update_behavior(store.get_behavior("default", "behavior_aa").model_copy(update={"topic": "t"}))
        return b.model_copy(update={"instruction": "ours"})

    result = modify_behavior(store, "default", "behavior_aa", change)
    assert calls == [1, 2] and result.instruction == "ours" and result.topic == "t"
    unchanged = modify_behavior(store, "default", "behavior_aa", lambda b: None)
    assert unchanged.version == result.version
    with pytest.raises(NotFoundError):
        modify_behavior(store, "default", "behavior_missing", lambda b: b)


def test_concurrent_increments_and_edits_lose_nothing(store: HandbookStore) -> None:
    store.put_behavior(behavior("hot"))

    def work(i: int) -> None:
        if i < 4:  # 4 threads x 750 increments
            for _ in range(750):
                store.increment("default", ["behavior_hot"], "shown")
        else:  # 4 threads x 75 edits of the instruction
            for j in range(75):
                modify_behavior(
                    store, "default", "behavior_hot", lambda b, i=i, j=j: b.model_copy(update={"topic": f"t{i}-{j}"})
                )

    run_threads(8, work)
    final = store.get_behavior("default", "behavior_hot")
    assert final.shown == 3000
    assert final.version == 1 + 300


def test_concurrent_merges_keep_every_source(store: HandbookStore) -> None:
    store.put_behavior(behavior("target"))

    def work(i: int) -> None:
        for j in range(25):
            source = f"{i:02d}{j:030d}"
            modify_behavior(
                store,
                "default",
                "behavior_target",
                lambda b, s=source: None if s in b.sources else b.model_copy(update={"sources": [*b.sources, s]}),
            )

    run_threads(8, work)
    assert len(set(store.get_behavior("default", "behavior_target").sources)) == 200


# --- recording a finished task --------------------------------------------------------------------


def test_save_trace_counts_shown_and_cited_once_even_when_replayed(store: HandbookStore) -> None:
    store.put_behaviors([(behavior("aa"), None), (behavior("bb"), None)])
    t = trace(shown=["behavior_aa", "behavior_bb", "behavior_aa"], cited=["behavior_bb", "behavior_missing"])
    assert store.save_trace(t) is True
    assert store.save_trace(t) is False  # a replay from the spool: stored, not counted again
    a, b = store.get_behavior("default", "behavior_aa"), store.get_behavior("default", "behavior_bb")
    assert (a.shown, a.cited, b.shown, b.cited) == (1, 0, 1, 1)
    assert store.get_trace(t.id).shown == t.shown


def test_save_trace_never_counts_across_namespaces(store: HandbookStore) -> None:
    store.put_behavior(behavior("aa", ns="other"))
    store.save_trace(trace(shown=["behavior_aa"]))
    assert store.get_behavior("other", "behavior_aa").shown == 0


# --- reflection queue ---------------------------------------------------------------------------------


def test_count_claimable_sees_pending_and_expired_claims(store: HandbookStore) -> None:
    for i in range(3):
        store.put_trace(trace(minutes=i))
    store.put_trace(trace(minutes=9, reflection_status=ReflectionStatus.DONE))
    assert store.count_claimable(lease_s=60) == 3
    store.claim_pending_traces(2, lease_s=60)
    assert store.count_claimable(lease_s=60) == 1
    assert store.count_claimable(lease_s=-1) == 3  # the claims have expired for a zero lease


def test_requeue_traces_by_namespace_reason_and_age(store: HandbookStore) -> None:
    failed = ReflectionStatus.FAILED
    a = store.put_trace(trace(minutes=0, reflection_status=failed, reflection_error="HTTP 500", reflection_attempts=3))
    b = store.put_trace(trace(minutes=5, reflection_status=failed, reflection_error="schema invalid"))
    c = store.put_trace(trace(ns="other", minutes=1, reflection_status=failed, reflection_error="HTTP 500"))
    store.put_trace(trace(minutes=2))
    assert store.requeue_traces("default", error_contains="HTTP 500") == 1
    got = store.get_trace(a.id)
    assert (got.reflection_status, got.reflection_attempts) == (ReflectionStatus.PENDING, 0)
    assert store.get_trace(b.id).reflection_status == failed
    assert store.get_trace(c.id).reflection_status == failed
    assert store.requeue_traces(before=T0 + timedelta(minutes=3)) == 1  # c, of any namespace
    assert store.requeue_traces() == 1  # b
    assert store.requeue_traces() == 0
    assert store.count_traces(status=ReflectionStatus.PENDING) == 4


def test_count_traces_since(store: HandbookStore) -> None:
    for i in range(5):
        store.put_trace(trace(minutes=i))
    store.put_trace(trace(ns="other", minutes=9))
    assert store.count_traces("default", since=T0 + timedelta(minutes=2)) == 2
    assert store.count_traces(since=T0 + timedelta(minutes=2)) == 3
    assert store.count_traces("default", since=None) == 5


def test_status_survives_concurrent_counter_traffic(store: HandbookStore) -> None:
    store.put_behavior(behavior("aa", status=BehaviorStatus.CANDIDATE))

    def work(i: int) -> None:
        if i == 0:
            modify_behavior(store, "default", "behavior_aa", lambda b: b.model_copy(update={"status": "active"}))
        else:
            for _ in range(100):
                store.increment("default", ["behavior_aa"], "cited")

    run_threads(4, work)
    final = store.get_behavior("default", "behavior_aa")
    assert final.status == BehaviorStatus.ACTIVE and final.cited == 300
