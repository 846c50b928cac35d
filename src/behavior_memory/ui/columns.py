"""A namespace's small columns in memory, so the UI filters, sorts and counts 100k behaviors without a scan.

SQLite keeps each behavior's vector in its row, so a query that sorts by a counter (no index has
them) reads the whole table: about a second at 100k behaviors. ``ColumnCache`` reads the columns a
table needs once per namespace (id, name, instruction, topic, status, pinned, counters, times) and
then keeps them current:

- handbook writes (new behaviors, status changes, edits, deletions) move the namespace's change
  token; before each query the store's change feed says which rows changed, and only those are read
  again. A decision taken in the UI shows on the next page.
- counters do not move the token (they are statistics, bumped after every task). When SQLite's
  ``data_version`` says the file changed and the columns are older than ``max_age_s``, they are read
  again in a background thread while requests go on with the old ones: the *order* by a counter may
  lag by that long; the values a page shows are always read fresh, by id.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..types import BehaviorStatus

if TYPE_CHECKING:
    import numpy.typing as npt

    from ..store.sqlite import SQLiteStore

__all__ = ["ACTIVE_CODE", "ColumnCache", "Columns"]

_SELECT = (
    "SELECT id, name, instruction, topic, status, pinned, shown, cited, helped, hurt, created_at, updated_at "
    "FROM behaviors WHERE namespace = ?"
)
_STATUS = {s.value: i for i, s in enumerate(BehaviorStatus)}
#: The code of ``active`` in ``Columns.status``.
ACTIVE_CODE = _STATUS[BehaviorStatus.ACTIVE.value]
Row = tuple[Any, ...]


@dataclass
class Columns:
    """One namespace's rows as arrays; index ``i`` of each is one behavior."""

    rows: dict[str, Row]
    token: int
    data_version: int
    built_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        rows = list(self.rows.values())
        self.ids = [r[0] for r in rows]
        self.names = [r[1] for r in rows]
        self.texts = [f"{r[1]}\n{r[2]}".lower() for r in rows]
        self.topic_list = sorted({r[3] for r in rows if r[3]})
        codes = {t: i for i, t in enumerate(self.topic_list)}
        self.topics = np.array([codes.get(r[3], -1) for r in rows], dtype=np.int32)
        self.status = np.array([_STATUS.get(r[4], -1) for r in rows], dtype=np.int8)
        self.pinned = np.array([bool(r[5]) for r in rows], dtype=bool)
        self.keys: dict[str, npt.NDArray[Any]] = {
            counter: np.array([r[6 + j] for r in rows], dtype=np.int64)
            for j, counter in enumerate(("shown", "cited", "helped", "hurt"))
        }
        shown = self.keys["shown"]
        cited = np.minimum(self.keys["cited"], shown)
        self.keys["citation_rate"] = np.divide(cited, shown, out=np.zeros(len(rows)), where=shown > 0)
        self.created = [r[10] for r in rows]
        self.keys["created"] = _rank(self.created)
        self.keys["updated"] = _rank([r[11] for r in rows])
        self.name_rank = _rank(self.names)
        self._orders: dict[str, npt.NDArray[np.intp]] = {}
        self._per_day: list[tuple[str, int, int]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def per_day(self) -> list[tuple[str, int, int]]:
        """``(day, minted that day, of them active now)`` per day a behavior was created, computed once."""
        if self._per_day is None:
            days: Counter[str] = Counter()
            active: Counter[str] = Counter()
            for created, status in zip(self.created, self.status.tolist(), strict=True):
                days[created[:10]] += 1
                active[created[:10]] += status == ACTIVE_CODE
            self._per_day = [(d, days[d], active[d]) for d in sorted(days)]
        return self._per_day

    def order(self, sort: str) -> npt.NDArray[np.intp]:
        """Row indices in the sort's order (descending; ties, and ``name``, by name), computed once."""
        if sort not in self._orders:
            if sort == "name":
                self._orders[sort] = np.argsort(self.name_rank, kind="stable")
            else:
                self._orders[sort] = np.lexsort((self.name_rank, -self.keys[sort]))
        return self._orders[sort]

    def select(
        self,
        *,
        status: BehaviorStatus | None,
        topic: str | None,
        pinned: bool | None,
        text: str | None,
        sort: str,
        start: int = 0,
        stop: int | None = None,
    ) -> tuple[int, list[str]]:
        """How many rows pass the filters, and the ids of those in ``start:stop`` in the sort's order."""
        mask: npt.NDArray[np.bool_] | None = None

        def narrow(more: npt.NDArray[np.bool_]) -> None:
            nonlocal mask
            mask = more if mask is None else mask & more

        if status is not None:
            narrow(self.status == _STATUS[status.value])
        if topic is not None:
            code = self.topic_list.index(topic) if topic in self.topic_list else -2
            narrow(self.topics == code)
        if pinned is not None:
            narrow(self.pinned == pinned)
        if text:
            needle = text.lower()
            narrow(np.fromiter((needle in t for t in self.texts), dtype=bool, count=len(self.texts)))
        order = self.order(sort)
        picked = order if mask is None else order[mask[order]]
        return len(picked), [self.ids[i] for i in picked[start:stop]]


def _rank(values: list[str]) -> npt.NDArray[np.int64]:
    """Each value's position in sorted order (equal values get distinct, adjacent ranks)."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(np.array(values, dtype=object), kind="stable")] = np.arange(len(values))
    return ranks


class ColumnCache:
    """``Columns`` per namespace of one SQLite file, kept current (see the module docstring)."""

    def __init__(self, path: Path, feed: SQLiteStore, *, max_age_s: float = 10.0) -> None:
        self.path = path
        self.feed = feed
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._cache: dict[str, Columns] = {}
        self._refreshing: set[str] = set()

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _read_all(self, namespace: str) -> Columns:
        with self._lock:
            version = self._data_version()
        token = self.feed.change_token(namespace)  # before the read: a write meanwhile is patched in later
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            rows = {r[0]: r for r in conn.execute(_SELECT, (namespace,))}
        finally:
            conn.close()
        return Columns(rows, token, version)

    def get(self, namespace: str) -> Columns:
        """The namespace's columns, with every handbook write so far applied."""
        columns = self._cache.get(namespace)
        if columns is None:
            columns = self._cache[namespace] = self._read_all(namespace)
            return columns
        token = self.feed.change_token(namespace)
        if token != columns.token:
            columns = self._cache[namespace] = self._patched(namespace, columns, token)
        self._maybe_refresh(namespace, columns)
        return columns

    def _patched(self, namespace: str, columns: Columns, token: int) -> Columns:
        changes = self.feed.changes_since(namespace, columns.token)
        if changes is None:  # the feed no longer reaches back: read everything
            return self._read_all(namespace)
        new_token, changed, deleted = changes
        rows = dict(columns.rows)
        for key in deleted:
            rows.pop(key, None)
        if changed:
            with self._lock:
                sql = f"{_SELECT} AND id IN ({', '.join('?' * len(changed))})"
                fresh = {r[0]: r for r in self._conn.execute(sql, (namespace, *changed))}
            for key in changed:
                if key in fresh:
                    rows[key] = fresh[key]
                else:
                    rows.pop(key, None)
        return Columns(rows, new_token, columns.data_version, columns.built_at)

    def _maybe_refresh(self, namespace: str, columns: Columns) -> None:
        """Counters moved (the file changed) and the columns are old: read them again, off the request path."""
        if time.monotonic() - columns.built_at < self.max_age_s or namespace in self._refreshing:
            return
        with self._lock:
            if self._data_version() == columns.data_version:
                columns.built_at = time.monotonic()
                return
            self._refreshing.add(namespace)

        def refresh() -> None:
            try:
                self._cache[namespace] = self._read_all(namespace)
            finally:
                self._refreshing.discard(namespace)

        threading.Thread(target=refresh, name=f"bmem-ui-columns-{namespace}", daemon=True).start()

    def close(self) -> None:
        self._conn.close()
