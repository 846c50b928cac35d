"""The web UI's read queries: one page of behaviors or traces, filtered and sorted, and a few tallies.

The store contract lists behaviors by name and traces newest first, without an offset: enough for
agents, not for a table a person pages through. Both browsers filter, sort and count behaviors on
the namespace's columns in memory (``columns.ColumnCache``), then read the page's rows fresh by id.
``SQLiteBrowser`` asks the SQLite file directly besides (read-only connections, the store's own row
decoders): the plain table by name and the traces are one indexed query each. ``ContractBrowser``
works on any store through the contract (PostgreSQL, in-memory): the first page of a namespace reads
it whole once, and a trace page reads the newest traces up to it.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import NotFoundError
from ..store.base import ChangeFeed, HandbookStore
from ..types import Behavior, BehaviorStatus, Outcome, ReflectionStatus, Trace
from .columns import ColumnCache
from .growth import Growth
from .row_readers import SQLiteRows, StoreRows, read_only

if TYPE_CHECKING:
    from ..store.sqlite import SQLiteStore

__all__ = [
    "BEHAVIOR_SORTS",
    "MAX_PAGE_SIZE",
    "BehaviorFilter",
    "Browser",
    "ContractBrowser",
    "Page",
    "SQLiteBrowser",
    "TraceFilter",
    "browser_for",
]

#: The largest page a request may ask for (a bigger one is refused with a clear page).
MAX_PAGE_SIZE = 200

#: The orders a behavior table offers: by name, else descending by the key (ties by name); ``Columns.keys``.
BEHAVIOR_SORTS = (
    "name", "shown", "cited", "helped", "hurt", "citation_rate", "helpfulness", "harm", "updated", "created",
)  # fmt: skip


@dataclass(frozen=True)
class BehaviorFilter:
    """Which behaviors of a namespace a table shows, in which order."""

    namespace: str
    status: BehaviorStatus | None = None
    topic: str | None = None
    pinned: bool | None = None
    text: str | None = None  # a substring of the name or the instruction
    sort: str = "name"


@dataclass(frozen=True)
class TraceFilter:
    """Which traces a table shows (newest first); ``namespace`` None means every namespace."""

    namespace: str | None = None
    status: ReflectionStatus | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True)
class Page:
    """One page of a table: its rows, the total, and where it lies."""

    rows: list[Any]
    total: int
    page: int
    size: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", max(1, -(-self.total // self.size)))


def clamp_page(page: int, size: int, total: int) -> int:
    """``page`` within 1..last (a page past the end shows the last one, not an empty table)."""
    last = max(1, -(-total // size))
    return min(max(page, 1), last)


class Browser(Protocol):
    """What the UI asks of a handbook beyond the store contract."""

    def behaviors(self, f: BehaviorFilter, *, page: int, size: int) -> Page: ...
    def traces(self, f: TraceFilter, *, page: int, size: int) -> Page: ...
    def topics(self, namespace: str) -> list[str]: ...
    def minted_per_day(self, namespace: str) -> list[tuple[str, int, int]]: ...
    def most_cited(self, namespace: str, limit: int) -> list[tuple[str, int, int]]: ...


class _ColumnsBrowser:
    """What both browsers share: behaviors filtered, sorted and counted on the columns in memory."""

    columns: ColumnCache
    growth: Growth

    def _by_ids(self, namespace: str, ids: list[str]) -> list[Behavior]:
        raise NotImplementedError

    def _from_columns(self, f: BehaviorFilter, *, page: int, size: int) -> Page:
        columns = self.columns.get(f.namespace)
        filters: dict[str, Any] = {"status": f.status, "topic": f.topic, "pinned": f.pinned, "text": f.text}
        filters["sort"] = f.sort
        total, _ = columns.select(**filters, start=0, stop=0)
        page = clamp_page(page, size, total)
        _, ids = columns.select(**filters, start=(page - 1) * size, stop=page * size)
        return Page(self._by_ids(f.namespace, ids), total, page, size)

    def behaviors(self, f: BehaviorFilter, *, page: int, size: int) -> Page:
        return self._from_columns(f, page=page, size=size)

    def topics(self, namespace: str) -> list[str]:
        return self.columns.get(namespace).topic_list[:500]

    def minted_per_day(self, namespace: str) -> list[tuple[str, int, int]]:
        return self.growth.per_day(namespace)

    def most_cited(self, namespace: str, limit: int) -> list[tuple[str, int, int]]:
        columns = self.columns.get(namespace)
        _, ids = columns.select(status=None, topic=None, pinned=None, text=None, sort="cited", stop=limit)
        return [(b.name, b.cited, b.shown) for b in self._by_ids(namespace, ids) if b.cited > 0]

    def close(self) -> None:
        self.columns.close()


class SQLiteBrowser(_ColumnsBrowser):
    """Pages of a ``SQLiteStore``'s file: SQL where an index serves (by name, traces), else the columns."""

    def __init__(self, store: SQLiteStore) -> None:
        self.path = store.path
        self._local = threading.local()
        reader = SQLiteRows(store.path)
        self.columns = ColumnCache(store, reader)
        self.growth = Growth(store, reader, self.columns)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = read_only(self.path, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            self._local.conn = conn
        return conn

    def behaviors(self, f: BehaviorFilter, *, page: int, size: int) -> Page:
        if f.sort != "name" or f.text or f.pinned is not None or f.topic is not None:
            # No index serves these (the rows hold vectors: a scan reads them all): the columns in memory do.
            return self._from_columns(f, page=page, size=size)
        # By name, maybe by status: the (namespace, name) and (namespace, status, ...) indexes serve.
        where, params = ["namespace = ?"], list[Any]([f.namespace])
        if f.status is not None:
            where.append("status = ?")
            params.append(str(f.status))
        clause = " AND ".join(where)
        conn = self._conn()
        total = int(conn.execute(f"SELECT COUNT(*) FROM behaviors WHERE {clause}", params).fetchone()[0])
        page = clamp_page(page, size, total)
        sql = f"SELECT id FROM behaviors WHERE {clause} ORDER BY name LIMIT ? OFFSET ?"
        ids = [r[0] for r in conn.execute(sql, [*params, size, (page - 1) * size])]
        return Page(self._by_ids(f.namespace, ids), total, page, size)

    def _by_ids(self, namespace: str, ids: list[str]) -> list[Behavior]:
        """The behaviors with these ids, as stored now, in this order (one gone meanwhile is left out)."""
        from ..store.sqlite_rows import BEHAVIOR_COLUMNS, behavior_from_row

        if not ids:
            return []
        sql = f"SELECT {BEHAVIOR_COLUMNS} FROM behaviors WHERE id IN ({', '.join('?' * len(ids))})"
        by_id = {row[0]: behavior_from_row(row) for row in self._conn().execute(sql, ids)}
        return [by_id[i] for i in ids if i in by_id]

    def traces(self, f: TraceFilter, *, page: int, size: int) -> Page:
        from ..store.sqlite_rows import TRACE_COLUMNS, trace_from_row

        where, params = ["1 = 1"], list[Any]()
        if f.namespace is not None:
            where.append("namespace = ?")
            params.append(f.namespace)
        if f.status is not None:
            where.append("reflection_status = ?")
            params.append(str(f.status))
        if f.outcome is not None:
            where.append("outcome = ?")
            params.append(str(f.outcome))
        clause = " AND ".join(where)
        conn = self._conn()
        total = int(conn.execute(f"SELECT COUNT(*) FROM traces WHERE {clause}", params).fetchone()[0])
        page = clamp_page(page, size, total)
        rows = conn.execute(
            f"SELECT {TRACE_COLUMNS} FROM traces WHERE {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            [*params, size, (page - 1) * size],
        ).fetchall()
        return Page([trace_from_row(row, []) for row in rows], total, page, size)

    def close(self) -> None:
        super().close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class ContractBrowser(_ColumnsBrowser):
    """Pages of any store through the store contract (PostgreSQL, in-memory)."""

    def __init__(self, store: HandbookStore) -> None:
        self.store = store
        # No cheap "did anything change" here: counters are read again at most every 30 s of browsing.
        self.columns = ColumnCache(store, StoreRows(store), max_age_s=30.0)
        self.growth = Growth(store, StoreRows(store), self.columns)

    def _by_ids(self, namespace: str, ids: list[str]) -> list[Behavior]:
        if not ids:
            return []
        if isinstance(self.store, ChangeFeed):  # one query for the page (PostgreSQL: no round trip per row)
            rows = self.store.retrieval_rows(namespace, ids=ids)
            by_id = {b.id: b for b in map(rows.materialize, rows.records)}
            return [by_id[i] for i in ids if i in by_id]
        found = []
        for key in ids:
            try:
                found.append(self.store.get_behavior(namespace, key))
            except NotFoundError:  # deleted since the columns were read
                continue
        return found

    def traces(self, f: TraceFilter, *, page: int, size: int) -> Page:
        total = self.store.count_traces(f.namespace, status=f.status)
        if f.outcome is None:  # newest first: a page needs the traces up to it, no more
            page = clamp_page(page, size, total)
            newest = self.store.list_traces(f.namespace, status=f.status, limit=page * size)
            return Page(newest[(page - 1) * size :], total, page, size)
        every: list[Trace] = self.store.list_traces(f.namespace, status=f.status, limit=max(total, 1))
        items = [t for t in every if t.outcome == f.outcome]
        page = clamp_page(page, size, len(items))
        return Page(items[(page - 1) * size : page * size], len(items), page, size)


def browser_for(store: HandbookStore) -> SQLiteBrowser | ContractBrowser:
    """SQL for a ``SQLiteStore`` (its file), the contract for any other store."""
    from ..store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteBrowser(store)
    return ContractBrowser(store)
