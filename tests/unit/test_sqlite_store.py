import os
import sqlite3
import stat
import threading

import numpy as np
import pytest

from behavior_memory import Behavior, BehaviorStatus, ReflectionStatus, Step, Trace
from behavior_memory.errors import (
    InvalidBehaviorError,
    NotFoundError,
    StoreCorruptedError,
    StoreError,
    StoreUnavailableError,
)
from behavior_memory.store.base import HandbookStore
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.store.sqlite_migrations import MIGRATIONS


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "handbook.db")
    yield s
    s.close()


def _b(name, ns="default", **kw):
    return Behavior(name=name, instruction=f"instruction of {name}", namespace=ns, **kw)


def test_implements_protocol_and_uses_wal(store, tmp_path):
    assert isinstance(store, HandbookStore)
    conn = sqlite3.connect(tmp_path / "handbook.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_behavior_roundtrip_with_vector(store):
    vec = np.arange(4, dtype=np.float32)
    b = store.put_behavior(_b("behavior_one", topic="algebra", tags=["x"]), vec)
    got = store.get_behavior("default", "behavior_one")
    assert got == b
    assert store.get_behavior("default", b.id) == b
    ids, matrix = store.vectors("default")
    assert ids == [b.id] and np.array_equal(matrix[0], vec)


def test_duplicate_name_in_namespace_is_rejected_but_other_namespace_is_fine(store):
    store.put_behavior(_b("behavior_one"))
    with pytest.raises(InvalidBehaviorError, match="already exists"):
        store.put_behavior(_b("behavior_one"))
    store.put_behavior(_b("behavior_one", ns="team-b"))
    assert store.count_behaviors() == 2


def test_namespaces_never_see_each_other(store):
    store.put_behavior(_b("behavior_alpha", ns="tenant-a"))
    store.put_behavior(_b("behavior_beta", ns="tenant-b"))
    assert [b.name for b in store.list_behaviors("tenant-a")] == ["behavior_alpha"]
    with pytest.raises(NotFoundError):
        store.get_behavior("tenant-a", "behavior_beta")
    with pytest.raises(NotFoundError):
        store.delete_behavior("tenant-a", "behavior_beta")
    assert store.vectors("tenant-a")[0] == []


def test_put_behaviors_is_all_or_nothing(store):
    store.put_behavior(_b("behavior_two"))
    with pytest.raises(InvalidBehaviorError):
        store.put_behaviors([(_b("behavior_one"), None), (_b("behavior_two"), None)])
    assert [b.name for b in store.list_behaviors("default")] == ["behavior_two"]


def test_list_filters_and_order(store):
    store.put_behaviors(
        [
            (_b("behavior_cc", topic="t1"), None),
            (_b("behavior_aa", topic="t2"), None),
            (_b("behavior_bb", topic="t1", status=BehaviorStatus.QUARANTINED), None),
        ]
    )
    assert [b.name for b in store.list_behaviors("default")] == ["behavior_aa", "behavior_bb", "behavior_cc"]
    assert [b.name for b in store.list_behaviors("default", topic="t1")] == ["behavior_bb", "behavior_cc"]
    assert [b.name for b in store.list_behaviors("default", statuses=[BehaviorStatus.ACTIVE])] == [
        "behavior_aa",
        "behavior_cc",
    ]


def test_update_bumps_version_and_change_token(store):
    b = store.put_behavior(_b("behavior_one"))
    token = store.change_token("default")
    updated = store.update_behavior(b.model_copy(update={"instruction": "new text"}))
    assert updated.version == 2
    assert store.get_behavior("default", "behavior_one").instruction == "new text"
    assert store.change_token("default") > token
    assert store.change_token("elsewhere") == 0


def test_counters_are_atomic_and_ignore_unknown_names(store):
    store.put_behavior(_b("behavior_one"))
    store.increment("default", ["behavior_one", "behavior_unknown"], "cited", 2)
    store.increment("default", ["behavior_one"], "shown")
    b = store.get_behavior("default", "behavior_one")
    assert (b.cited, b.shown) == (2, 1)
    with pytest.raises(ValueError, match="unknown counter"):
        store.increment("default", ["behavior_one"], "bogus")


def test_trace_roundtrip_and_claiming(store):
    t = Trace(
        task="What is 2+2?",
        namespace="team-a",
        steps=[
            Step(kind="model", messages=[{"role": "user", "content": "2+2"}], output="4"),
            Step(kind="tool", name="calc", args={"x": 2}, result="4"),
        ],
    )
    store.put_trace(t)
    got = store.get_trace(t.id)
    assert got.steps == t.steps and got.task == t.task
    claimed = store.claim_pending_traces(10)
    assert [c.id for c in claimed] == [t.id]
    assert claimed[0].reflection_attempts == 1
    assert store.claim_pending_traces(10) == []  # running and leased
    assert [c.id for c in store.claim_pending_traces(10, lease_s=0.0)] == [t.id]  # lease expired: reclaimable
    store.update_trace_fields(t.id, reflection_status=ReflectionStatus.DONE, minted=["behavior_x"])
    assert store.get_trace(t.id).minted == ["behavior_x"]
    assert store.claim_pending_traces(10, lease_s=0.0) == []
    assert [x.id for x in store.list_traces("team-a")] == [t.id]
    assert store.list_traces("team-b") == []


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        SQLiteStore(tmp_path / "nope" / "handbook.db")


def test_corrupted_file_is_reported_and_left_untouched(tmp_path):
    path = tmp_path / "handbook.db"
    junk = b"this is not sqlite" * 300
    path.write_bytes(junk)
    with pytest.raises(StoreCorruptedError, match="not a readable SQLite database"):
        SQLiteStore(path)
    assert path.read_bytes() == junk


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file_is_a_clear_error(tmp_path):
    path = tmp_path / "handbook.db"
    SQLiteStore(path).close()
    path.chmod(stat.S_IRUSR)
    s = SQLiteStore(path)
    with pytest.raises(StoreError, match=r"readonly|read-only|writable"):
        s.put_behavior(_b("behavior_one"))


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "handbook.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this version"):
        SQLiteStore(path)


def test_many_threads_write_without_loss(store):
    store.put_behavior(_b("behavior_counter"))

    def work(i):
        for j in range(20):
            store.put_behavior(_b(f"behavior_t{i}_{j}"))
            store.put_trace(Trace(task=f"{i}-{j}"))
            store.increment("default", ["behavior_counter"], "shown")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count_behaviors() == 161
    assert store.count_traces() == 160
    assert store.get_behavior("default", "behavior_counter").shown == 160
