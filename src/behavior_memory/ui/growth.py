"""The handbook over time: how many behaviors were minted, and how many were active, at the end of each day.

"Active on a day" comes from each behavior's status history (``review.transition`` records every
change of status with its time): a behavior starts in the status its first recorded change left
(``from``), or in its current status when it never changed, and each change moves it. The status
changes of a namespace are read once (on SQLite, one JSON query in the database) and kept per
behavior; a handbook write re-reads only the behaviors it touched (the change feed), like ``columns``.
A history keeps its first entry and its latest 49 (``review.MAX_HISTORY``): a behavior that changed
status more often than that may be off for the days in between.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from ..store.base import ChangeFeed, HandbookStore
from ..types import BehaviorStatus

if TYPE_CHECKING:
    from .columns import ColumnCache
    from .row_readers import Change, RowReader

__all__ = ["Growth"]

_ACTIVE = BehaviorStatus.ACTIVE.value


class Growth:
    """Per namespace: ``[(day, minted so far, active at the end of that day)]``."""

    def __init__(self, store: HandbookStore, reader: RowReader, columns: ColumnCache) -> None:
        self.store = store
        self.reader = reader
        self.columns = columns
        self._changes: dict[str, tuple[int, dict[str, list[Change]]]] = {}
        self._results: dict[str, tuple[object, list[tuple[str, int, int]]]] = {}
        self._lock = threading.Lock()

    def _status_changes(self, namespace: str, token: int) -> dict[str, list[Change]]:
        cached = self._changes.get(namespace)
        if cached is not None and cached[0] == token:
            return cached[1]
        feed = None
        if cached is not None and isinstance(self.store, ChangeFeed):
            feed = self.store.changes_since(namespace, cached[0])
        if cached is not None and feed is not None:
            _, changed, deleted = feed
            by_id = dict(cached[1])
            for key in (*changed, *deleted):
                by_id.pop(key, None)
            for key, day, before, after in self.reader.status_changes(namespace, changed) if changed else ():
                by_id.setdefault(key, []).append((key, day, before, after))
        else:
            by_id = defaultdict(list)
            for change in self.reader.status_changes(namespace):
                by_id[change[0]].append(change)
        self._changes[namespace] = (token, dict(by_id))
        return by_id

    def per_day(self, namespace: str) -> list[tuple[str, int, int]]:
        """Every day a behavior was minted or changed status, with the totals at its end."""
        columns = self.columns.get(namespace)
        with self._lock:
            done = self._results.get(namespace)
            if done is not None and done[0] is columns:
                return done[1]
            changes = self._status_changes(namespace, columns.token)
            minted: Counter[str] = Counter()
            active: Counter[str] = Counter()
            statuses = [s.value for s in BehaviorStatus]
            for key, created, code in zip(columns.ids, columns.created, columns.status.tolist(), strict=True):
                day = created[:10]
                minted[day] += 1
                moves = sorted(changes.get(key, ()), key=lambda c: c[1])
                first = moves[0][2] if moves else (statuses[code] if code >= 0 else None)
                active[day] += first == _ACTIVE
                for _, when, before, after in moves:
                    active[when] += (after == _ACTIVE) - (before == _ACTIVE)
            result, total, now_active = [], 0, 0
            for day in sorted(set(minted) | set(active)):
                total += minted[day]
                now_active += active[day]
                result.append((day, total, now_active))
            self._results[namespace] = (columns, result)
            return result
