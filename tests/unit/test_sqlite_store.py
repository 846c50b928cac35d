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
