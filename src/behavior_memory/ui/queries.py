"""The web UI's read queries: one page of behaviors or traces, filtered and sorted, and a few tallies.

The store contract lists behaviors by name and traces newest first, without an offset: enough for
agents, not for a table a person pages through. ``SQLiteBrowser`` asks the SQLite file directly
(a read-only connection per thread, the store's own row decoders), so a page of a 100k-behavior
handbook costs one indexed query; ``ContractBrowser`` works on any store through the contract alone
(it reads the namespace and sorts in Python: fine for thousands, slow for a hundred thousand).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..store.base import HandbookStore
from ..types import Behavior, BehaviorStatus, Outcome, ReflectionStatus, Trace

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

#: sort key -> (SQL ORDER BY, Python key and whether descending); ties always by name.
BEHAVIOR_SORTS: dict[str, tuple[str, Callable[[Behavior], Any], bool]] = {
    "name": ("name", lambda b: b.name, False),
    "shown": ("shown DESC, name", lambda b: b.shown, True),
    "cited": ("cited DESC, name", lambda b: b.cited, True),
    "helped": ("helped DESC, name", lambda b: b.helped, True),
    "hurt": ("hurt DESC, name", lambda b: b.hurt, True),
    "citation_rate": (
        "(CASE WHEN shown > 0 THEN MIN(cited, shown) * 1.0 / shown ELSE 0 END) DESC, name",
        lambda b: min(b.cited, b.shown) / b.shown if b.shown else 0.0,
        True,
    ),
    "updated": ("updated_at DESC, name", lambda b: b.updated_at, True),
    "created": ("created_at DESC, name", lambda b: b.created_at, True),
}


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


class SQLiteBrowser:
    """Pages of a ``SQLiteStore``'s file: SQL where an index serves (by name, traces), else ``ColumnCache``."""

    def __init__(self, store: SQLiteStore) -> None:
        from .columns import ColumnCache

        self.path = store.path
        self._local = threading.local()
        self.columns = ColumnCache(store.path, store)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            self._local.conn = conn
        return conn

    def behaviors(self, f: BehaviorFilter, *, page: int, size: int) -> Page:
        if f.sort != "name" or f.text or f.pinned is not None or f.topic is not None:
            # No index serves these (the rows hold vectors: a scan reads them all): the columns in memory do.
            columns = self.columns.get(f.namespace)
            filters: dict[str, Any] = {"status": f.status, "topic": f.topic, "pinned": f.pinned, "text": f.text}
            filters["sort"] = f.sort
            total, _ = columns.select(**filters, start=0, stop=0)
            page = clamp_page(page, size, total)
            _, ids = columns.select(**filters, start=(page - 1) * size, stop=page * size)
            return Page(self._by_ids(ids), total, page, size)
        where, params = ["namespace = ?"], list[Any]([f.namespace])
        if f.status is not None:
            where.append("status = ?")
            params.append(str(f.status))
        if f.topic is not None:
            where.append("topic = ?")
            params.append(f.topic)
        if f.pinned is not None:
            where.append("pinned = ?")
            params.append(int(f.pinned))
        if f.text:
            where.append("(instr(lower(name), ?) > 0 OR instr(lower(instruction), ?) > 0)")
            params += [f.text.lower(), f.text.lower()]
        clause = " AND ".join(where)
        conn = self._conn()
        total = int(conn.execute(f"SELECT COUNT(*) FROM behaviors WHERE {clause}", params).fetchone()[0])
        page = clamp_page(page, size, total)
        order = BEHAVIOR_SORTS[f.sort][0]
        # The sort runs over the small columns only; the rows of the page are read afterwards by id
        # (a row holds its vector: sorting whole rows would read every vector of the namespace).
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM behaviors WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, size, (page - 1) * size],
            )
        ]
        return Page(self._by_ids(ids), total, page, size)

    def _by_ids(self, ids: list[str]) -> list[Behavior]:
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

    def topics(self, namespace: str) -> list[str]:
        return self.columns.get(namespace).topic_list[:500]

    def minted_per_day(self, namespace: str) -> list[tuple[str, int, int]]:
        return self.columns.get(namespace).per_day()

    def most_cited(self, namespace: str, limit: int) -> list[tuple[str, int, int]]:
        columns = self.columns.get(namespace)
        _, ids = columns.select(status=None, topic=None, pinned=None, text=None, sort="cited", stop=limit)
        return [(b.name, b.cited, b.shown) for b in self._by_ids(ids) if b.cited > 0]

    def close(self) -> None:
        self.columns.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class ContractBrowser:
    """Pages of any store through the store contract (every behavior of the namespace read per page)."""

    def __init__(self, store: HandbookStore) -> None:
        self.store = store

    def behaviors(self, f: BehaviorFilter, *, page: int, size: int) -> Page:
        items = self.store.list_behaviors(f.namespace, statuses=None if f.status is None else [f.status], topic=f.topic)
        if f.pinned is not None:
            items = [b for b in items if b.pinned == f.pinned]
        if f.text:
            needle = f.text.lower()
            items = [b for b in items if needle in b.name.lower() or needle in b.instruction.lower()]
        _, key, descending = BEHAVIOR_SORTS[f.sort]
        items.sort(key=lambda b: b.name)
        items.sort(key=key, reverse=descending)  # stable: ties stay by name
        page = clamp_page(page, size, len(items))
        return Page(items[(page - 1) * size : page * size], len(items), page, size)

    def traces(self, f: TraceFilter, *, page: int, size: int) -> Page:
        limit = self.store.count_traces(f.namespace, status=f.status)
        items: list[Trace] = self.store.list_traces(f.namespace, status=f.status, limit=max(limit, 1))
        if f.outcome is not None:
            items = [t for t in items if t.outcome == f.outcome]
        page = clamp_page(page, size, len(items))
        return Page(items[(page - 1) * size : page * size], len(items), page, size)

    def topics(self, namespace: str) -> list[str]:
        return sorted({b.topic for b in self.store.list_behaviors(namespace) if b.topic})[:500]

    def minted_per_day(self, namespace: str) -> list[tuple[str, int, int]]:
        days: Counter[str] = Counter()
        active: Counter[str] = Counter()
        for b in self.store.list_behaviors(namespace):
            day = b.created_at.date().isoformat()
            days[day] += 1
            active[day] += b.status == BehaviorStatus.ACTIVE
        return [(d, days[d], active[d]) for d in sorted(days)]

    def most_cited(self, namespace: str, limit: int) -> list[tuple[str, int, int]]:
        items = [b for b in self.store.list_behaviors(namespace) if b.cited > 0]
        items.sort(key=lambda b: (-b.cited, b.name))
        return [(b.name, b.cited, b.shown) for b in items[:limit]]

    def close(self) -> None:
        return None


def browser_for(store: HandbookStore) -> SQLiteBrowser | ContractBrowser:
    """SQL for a ``SQLiteStore`` (its file), the contract for any other store."""
    from ..store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteBrowser(store)
    return ContractBrowser(store)
