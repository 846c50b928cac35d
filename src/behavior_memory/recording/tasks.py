"""The task lifecycle every integration shares: open a task, find it again, close it, sweep the abandoned.

An adapter translates its framework's events into these calls and nothing more. The rules live
here once: a task is one trace; saving never raises into the agent (a failed save is logged and the
agent's result stands); an ``on_trace`` callback sees every saved trace; a task whose run never
reported its end (the framework raised past us, a span never closed) is saved as abandoned after
``abandon_after_s`` instead of staying in memory forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..types import Outcome, Trace
from .recorder import TraceRecorder
from .text import error_text


class TraceOpener(Protocol):
    """What the registry needs of a ``BehaviorMemory``: opening a trace (no upward import)."""

    def trace(
        self,
        task: str,
        *,
        namespace: str | None = ...,
        topic: str | None = ...,
        hits: Iterable[Any] = ...,
        metadata: dict[str, Any] | None = ...,
        trace_id: str | None = ...,
    ) -> TraceRecorder: ...


__all__ = ["OpenTask", "TaskRegistry", "TraceOpener", "save_quietly"]

log = logging.getLogger(__name__)

TraceCallback = Callable[[Trace], None]


def save_quietly(recorder: TraceRecorder, on_trace: TraceCallback | None = None) -> Trace | None:
    """Save the recorder's trace and hand it to ``on_trace``; log, never raise (the agent comes first)."""
    try:
        trace = recorder.save()
    except Exception:  # a full disk or a locked database must not fail the user's agent
        log.error("could not save trace %s; the agent's result is unaffected", recorder.id, exc_info=True)
        return None
    if on_trace is not None:
        try:
            on_trace(trace)
        except Exception:
            log.warning("on_trace callback failed for trace %s", trace.id, exc_info=True)
    return trace


@dataclass
class OpenTask:
    """One task being recorded, with the adapter's own bookkeeping in ``state``."""

    recorder: TraceRecorder
    started: float = field(default_factory=time.monotonic)
    touched: float = field(default_factory=time.monotonic)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        return self.recorder.id


class TaskRegistry:
    """Tasks under way for one adapter instance, by trace id (thread-safe).

    ``adapter`` names the integration in each trace's metadata (``metadata["adapter"]``).
    """

    def __init__(
        self,
        memory: TraceOpener,
        *,
        adapter: str,
        abandon_after_s: float = 3600.0,
        on_trace: TraceCallback | None = None,
    ) -> None:
        self.memory = memory
        self.adapter = adapter
        self.abandon_after_s = abandon_after_s
        self.on_trace = on_trace
        self._open: dict[str, OpenTask] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + min(abandon_after_s, 60.0)

    # --- open and find ------------------------------------------------------------------------
    def open(
        self,
        task: str,
        *,
        namespace: str | None = None,
        topic: str | None = None,
        shown: Iterable[Any] = (),
        metadata: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> OpenTask:
        """Start recording a task (its trace is saved by ``close``, or by the sweep if it never ends)."""
        self.sweep()
        recorder = self.memory.trace(
            task=task,
            namespace=namespace,
            topic=topic,
            hits=shown,
            metadata={"adapter": self.adapter, **(metadata or {})},
            trace_id=trace_id,
        )
        opened = OpenTask(recorder, state=dict(state or {}))
        with self._lock:
            self._open[recorder.id] = opened
        return opened

    def get(self, trace_id: str | None) -> OpenTask | None:
        """The open task of ``trace_id`` (and note that it is still alive), or None."""
        if not trace_id:
            return None
        found = self._open.get(trace_id)
        if found is not None:
            found.touched = time.monotonic()
        return found

    @property
    def open_ids(self) -> list[str]:
        """Ids of traces still being recorded."""
        with self._lock:
            return list(self._open)

    # --- close --------------------------------------------------------------------------------
    def close(
        self,
        trace_id: str | None,
        *,
        answer: str | None = None,
        outcome: Outcome | str | None = None,
        error: BaseException | str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Trace | None:
        """Finish and save the task: a task that raised is a failure with its error; never raises."""
        with self._lock:
            task = self._open.pop(trace_id, None) if trace_id else None
        if task is None:
            return None
        return self._save(task, answer=answer, outcome=outcome, error=error, metadata=metadata)

    def discard(self, trace_id: str) -> None:
        """Forget a task without saving it (a run that never started)."""
        with self._lock:
            self._open.pop(trace_id, None)

    def _save(
        self,
        task: OpenTask,
        *,
        answer: str | None,
        outcome: Outcome | str | None,
        error: BaseException | str | None,
        metadata: Mapping[str, Any] | None,
    ) -> Trace | None:
        recorder = task.recorder
        trace = recorder.trace
        try:
            failed = error_text(error)
            if failed is not None:
                trace.metadata.setdefault("error", failed)
            chosen = Outcome(outcome) if outcome is not None else trace.outcome
            if failed is not None and outcome is None:
                chosen = Outcome.FAILURE
            recorder.finish(answer=answer if answer is not None else trace.answer, outcome=chosen)
            trace.metadata.update(metadata or {})
            trace.metadata.setdefault("duration_s", round(time.monotonic() - task.started, 6))
        except Exception:  # bad metadata must not cost the trace
            log.warning("could not finish trace %s cleanly; saving it as recorded", recorder.id, exc_info=True)
        return save_quietly(recorder, self.on_trace)

    # --- abandoned tasks ----------------------------------------------------------------------
    def sweep(self) -> None:
        """Save the tasks idle for ``abandon_after_s`` (runs at most once a minute, from ``open``)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(self.abandon_after_s, 60.0)
        self.flush(older_than_s=self.abandon_after_s)

    def flush(self, *, older_than_s: float = 0.0) -> list[str]:
        """Save the tasks idle for ``older_than_s`` seconds as abandoned; returns their ids.

        Each is a failure when a recorded call failed (else outcome unknown), with
        ``metadata["ended"] = "abandoned"``. Call it at shutdown, or after catching an agent's error.
        """
        cutoff = time.monotonic() - older_than_s
        with self._lock:
            stale = [tid for tid, task in self._open.items() if task.touched <= cutoff]
            tasks = [self._open.pop(tid) for tid in stale]
        for task in tasks:
            errors = [s.error for s in task.recorder.trace.steps if s.error]
            self._save(
                task,
                answer=None,
                outcome=Outcome.FAILURE if errors else Outcome.UNKNOWN,
                error=errors[-1] if errors else None,
                metadata={"ended": "abandoned"},
            )
        return stale
