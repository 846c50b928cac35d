"""What a standalone reflection worker needs of the queue beyond the contract: wake-ups and giving claims back.

``ClaimTracker`` wraps a store and remembers the traces this process claimed and has not finished,
so that a worker told to stop (SIGTERM) can ``release()`` them at once instead of leaving them to
wait out their lease. A store with ``release_claims`` (PostgreSQL: only claims still held by this
store's id, so a trace another machine reclaimed meanwhile is left alone) does it in one statement;
on any other store each held trace still running goes back to pending with the claim's attempt
returned. ``PendingTraceEvents`` is a store that can tell a worker when a trace arrives (LISTEN/NOTIFY).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast, runtime_checkable

from ..errors import NotFoundError
from ..types import ReflectionStatus, Trace
from .base import HandbookStore

__all__ = ["ClaimTracker", "PendingTraceEvents"]


@runtime_checkable
class PendingTraceEvents(Protocol):
    """A store that calls back when a trace becomes pending anywhere (another process, another machine)."""

    def on_pending_traces(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from a background thread) on each new pending trace; returns the unsubscribe."""
        ...


class ClaimTracker:
    """A ``HandbookStore`` that delegates everything to ``store`` and keeps the ids of the claims it holds."""

    def __init__(self, store: HandbookStore) -> None:
        self.store = store
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # every other method: the wrapped store's
        return getattr(self.store, name)

    def as_store(self) -> HandbookStore:
        """This tracker, typed as the store it stands in for."""
        return cast(HandbookStore, self)

    @property
    def held(self) -> set[str]:
        """Ids of the traces claimed here and not finished yet."""
        with self._lock:
            return set(self._held)

    def claim_pending_traces(self, limit: int, *, lease_s: float = 600.0) -> list[Trace]:
        traces = self.store.claim_pending_traces(limit, lease_s=lease_s)
        with self._lock:
            self._held.update(t.id for t in traces)
        return traces

    def update_trace_fields(self, trace_id: str, **fields: Any) -> None:
        self.store.update_trace_fields(trace_id, **fields)
        status = fields.get("reflection_status")
        if status is not None and status != ReflectionStatus.RUNNING:
            self._forget([trace_id])

    def put_trace(self, trace: Trace) -> Trace:
        self._forget([trace.id])  # a replaced trace loses its claim
        return self.store.put_trace(trace)

    def _forget(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._held.difference_update(ids)

    def release(self) -> int:
        """Put the traces still held back to pending, their attempt returned; returns how many."""
        ids = sorted(self.held)
        if not ids:
            return 0
        release_claims = getattr(self.store, "release_claims", None)
        if callable(release_claims):
            released = int(release_claims(ids))
        else:
            released = 0
            for trace_id in ids:
                try:
                    trace = self.store.get_trace(trace_id)
                except NotFoundError:
                    continue
                if trace.reflection_status == ReflectionStatus.RUNNING:
                    self.store.update_trace_fields(
                        trace_id,
                        reflection_status=ReflectionStatus.PENDING,
                        reflection_attempts=max(trace.reflection_attempts - 1, 0),
                    )
                    released += 1
        self._forget(ids)
        return released
