"""The change feed (``store.base.ChangeFeed``): which behaviors moved since a token, and retrieval's columns."""

from __future__ import annotations

import numpy as np

from behavior_memory.store.base import FEED_MAX_IDS, ChangeFeed, HandbookStore
from behavior_memory.types import Behavior, BehaviorStatus


def behavior(name: str, ns: str = "default", **fields: object) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction=f"instruction of {name}", namespace=ns, **fields)  # type: ignore[arg-type]


def vec(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def feed(store: HandbookStore) -> ChangeFeed:
    assert isinstance(store, ChangeFeed)
    return store


def test_every_store_has_a_feed(store: HandbookStore) -> None:
    assert isinstance(store, ChangeFeed)


def test_a_fresh_namespace_has_nothing_to_tell(store: HandbookStore) -> None:
    assert feed(store).changes_since("nobody", 0) == (0, [], [])
    assert feed(store).changes_since("nobody", 5) is None  # ahead of the store: rebuild


def test_each_write_is_listed_once_with_its_last_state(store: HandbookStore) -> None:
    a, b, c = behavior("aa"), behavior("bb"), behavior("cc")
    store.put_behaviors([(a, vec(1, 0)), (b, None)])
    t1 = store.change_token("default")
    assert t1 > 0
    token, changed, deleted = feed(store).changes_since("default", 0) or (0, [], [])
    assert (token, sorted(changed), deleted) == (t1, sorted([a.id, b.id]), [])
    assert feed(store).changes_since("default", t1) == (t1, [], [])

    store.put_behavior(c)
    store.update_behavior(store.get_behavior("default", a.id).model_copy(update={"status": BehaviorStatus.QUARANTINED}))
    store.set_vectors("default", {b.id: vec(0, 1)})
    store.delete_behavior("default", c.id)  # written, then deleted: deleted only
    token, changed, deleted = feed(store).changes_since("default", t1) or (0, [], [])
    assert token == store.change_token("default")
    assert sorted(changed) == sorted([a.id, b.id]) and deleted == [c.id]


def test_counters_do_not_appear(store: HandbookStore) -> None:
    store.put_behavior(behavior("aa"))
    token = store.change_token("default")
    store.increment("default", ["behavior_aa"], "shown")
    assert feed(store).changes_since("default", token) == (token, [], [])


def test_namespaces_have_their_own_feed(store: HandbookStore) -> None:
    store.put_behavior(behavior("aa", ns="acme/a"))
    other = behavior("aa", ns="acme/b")
    store.put_behavior(other)
    assert feed(store).changes_since("acme/b", 0) == (store.change_token("acme/b"), [other.id], [])


def test_deleted_then_written_again_is_changed(store: HandbookStore) -> None:
    a = behavior("aa")
    store.put_behavior(a)
    token = store.change_token("default")
    store.delete_behavior("default", a.id)
    store.put_behavior(a)
    assert feed(store).changes_since("default", token) == (store.change_token("default"), [a.id], [])


def test_a_huge_write_moves_the_floor(store: HandbookStore) -> None:
    store.put_behavior(behavior("first"))
    token = store.change_token("default")
    many = [(behavior(f"b{i:05d}"), None) for i in range(FEED_MAX_IDS + 1)]
    store.put_behaviors(many)
    assert feed(store).changes_since("default", token) is None  # not itemised: followers rebuild
    after = store.change_token("default")
    store.put_behavior(behavior("last"))
    found = feed(store).changes_since("default", after)
    assert found is not None and len(found[1]) == 1


def test_retrieval_rows_are_columns_of_the_asked_behaviors(store: HandbookStore) -> None:
    active = behavior("aa", topic="Algebra", pinned=True, tags=["x"], sources=["t1"], shown=2)
    archived = behavior("bb", status=BehaviorStatus.ARCHIVED)
    plain = behavior("cc")
    store.put_behaviors([(active, vec(1, 0)), (archived, vec(0, 1)), (plain, None)])
    rows = feed(store).retrieval_rows("default", statuses=[BehaviorStatus.ACTIVE], with_vectors=True)
    assert sorted(rows.ids) == sorted([active.id, plain.id])
    at = rows.ids.index(active.id)
    assert (rows.names[at], rows.instructions[at], rows.topics[at], rows.pinned[at]) == (
        "behavior_aa",
        "instruction of aa",
        "Algebra",
        True,
    )
    assert rows.materialize(rows.records[at]) == store.get_behavior("default", active.id)
    assert rows.vectors is not None and rows.vectors[0] == [active.id]
    np.testing.assert_allclose(rows.vectors[1], [[1.0, 0.0]])

    some = feed(store).retrieval_rows("default", ids=[archived.id, "missing"])
    assert some.ids == [archived.id] and some.vectors is None
    assert some.materialize(some.records[0]).status == BehaviorStatus.ARCHIVED
    assert len(feed(store).retrieval_rows("nobody")) == 0
