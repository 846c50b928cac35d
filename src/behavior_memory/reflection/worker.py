"""Reflect saved traces off the agent's hot path.

``ReflectionService.process`` reflects one claimed trace and records what happened on it: minted
behaviors, or the reason it failed. ``ReflectionWorker`` is a background thread that claims
pending traces and processes them with bounded concurrency. Nothing here raises into the agent.

Only the model's own answers use up a trace's attempts (``reflection.max_attempts``): output
still invalid after the re-asks, a truncated answer. A fault of the server
(:func:`~behavior_memory.errors.is_transient`: unreachable, too slow, 5xx/429/404, an HTML page)
sends the trace back to pending with the reason and its attempt given back, and the worker backs
off (exponentially, with jitter) before it tries again. A process killed mid-reflection leaves
the trace claimed; its lease expiring makes it claimable again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from enum import StrEnum

from ..errors import LLMError, is_transient
from ..store.base import HandbookStore
from ..telemetry import set_attributes, span
from ..types import ReflectionStatus, Trace
from .curator import Curator
from .reflector import Reflector

__all__ = ["ReflectionService", "ReflectionWorker", "TraceResult", "server_unavailable"]

log = logging.getLogger(__name__)


class TraceResult(StrEnum):
    MINTED = "minted"  # reflected; behaviors added or merged
    EMPTY = "empty"  # reflected; nothing valid proposed
    ALREADY = "already"  # an earlier (crashed) reflection of this trace had landed
    RETRY = "retry"  # failed, back to pending
    FAILED = "failed"  # failed for the last allowed time
    SERVER_DOWN = "server_down"  # a transient fault of the model server; back to pending, no attempt used


def server_unavailable(results: list[TraceResult]) -> bool:
    """True when every trace of a batch waits for the server: none got an answer, so back off.

    One answer in the batch means the server is up again (the others may have met the circuit
    breaker, which lets one probe through first): carry on at once.
    """
    return bool(results) and all(result is TraceResult.SERVER_DOWN for result in results)


class ReflectionService:
    """Reflects one trace at a time and writes the outcome onto the trace."""

    def __init__(self, store: HandbookStore, reflector: Reflector, curator: Curator, *, max_attempts: int = 3) -> None:
        self.store = store
        self.reflector = reflector
        self.curator = curator
        self.max_attempts = max_attempts
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str, by: int = 1) -> None:
        with self._lock:
            self.stats[key] += by

    def _set(self, trace: Trace, **fields: object) -> None:
        self.store.update_trace_fields(trace.id, **fields)

    def process(self, trace: Trace) -> TraceResult:
        """Reflect ``trace`` (already claimed) and store the result; never raises."""
        try:
            with span("bmem.reflect", {"bmem.namespace": trace.namespace, "bmem.trace.id": trace.id}) as current:
                outcome = self._process(trace)
                current.set_attribute("bmem.reflect.result", str(outcome))
            return outcome
        except Exception as exc:  # a bug or a store failure: keep the worker alive, keep the reason
            log.exception("reflection of trace %s failed unexpectedly", trace.id)
            return self._failure(trace, f"{type(exc).__name__}: {exc}")

    def _process(self, trace: Trace) -> TraceResult:
        landed = self.curator.already_minted(trace)
        if landed:
            self._set(trace, reflection_status=ReflectionStatus.DONE, minted=landed, reflection_error=None)
            self._count("already")
            return TraceResult.ALREADY
        try:
            result = self.reflector.reflect(trace)
        except LLMError as exc:
            if is_transient(exc):
                return self._wait(trace, str(exc))
            return self._failure(trace, str(exc))
        with span("bmem.curate", {"bmem.namespace": trace.namespace, "bmem.trace.id": trace.id}) as current:
            report = self.curator.mint(trace, result)
            set_attributes(current, {"bmem.curate.added": len(report.added), "bmem.curate.merged": len(report.merged)})
        metadata = dict(trace.metadata)
        metadata["reflection"] = {
            "model": result.model,
            "text": result.reflection,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "added": report.added,
            "merged": report.merged,
        }
        self._set(
            trace,
            reflection_status=ReflectionStatus.DONE,
            minted=report.names,
            reflection_error="; ".join(result.notes) or None,
            metadata=metadata,
        )
        self._count("reflected")
        self._count("added", len(report.added))
        self._count("merged", len(report.merged))
        return TraceResult.MINTED if report.names else TraceResult.EMPTY

    def _wait(self, trace: Trace, reason: str) -> TraceResult:
        """Not the trace's fault: it goes back to pending and gets the claim's attempt back."""
        log.info("reflection of trace %s waits for the model server: %s", trace.id, reason)
        self._set(
            trace,
            reflection_status=ReflectionStatus.PENDING,
            reflection_error=reason,
            reflection_attempts=max(trace.reflection_attempts - 1, 0),
        )
        self._count("server_down")
        return TraceResult.SERVER_DOWN

    def _failure(self, trace: Trace, reason: str) -> TraceResult:
        last = trace.reflection_attempts >= self.max_attempts
        status = ReflectionStatus.FAILED if last else ReflectionStatus.PENDING
        log.warning(
            "reflection of trace %s failed (attempt %d of %d): %s",
            trace.id,
            trace.reflection_attempts,
            self.max_attempts,
            reason,
        )
        try:
            self._set(trace, reflection_status=status, reflection_error=reason)
        except Exception:  # pragma: no cover - the store is gone too; the lease will bring it back
            log.exception("could not record the failure of trace %s", trace.id)
        self._count("failed" if last else "retried")
        return TraceResult.FAILED if last else TraceResult.RETRY

    def run_batch(
        self, traces: list[Trace], concurrency: int, on_done: Callable[[Trace, TraceResult], None] | None = None
    ) -> list[TraceResult]:
        """Process claimed traces with up to ``concurrency`` at once; ``on_done`` hears of each as it ends."""
        if concurrency <= 1 or len(traces) <= 1:
            results = []
            for trace in traces:
                results.append(self.process(trace))
                if on_done:
                    on_done(trace, results[-1])
            return results
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bmem-reflect") as pool:
            futures = {pool.submit(self.process, trace): trace for trace in traces}
            for future in as_completed(futures):
                if on_done:
                    on_done(futures[future], future.result())
        return [future.result() for future in futures]


class ReflectionWorker:
    """A daemon thread that drains pending traces; ``notify()`` wakes it when a trace is saved.

    After a round in which the model server was unavailable (or the store failed) it waits
    ``base_backoff_s``, doubling per such round up to ``max_backoff_s``, each wait drawn between
    half and all of that (jitter: workers of several processes do not retry in step). The cap is
    short because the client's circuit breaker already keeps a round cheap while the server is
    down (calls fail at once); what the cap bounds is how late a recovery is noticed. A new trace
    does not cut a backoff short; ``stop()`` does.
    """

    def __init__(
        self,
        service: ReflectionService,
        *,
        concurrency: int = 1,
        lease_s: float = 600.0,
        idle_s: float = 5.0,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 15.0,
        maintenance: Callable[[], object] | None = None,
        maintenance_every_s: float = 3600.0,
    ) -> None:
        self.service = service
        # Curation (lifecycle and consolidation) runs when idle, at most every maintenance_every_s.
        self.maintenance = maintenance
        self.maintenance_every_s = maintenance_every_s
        self._maintained_at: float | None = None
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.idle_s = idle_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (again, after ``stop()``)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="bmem-reflection-worker", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """A trace was saved: look for work now (unless backing off)."""
        self._idle.clear()
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread; a trace it holds is reclaimed when its lease expires."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the worker found nothing it could reflect now (True) or the timeout passed.

        Nothing it could reflect *now*: while the model server is unavailable the traces wait as
        pending, and the worker reports idle at each backoff.
        """
        return self._idle.wait(timeout)

    def backoff_s(self, rounds: int) -> float:
        """The wait after ``rounds`` unavailable rounds in a row: exponential, capped, jittered."""
        cap = min(self.max_backoff_s, self.base_backoff_s * 2.0 ** min(rounds - 1, 32))
        return random.uniform(cap / 2, cap)  # jitter, not cryptography

    def _run(self) -> None:
        rounds = 0  # rounds in a row that ended with the server unavailable or the store failing
        while not self._stop.is_set():
            try:
                traces = self.service.store.claim_pending_traces(self.concurrency, lease_s=self.lease_s)
            except Exception:
                log.exception("reflection worker could not claim traces; retrying")
                rounds += 1
                self._pause(self.backoff_s(rounds))
                continue
            if not traces:
                rounds = 0
                self._maintain()
                self._idle.set()
                self._wake.wait(self.idle_s)
                self._wake.clear()
                continue
            self._idle.clear()
            results = self.service.run_batch(traces, self.concurrency)
            if not server_unavailable(results):
                rounds = 0
                continue
            rounds += 1
            delay = self.backoff_s(rounds)
            log.warning("model server unavailable; %d trace(s) wait; next try in %.1f s", len(traces), delay)
            self._pause(delay)

    def _maintain(self) -> None:
        """Run the maintenance pass when it is due; its failure is logged, never fatal."""
        if self.maintenance is None or self.maintenance_every_s <= 0:
            return
        now = time.monotonic()
        if self._maintained_at is not None and now - self._maintained_at < self.maintenance_every_s:
            return
        self._maintained_at = now
        try:
            self.maintenance()
        except Exception:
            log.exception("handbook curation failed; the next try is in %.0f s", self.maintenance_every_s)

    def _pause(self, delay: float) -> None:
        self._idle.set()  # nothing can be done now: callers of wait_idle() are told so
        self._stop.wait(delay)
        self._wake.clear()
