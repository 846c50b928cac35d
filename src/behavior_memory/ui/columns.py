"""A namespace's small columns in memory, so the UI filters, sorts and counts 100k behaviors without a scan.

SQLite keeps each behavior's vector in its row, so a query that sorts by a counter (no index has
them) reads the whole table: about a second at 100k behaviors; the store contract has no sorting or
offset at all. ``ColumnCache`` reads the columns a table needs once per namespace (id, name,
instruction, topic, status, pinned, counters, times; ``row_readers``) and then keeps them current:

- handbook writes (new behaviors, status changes, edits, deletions) move the namespace's change
  token; before each query the store's change feed says which rows changed, and only those are read
  again. A decision taken in the UI shows on the next page.
- counters do not move the token (they are statistics, bumped after every task). When the columns
  are older than ``max_age_s`` and the store changed (SQLite's ``data_version``; a store that cannot
  tell is assumed to have), they are read again in a background thread while requests go on with the
  old ones: the *order* by a counter may lag by that long; the values a page shows are always read
  fresh, by id. A store without a change feed is read whole again after any handbook write.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..lifecycle.intervals import Z_95
from ..store.base import ChangeFeed, HandbookStore
from ..types import BehaviorStatus

if TYPE_CHECKING:
    import numpy.typing as npt

    from .row_readers import Row, RowReader

__all__ = ["ColumnCache", "Columns"]

_STATUS = {s.value: i for i, s in enumerate(BehaviorStatus)}
_COUNTERS = ("shown", "cited", "helped", "hurt")


@dataclass
class Columns:
    """One namespace's rows as arrays; index ``i`` of each is one behavior."""

    rows: dict[str, Row]
    token: int
    data_version: int | None  # the reader's, when it can tell (SQLite); None: refreshed by age alone
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
        self.keys: dict[str, npt.NDArray[Any]] = {}
        self._counters_from(rows)
        self.created = [r[10] for r in rows]
        self.keys["created"] = _rank(self.created)
        self.keys["updated"] = _rank([r[11] for r in rows])
        self.name_rank = _rank(self.names)
        self._orders: dict[str, npt.NDArray[np.intp]] = {}

    def _counters_from(self, rows: list[Row]) -> None:
        """The counter columns and the scores derived from them (rows in the order of ``ids``)."""
        for j, counter in enumerate(_COUNTERS):
            self.keys[counter] = np.array([r[6 + j] for r in rows], dtype=np.int64)
        shown = self.keys["shown"]
        cited = np.minimum(self.keys["cited"], shown)
        self.keys["citation_rate"] = np.divide(cited, shown, out=np.zeros(len(rows)), where=shown > 0)
        helped, hurt = np.maximum(self.keys["helped"], 0), np.maximum(self.keys["hurt"], 0)
        self.keys["helpfulness"] = _wilson_low(helped, helped + hurt)  # as lifecycle.scores.score computes it
        self.keys["harm"] = _wilson_low(hurt, helped + hurt)

    def with_counters(self, counts: list[Row], data_version: int | None) -> Columns:
        """A copy with the counters of ``counts`` (``(id, shown, cited, helped, hurt)`` rows): only the
        counter columns, their scores and their orders are computed again (no text, rank or topic)."""
        new = copy.copy(self)
        new.rows = dict(self.rows)
        for key, *values in counts:
            row = new.rows.get(key)
            if row is not None:
                new.rows[key] = (*row[:6], *values, *row[10:])
        new.keys = dict(self.keys)
        new._counters_from([new.rows[i] for i in new.ids])
        new._orders = {k: v for k, v in self._orders.items() if k in ("name", "created", "updated")}
        new.data_version = data_version
        new.built_at = time.monotonic()
        return new

    def __len__(self) -> int:
        return len(self.ids)

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


def _wilson_low(successes: npt.NDArray[np.int64], n: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """``intervals.wilson_lower_bound`` of every row at once (0.0 where ``n`` is 0)."""
    z2 = Z_95 * Z_95
    safe_n = np.maximum(n, 1).astype(np.float64)
    p = successes / safe_n
    denom = 1 + z2 / safe_n
    centre = (p + z2 / (2 * safe_n)) / denom
    half = Z_95 * np.sqrt(p * (1 - p) / safe_n + z2 / (4 * safe_n * safe_n)) / denom
    low: npt.NDArray[np.float64] = np.where(n > 0, np.maximum(0.0, centre - half), 0.0)
    return low


def _rank(values: list[str]) -> npt.NDArray[np.int64]:
    """Each value's position in sorted order (equal values get distinct, adjacent ranks)."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(np.array(values, dtype=object), kind="stable")] = np.arange(len(values))
    return ranks


class ColumnCache:
    """``Columns`` per namespace of one store, kept current (see the module docstring)."""

    def __init__(self, store: HandbookStore, reader: RowReader, *, max_age_s: float = 10.0) -> None:
        self.store = store
        self.reader = reader
        self.max_age_s = max_age_s
        self._cache: dict[str, Columns] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def _read_all(self, namespace: str) -> Columns:
        version = self.reader.data_version()
        token = self.store.change_token(namespace)  # before the read: a write meanwhile is patched in later
        return Columns({r[0]: r for r in self.reader.rows(namespace)}, token, version)

    def get(self, namespace: str) -> Columns:
        """The namespace's columns, with every handbook write so far applied."""
        columns = self._cache.get(namespace)
        if columns is None:
            columns = self._cache[namespace] = self._read_all(namespace)
            return columns
        token = self.store.change_token(namespace)
        if token != columns.token:
            columns = self._cache[namespace] = self._patched(namespace, columns)
        self._maybe_refresh(namespace, columns)
        return columns

    def _patched(self, namespace: str, columns: Columns) -> Columns:
        changes = self.store.changes_since(namespace, columns.token) if isinstance(self.store, ChangeFeed) else None
        if changes is None:  # no feed, or it no longer reaches back: read everything
            return self._read_all(namespace)
        new_token, changed, deleted = changes
        rows = dict(columns.rows)
        for key in deleted:
            rows.pop(key, None)
        if changed:
            fresh = {r[0]: r for r in self.reader.rows(namespace, changed)}
            for key in changed:
                if key in fresh:
                    rows[key] = fresh[key]
                else:
                    rows.pop(key, None)
        return Columns(rows, new_token, columns.data_version, columns.built_at)

    def _maybe_refresh(self, namespace: str, columns: Columns) -> None:
        """Counters may have moved and the columns are old: read them again, off the request path."""
        if time.monotonic() - columns.built_at < self.max_age_s or namespace in self._refreshing:
            return
        version = self.reader.data_version()
        with self._lock:
            if version is not None and version == columns.data_version:
                columns.built_at = time.monotonic()  # nothing changed at all: look again later
                return
            if namespace in self._refreshing:
                return
            self._refreshing.add(namespace)

        def refresh() -> None:
            try:
                self.refresh_counters(namespace)
            finally:
                self._refreshing.discard(namespace)

        threading.Thread(target=refresh, name=f"bmem-ui-columns-{namespace}", daemon=True).start()

    def refresh_counters(self, namespace: str) -> None:
        """Read the namespace's counters again (all of it, where the reader cannot read counters alone)."""
        version = self.reader.data_version()
        counts = self.reader.counters(namespace)
        current = self._cache.get(namespace)
        if counts is None or current is None:
            self._cache[namespace] = self._read_all(namespace)
        else:  # a write patched in meanwhile keeps its token: the next get patches from there again
            self._cache[namespace] = current.with_counters(counts, version)

    def close(self) -> None:
        self.reader.close()
