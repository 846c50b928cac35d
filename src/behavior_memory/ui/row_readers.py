"""Where ``ColumnCache`` reads a namespace's small columns: SQL on a SQLite file, or any store's contract.

A row is ``(id, name, instruction, topic, status, pinned, shown, cited, helped, hurt, created_at,
updated_at)``, times as ISO strings. ``data_version`` tells whether the store changed at all since
the last look (SQLite's ``PRAGMA data_version``: counters too); ``None`` means "cannot tell".
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any, Protocol

from ..store.base import ChangeFeed, HandbookStore
from ..types import Behavior

__all__ = ["Change", "Row", "RowReader", "SQLiteRows", "StoreRows", "read_only"]

Row = tuple[Any, ...]
#: One recorded change of status: ``(behavior id, day "YYYY-MM-DD", from, to)``.
Change = tuple[str, str, str | None, str]
_SELECT = (
    "SELECT id, name, instruction, topic, status, pinned, shown, cited, helped, hurt, created_at, updated_at "
    "FROM behaviors WHERE namespace = ?"
)


class RowReader(Protocol):
    def rows(self, namespace: str, ids: Collection[str] | None = None) -> list[Row]: ...
    def counters(self, namespace: str) -> list[Row] | None: ...
    def status_changes(self, namespace: str, ids: Collection[str] | None = None) -> list[Change]: ...
    def data_version(self) -> int | None: ...
    def close(self) -> None: ...


def _row(b: Behavior) -> Row:
    return (
        b.id, b.name, b.instruction, b.topic, str(b.status), b.pinned, b.shown, b.cited, b.helped, b.hurt,
        b.created_at.isoformat(), b.updated_at.isoformat(),
    )  # fmt: skip


def read_only(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A read-only connection to the handbook file (its path percent-encoded: ``?`` or ``#`` in it stay literal)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=check_same_thread)


class SQLiteRows:
    """Reads a SQLite handbook file directly (read-only connections): one query, no pydantic objects."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._watch = read_only(path, check_same_thread=False)

    def rows(self, namespace: str, ids: Collection[str] | None = None) -> list[Row]:
        sql, params = _SELECT, [namespace]
        if ids is not None:
            sql += f" AND id IN ({', '.join('?' * len(ids))})"
            params += list(ids)
        conn = read_only(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def counters(self, namespace: str) -> list[Row] | None:
        """``(id, shown, cited, helped, hurt)`` of every behavior of the namespace."""
        conn = read_only(self.path)
        try:
            sql = "SELECT id, shown, cited, helped, hurt FROM behaviors WHERE namespace = ?"
            return conn.execute(sql, (namespace,)).fetchall()
        finally:
            conn.close()

    def status_changes(self, namespace: str, ids: Collection[str] | None = None) -> list[Change]:
        """Every recorded change of status, read out of the histories by SQLite's JSON functions."""
        sql = (
            "SELECT b.id, substr(json_extract(h.value, '$.at'), 1, 10), json_extract(h.value, '$.from'), "
            "json_extract(h.value, '$.to') FROM behaviors AS b, json_each(b.metadata, '$.history') AS h "
            "WHERE b.namespace = ? AND json_extract(h.value, '$.to') IS NOT NULL"
        )
        params = [namespace]
        if ids is not None:
            sql += f" AND b.id IN ({', '.join('?' * len(ids))})"
            params += list(ids)
        conn = read_only(self.path)
        try:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def data_version(self) -> int | None:
        with self._lock:  # changes whenever another connection commits to the file (counters too)
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self._watch.close()


class StoreRows:
    """Reads any store through the contract (PostgreSQL, in-memory): ``list_behaviors``, and for a few
    ids the change feed's ``retrieval_rows`` where the store has one."""

    def __init__(self, store: HandbookStore) -> None:
        self.store = store

    def rows(self, namespace: str, ids: Collection[str] | None = None) -> list[Row]:
        if ids is not None and isinstance(self.store, ChangeFeed):
            found = self.store.retrieval_rows(namespace, ids=ids)
            return [_row(found.materialize(record)) for record in found.records]
        wanted = None if ids is None else set(ids)
        return [_row(b) for b in self.store.list_behaviors(namespace) if wanted is None or b.id in wanted]

    def counters(self, namespace: str) -> list[Row] | None:
        return None  # the contract reads whole behaviors: ``rows`` then

    def status_changes(self, namespace: str, ids: Collection[str] | None = None) -> list[Change]:
        wanted = None if ids is None else set(ids)
        return [
            (b.id, str(h.get("at", ""))[:10], h.get("from"), str(h["to"]))
            for b in self.store.list_behaviors(namespace)
            if wanted is None or b.id in wanted
            for h in b.metadata.get("history", [])
            if isinstance(h, dict) and h.get("to")
        ]

    def data_version(self) -> int | None:
        return None

    def close(self) -> None:
        return None
