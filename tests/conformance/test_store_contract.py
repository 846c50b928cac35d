"""The store contract (``behavior_memory.store.base``), checked against every store in ``STORE_FACTORIES``."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from behavior_memory.errors import InvalidBehaviorError, NotFoundError
from behavior_memory.store.base import BehaviorStore, HandbookStore, MetaStore, TraceStore
from behavior_memory.types import Behavior, BehaviorStatus, Outcome, ReflectionStatus, Step, Trace

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def behavior(name: str, ns: str = "default", **fields: object) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction=f"instruction of {name}", namespace=ns, **fields)  # type: ignore[arg-type]


def vec(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def trace(task: str = "2+2?", ns: str = "default", minutes: int = 0, **fields: object) -> Trace:
    return Trace(task=task, namespace=ns, created_at=T0 + timedelta(minutes=minutes), **fields)  # type: ignore[arg-type]


def names(behaviors: list[Behavior]) -> list[str]:
    return [b.name.removeprefix("behavior_") for b in behaviors]


def test_implements_every_protocol(store: HandbookStore) -> None:
    for protocol in (BehaviorStore, TraceStore, MetaStore, HandbookStore):
        assert isinstance(store, protocol)


# --- behaviors --------------------------------------------------------------------------------
def test_put_then_get_by_id_and_by_name(store: HandbookStore) -> None:
    b = behavior("one", topic="algebra", tags=["x", "y"], sources=["t1"], model="m", pinned=True, shown=3)
    assert store.put_behavior(b) == b
    assert store.get_behavior("default", b.id) == b
    assert store.get_behavior("default", "behavior_one") == b


def test_missing_behavior_is_not_found(store: HandbookStore) -> None:
    with pytest.raises(NotFoundError):
        store.get_behavior("default", "behavior_nope")
    with pytest.raises(NotFoundError):
        store.delete_behavior("default", "behavior_nope")
    with pytest.raises(NotFoundError):
        store.update_behavior(behavior("nope"))


def test_returned_behaviors_are_copies(store: HandbookStore) -> None:
    store.put_behavior(behavior("one", tags=["x"]))
    got = store.get_behavior("default", "behavior_one")
    got.tags.append("mutated")
    store.list_behaviors("default")[0].sources.append("mutated")
    again = store.get_behavior("default", "behavior_one")
    assert again.tags == ["x"] and again.sources == []


def test_duplicate_names_are_rejected_within_a_namespace_only(store: HandbookStore) -> None:
    store.put_behavior(behavior("one"))
    with pytest.raises(InvalidBehaviorError, match="already exists"):
        store.put_behavior(behavior("one"))
    store.put_behavior(behavior("one", ns="team-b"))
    assert (store.count_behaviors(), store.count_behaviors("default"), store.count_behaviors("team-b")) == (2, 1, 1)


@pytest.mark.parametrize("clash", ["existing", "in_batch"])
def test_put_behaviors_is_all_or_nothing(store: HandbookStore, clash: str) -> None:
    store.put_behavior(behavior("two"))
    token = store.change_token("default")
    batch = [(behavior("one"), vec(1, 0)), (behavior("two" if clash == "existing" else "one"), None)]
    with pytest.raises(InvalidBehaviorError):
        store.put_behaviors(batch)
    assert names(store.list_behaviors("default")) == ["two"]
    assert store.vectors("default")[0] == []
    assert store.change_token("default") == token


def test_put_behaviors_stores_every_item_with_its_vector(store: HandbookStore) -> None:
    items = [(behavior("bb"), vec(0, 1)), (behavior("aa"), vec(1, 0)), (behavior("cc"), None)]
    assert store.put_behaviors(items) == [b for b, _ in items]
    ids, matrix = store.vectors("default")
    assert ids == [items[1][0].id, items[0][0].id]  # ordered by name; cc has no vector
    assert matrix.dtype == np.float32 and np.array_equal(matrix, np.stack([vec(1, 0), vec(0, 1)]))


def test_update_replaces_fields_and_bumps_the_version(store: HandbookStore) -> None:
    b = store.put_behavior(behavior("one"), vec(1, 0))
    token = store.change_token("default")
    changed = b.model_copy(update={"instruction": "new text", "status": BehaviorStatus.QUARANTINED, "tags": ["t"]})
    updated = store.update_behavior(changed)
    assert updated.version == b.version + 1 and updated.updated_at >= b.updated_at
    stored = store.get_behavior("default", b.id)
    assert stored == updated
    assert (stored.instruction, stored.status, stored.tags) == ("new text", BehaviorStatus.QUARANTINED, ["t"])
    assert np.array_equal(store.vectors("default")[1][0], vec(1, 0))  # no vector given: kept
    assert store.change_token("default") > token
    store.update_behavior(stored, vec(0, 1))
    assert np.array_equal(store.vectors("default")[1][0], vec(0, 1))
    assert store.get_behavior("default", b.id).version == 3


def test_update_can_rename_but_not_onto_a_taken_name(store: HandbookStore) -> None:
    one = store.put_behavior(behavior("one"))
    store.put_behavior(behavior("two"))
    with pytest.raises(InvalidBehaviorError):
        store.update_behavior(one.model_copy(update={"name": "behavior_two"}))
    assert store.get_behavior("default", one.id).name == "behavior_one"
    store.update_behavior(one.model_copy(update={"name": "behavior_three"}))
    assert store.get_behavior("default", "behavior_three").id == one.id
    with pytest.raises(NotFoundError):
        store.get_behavior("default", "behavior_one")


def test_update_and_delete_never_cross_namespaces(store: HandbookStore) -> None:
    b = store.put_behavior(behavior("one", ns="tenant-a"))
    with pytest.raises(NotFoundError):
        store.update_behavior(b.model_copy(update={"namespace": "tenant-b"}))
    with pytest.raises(NotFoundError):
        store.delete_behavior("tenant-b", b.id)
    with pytest.raises(NotFoundError):
        store.get_behavior("tenant-b", "behavior_one")
    assert store.get_behavior("tenant-a", b.id).version == 1


@pytest.mark.parametrize("key", ["id", "name"])
def test_delete_by_id_or_name_removes_the_vector_too(store: HandbookStore, key: str) -> None:
    one = store.put_behavior(behavior("one"), vec(1, 0))
    two = store.put_behavior(behavior("two"), vec(0, 1))
    token = store.change_token("default")
    store.delete_behavior("default", one.id if key == "id" else one.name)
    with pytest.raises(NotFoundError):
        store.get_behavior("default", one.id)
    assert store.vectors("default")[0] == [two.id]
    assert store.change_token("default") > token
    store.put_behavior(behavior("one"))  # the name is free again


def test_list_is_ordered_by_name_and_filters(store: HandbookStore) -> None:
    store.put_behaviors(
        [
            (behavior("cc", topic="t1"), None),
            (behavior("aa", topic="t2"), None),
            (behavior("bb", topic="t1", status=BehaviorStatus.QUARANTINED), None),
            (behavior("dd", topic="t1", status=BehaviorStatus.CANDIDATE), None),
            (behavior("ab", ns="other", topic="t1"), None),
        ]
    )
    assert names(store.list_behaviors("default")) == ["aa", "bb", "cc", "dd"]
    assert names(store.list_behaviors("default", topic="t1")) == ["bb", "cc", "dd"]
    assert names(store.list_behaviors("default", statuses=[BehaviorStatus.ACTIVE])) == ["aa", "cc"]
    both = [BehaviorStatus.ACTIVE, BehaviorStatus.CANDIDATE]
    assert names(store.list_behaviors("default", statuses=both, topic="t1")) == ["cc", "dd"]
    assert names(store.list_behaviors("default", limit=2)) == ["aa", "bb"]
    assert store.list_behaviors("default", statuses=[]) == []
    assert store.list_behaviors("nobody") == []


def test_namespaces_are_sorted_and_hold_behaviors_or_traces(store: HandbookStore) -> None:
    assert store.namespaces() == []
    store.put_behavior(behavior("one", ns="zeta"))
    gone = store.put_behavior(behavior("two", ns="beta"))
    store.put_trace(trace(ns="alpha"))
    assert store.namespaces() == ["alpha", "beta", "zeta"]
    store.delete_behavior("beta", gone.id)
    assert store.namespaces() == ["alpha", "zeta"]


def test_vectors_of_an_empty_namespace(store: HandbookStore) -> None:
    store.put_behavior(behavior("one"))  # no vector
    for namespace in ("default", "nobody"):
        ids, matrix = store.vectors(namespace)
        assert ids == [] and matrix.shape == (0, 0) and matrix.dtype == np.float32


def test_vectors_of_mixed_sizes_keep_the_most_common(store: HandbookStore) -> None:
    a = store.put_behavior(behavior("aa"), vec(1, 0, 0))
    store.put_behavior(behavior("bb"), vec(1, 0))
    c = store.put_behavior(behavior("cc"), vec(0, 1, 0))
    ids, matrix = store.vectors("default")
    assert ids == [a.id, c.id] and matrix.shape == (2, 3)


def test_stored_vectors_are_copies(store: HandbookStore) -> None:
    v = vec(1, 0)
    store.put_behavior(behavior("one"), v)
    v[0] = 9.0
    assert np.array_equal(store.vectors("default")[1][0], vec(1, 0))


def test_set_vectors_replaces_the_given_ids_only(store: HandbookStore) -> None:
    one = store.put_behavior(behavior("one"), vec(1, 0))
    two = store.put_behavior(behavior("two"), vec(0, 1))
    other = store.put_behavior(behavior("one", ns="other"), vec(1, 1))
    token = store.change_token("default")
    store.set_vectors("default", {one.id: vec(0.6, 0.8), other.id: vec(5, 5), "unknown-id": vec(3, 3)})
    ids, matrix = store.vectors("default")
    assert ids == [one.id, two.id]
    assert np.allclose(matrix, np.stack([vec(0.6, 0.8), vec(0, 1)]))
    assert np.array_equal(store.vectors("other")[1][0], vec(1, 1))  # another namespace's id: ignored
    assert store.change_token("default") > token


def test_increment_moves_each_named_counter_once_and_ignores_unknown_names(store: HandbookStore) -> None:
    store.put_behavior(behavior("one"))
    store.put_behavior(behavior("two"))
    store.put_behavior(behavior("one", ns="other"))
    token = store.change_token("default")
    store.increment("default", ["behavior_one", "behavior_unknown", "behavior_one"], "cited", 2)
    store.increment("default", ["behavior_two"], "shown")
    store.increment("default", [], "hurt")
    one, two = store.list_behaviors("default")
    assert (one.cited, one.shown, two.cited, two.shown) == (2, 0, 0, 1)
    assert store.get_behavior("other", "behavior_one").cited == 0
    assert store.change_token("default") == token  # statistics, not content: caches stay valid
    with pytest.raises(ValueError, match="unknown counter"):
        store.increment("default", ["behavior_one"], "bogus")


def test_every_content_write_moves_the_change_token(store: HandbookStore) -> None:
    assert store.change_token("default") == 0
    seen = [store.change_token("default")]

    def moved() -> None:
        token = store.change_token("default")
        assert token > seen[-1]
        seen.append(token)

    b = store.put_behavior(behavior("one"))
    moved()
    store.put_behaviors([(behavior("two"), None), (behavior("three"), None)])
    moved()
    store.update_behavior(b)
    moved()
    store.set_vectors("default", {b.id: vec(1, 0)})
    moved()
    store.delete_behavior("default", b.id)
    moved()


def test_many_threads_increment_without_loss(store: HandbookStore) -> None:
    store.put_behavior(behavior("counter"))

    def work() -> None:
        for _ in range(25):
            store.increment("default", ["behavior_counter"], "shown")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_behavior("default", "behavior_counter").shown == 200


# --- traces -----------------------------------------------------------------------------------
def test_trace_roundtrip_with_steps(store: HandbookStore) -> None:
    t = trace(
        ns="team-a",
        steps=[
            Step(kind="model", messages=[{"role": "user", "content": "2+2"}], output="4"),
            Step(kind="tool", name="calc", args={"x": 2}, result="4"),
        ],
        shown=["behavior_one"],
        metadata={"k": [1, 2]},
    )
    assert store.put_trace(t) == t
    assert store.get_trace(t.id) == t
    with pytest.raises(NotFoundError):
        store.get_trace("0" * 32)


def test_put_trace_replaces_a_trace_and_its_steps(store: HandbookStore) -> None:
    t = trace(steps=[Step(kind="model", output="a"), Step(kind="model", output="b")])
    store.put_trace(t)
    store.put_trace(t.model_copy(update={"answer": "4", "steps": [Step(kind="model", output="c")]}))
    got = store.get_trace(t.id)
    assert got.answer == "4" and [s.output for s in got.steps] == ["c"]
    assert store.count_traces() == 1


def test_returned_traces_are_copies(store: HandbookStore) -> None:
    t = store.put_trace(trace(shown=["behavior_one"]))
    t.shown.append("behavior_mutated")  # the caller's object, after the put
    got = store.get_trace(t.id)
    got.shown.append("behavior_mutated")
    assert store.get_trace(t.id).shown == ["behavior_one"]


def test_list_traces_newest_first_filtered_and_without_steps(store: HandbookStore) -> None:
    old = store.put_trace(trace("old", minutes=0, steps=[Step(kind="model", output="x")]))
    new = store.put_trace(trace("new", minutes=2))
    mid = store.put_trace(trace("mid", minutes=1, reflection_status=ReflectionStatus.DONE))
    elsewhere = store.put_trace(trace("elsewhere", ns="team-b", minutes=3))
    assert [t.task for t in store.list_traces("default")] == ["new", "mid", "old"]
    assert [t.task for t in store.list_traces()] == ["elsewhere", "new", "mid", "old"]
    assert [t.task for t in store.list_traces("default", limit=2)] == ["new", "mid"]
    assert [t.id for t in store.list_traces("default", status=ReflectionStatus.DONE)] == [mid.id]
    assert [t.id for t in store.list_traces("team-b")] == [elsewhere.id]
    assert store.list_traces("nobody") == []
    listed = {t.id: t for t in store.list_traces()}
    assert listed[old.id].steps == [] and listed[new.id].task == "new"


def test_list_traces_breaks_ties_by_id(store: HandbookStore) -> None:
    ids = ["c" * 32, "a" * 32, "b" * 32]
    for trace_id in ids:
        store.put_trace(trace(id=trace_id))
    assert [t.id for t in store.list_traces()] == sorted(ids)


def test_count_traces_by_namespace_and_status(store: HandbookStore) -> None:
    store.put_trace(trace(minutes=0))
    store.put_trace(trace(minutes=1, reflection_status=ReflectionStatus.SKIPPED))
    store.put_trace(trace(ns="team-b", minutes=2))
    assert store.count_traces() == 3
    assert store.count_traces("default") == 2
    assert store.count_traces(status=ReflectionStatus.PENDING) == 2
    assert store.count_traces("default", status=ReflectionStatus.PENDING) == 1
    assert store.count_traces("nobody") == 0


def test_update_trace_fields_keeps_the_steps(store: HandbookStore) -> None:
    t = store.put_trace(trace(steps=[Step(kind="model", output="4")]))
    store.update_trace_fields(t.id, outcome=Outcome.SUCCESS, score=0.5, feedback="good", minted=["behavior_x"])
    got = store.get_trace(t.id)
    assert (got.outcome, got.score, got.feedback, got.minted) == (Outcome.SUCCESS, 0.5, "good", ["behavior_x"])
    assert [s.output for s in got.steps] == ["4"] and got.task == t.task
    with pytest.raises(ValueError, match="cannot update"):
        store.update_trace_fields(t.id, task="another task")
    assert store.get_trace(t.id).task == t.task
    with pytest.raises(NotFoundError):
        store.update_trace_fields("0" * 32, outcome=Outcome.FAILURE)


def test_claim_marks_running_counts_the_attempt_and_returns_steps(store: HandbookStore) -> None:
    t = store.put_trace(trace(steps=[Step(kind="model", output="4")]))
    [claimed] = store.claim_pending_traces(10)
    assert claimed.id == t.id and claimed.reflection_attempts == 1
    assert claimed.reflection_status == ReflectionStatus.RUNNING and [s.output for s in claimed.steps] == ["4"]
    assert store.get_trace(t.id).reflection_status == ReflectionStatus.RUNNING


def test_a_claimed_trace_is_not_claimed_twice_until_its_lease_expires(store: HandbookStore) -> None:
    t = store.put_trace(trace())
    assert [c.id for c in store.claim_pending_traces(10)] == [t.id]
    assert store.claim_pending_traces(10) == []
    assert store.claim_pending_traces(10, lease_s=3600) == []
    time.sleep(0.01)
    [again] = store.claim_pending_traces(10, lease_s=0.0)  # the claimer died: its lease ran out
    assert again.id == t.id and again.reflection_attempts == 2


def test_claims_take_the_oldest_pending_of_every_namespace_only(store: HandbookStore) -> None:
    newest = store.put_trace(trace(minutes=5))
    oldest = store.put_trace(trace(ns="team-b", minutes=0))
    middle = store.put_trace(trace(minutes=2))
    for status in (ReflectionStatus.DONE, ReflectionStatus.FAILED, ReflectionStatus.SKIPPED):
        store.put_trace(trace(minutes=-1, reflection_status=status))
    assert [c.id for c in store.claim_pending_traces(2)] == [oldest.id, middle.id]
    assert [c.id for c in store.claim_pending_traces(2)] == [newest.id]
    time.sleep(0.01)
    assert len(store.claim_pending_traces(10, lease_s=0.0)) == 3  # finished traces are never claimed


def test_a_finished_trace_is_not_reclaimed_and_a_released_one_is(store: HandbookStore) -> None:
    done = store.put_trace(trace(minutes=0))
    back = store.put_trace(trace(minutes=1))
    store.claim_pending_traces(10)
    store.update_trace_fields(done.id, reflection_status=ReflectionStatus.DONE)
    store.update_trace_fields(back.id, reflection_status=ReflectionStatus.PENDING)  # e.g. the server was down
    assert [c.id for c in store.claim_pending_traces(10)] == [back.id]
    time.sleep(0.01)
    assert [c.id for c in store.claim_pending_traces(10, lease_s=0.0)] == [back.id]


def test_concurrent_claimers_never_share_a_trace(store: HandbookStore) -> None:
    ids = {store.put_trace(trace(minutes=i)).id for i in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(len(ids)):  # bounded: a store that hands traces out twice fails instead of spinning
            batch = store.claim_pending_traces(3)
            if not batch:
                return
            with lock:
                claimed.extend(t.id for t in batch)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


# --- meta -------------------------------------------------------------------------------------
def test_meta_get_and_set(store: HandbookStore) -> None:
    assert store.get_meta("embedder") is None
    store.set_meta("embedder", "hashing:256")
    store.set_meta("other", "x")
    assert store.get_meta("embedder") == "hashing:256"
    store.set_meta("embedder", "minilm:384")
    assert (store.get_meta("embedder"), store.get_meta("other")) == ("minilm:384", "x")
