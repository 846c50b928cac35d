"""What only SQLiteStore does: WAL, migrations, file errors, many connections (the contract is in tests/conformance)."""

import os
import sqlite3
import stat
import threading

import pytest

from behavior_memory import Behavior, Trace
from behavior_memory.errors import (
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


def test_a_write_budget_ends_the_wait_for_a_held_lock_and_writes_nothing(tmp_path):
    import time as _time

    from behavior_memory.errors import StoreBusyError

    path = tmp_path / "handbook.db"
    s = SQLiteStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
    try:
        t = Trace(task="held")
        started = _time.monotonic()
        with pytest.raises(StoreBusyError, match="locked by another writer"):
            s.save_trace(t, timeout_s=0.2)
        waited = _time.monotonic() - started
        assert waited < 5  # bounded by the budget, not by busy_timeout (10 s) or the 2-minute retry
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with pytest.raises(KeyError):
        s.get_trace(t.id)
    assert s.save_trace(t, timeout_s=0.2) is True  # the connection is usable again, at its normal timeout
    s.close()


def test_schema_2_adds_review_columns_to_a_version_1_file(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO behaviors (id, namespace, name, instruction, status, created_at, updated_at) "
        "VALUES ('x', 'default', 'behavior_old', 'an instruction from before', 'active', "
        "'2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00')"
    )
    conn.close()
    s = SQLiteStore(path)
    old = s.get_behavior("default", "behavior_old")
    assert old.metadata == {} and old.last_used_at is None
    s.close()
