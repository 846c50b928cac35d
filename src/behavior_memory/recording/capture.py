"""``memory.capture()``: the one way to learn the ids of the traces a piece of code opened.

Every trace is opened through ``BehaviorMemory.trace`` (adapters included), which notes its id in
each capture active in the calling context. The active captures live in a ``ContextVar``; threads
and asyncio tasks started inside the block copy the context, so they note into the same objects::

    with memory.capture() as run:
        agent.invoke({"messages": [("user", "What is 17 * 23?")]})
    memory.feedback(run.trace_id, outcome="success")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..errors import NotFoundError

__all__ = ["CapturedTraces", "capture", "note_trace"]


class CapturedTraces:
    """The ids of the traces opened while a ``capture()`` block ran, in the order they were opened."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._lock = threading.Lock()

    def add(self, trace_id: str) -> None:
        with self._lock:
            if trace_id not in self._ids:
                self._ids.append(trace_id)

    @property
    def trace_ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    @property
    def trace_id(self) -> str:
        """The id of the last trace opened in the block; ``NotFoundError`` when none was."""
        with self._lock:
            if not self._ids:
                raise NotFoundError(
                    "no trace was opened inside this capture() block: was the agent wrapped, "
                    "or given the middleware, of this memory?"
                )
            return self._ids[-1]

    def __repr__(self) -> str:
        return f"CapturedTraces({self.trace_ids!r})"


_ACTIVE: ContextVar[tuple[CapturedTraces, ...]] = ContextVar("behavior_memory_captures", default=())


@contextmanager
def capture() -> Iterator[CapturedTraces]:
    """Collect the ids of the traces opened in this block (nested blocks each see theirs)."""
    captured = CapturedTraces()
    token = _ACTIVE.set((*_ACTIVE.get(), captured))
    try:
        yield captured
    finally:
        _ACTIVE.reset(token)


def note_trace(trace_id: str) -> None:
    """Tell every capture active in this context that ``trace_id`` was opened."""
    for captured in _ACTIVE.get():
        captured.add(trace_id)
