"""``TraceBook``: the traces of a store, saved, read back and given feedback (``memory.traces``).

``save`` is the one path by which a finished trace reaches the store: citations are read from its
outputs, then the trace and the behaviors' ``shown`` and ``cited`` counters are written in one
transaction. The agent waits at most ``write_budget_s`` for another writer's lock; past it the trace
goes to the spool beside the store (``TraceSpool``) and is written later, never dropped.

Listing and counting work in one namespace (the one given, or the memory's default) unless asked
for every namespace. ``get`` and ``feedback`` find a trace of that namespace or of one below it
(``acme/bot`` reaches ``acme/bot/alice``, where ``user_id`` files a user's runs), so the id a run
handed out is all its owner needs; a trace of any other namespace is "not found", worded exactly
as a missing one so that an id cannot be used to probe another tenant. ``all_namespaces=True`` is
the explicit way across, for administration.

Every string of a saved trace is made encodable first (``text.encodable_data``): a stray
surrogate, however the trace was built, is stored as U+FFFD instead of failing the whole write.
"""

from __future__ import annotations

import builtins
import logging
from typing import Any

from ..errors import NotFoundError, StoreError
from ..injection.render import parse_citations
from ..store.base import HandbookStore
from ..types import Outcome, ReflectionStatus, Trace, normalize_trace_id, pick_namespace, validate_namespace
from .spool import SpoolDrainer, TraceSpool
from .text import encodable, encodable_data

__all__ = ["TraceBook"]

log = logging.getLogger(__name__)

#: The behavior counter an outcome moves for each behavior the trace cited.
_OUTCOME_COUNTERS = {Outcome.SUCCESS: "helped", Outcome.FAILURE: "hurt"}


def _within(namespace: str, scope: str) -> bool:
    """True when ``namespace`` is ``scope`` or lies below it (whole segments: ``team`` is not ``team-b``)."""
    return namespace == scope or namespace.startswith(scope + "/")


class TraceBook:
    """Look up, list and count saved traces, and attach outcomes to them."""

    def __init__(
        self,
        store: HandbookStore,
        *,
        namespace: str,
        spool: TraceSpool | None = None,
        write_budget_s: float | None = None,
    ) -> None:
        self.store = store
        self.namespace = validate_namespace(namespace)
        self.spool = spool
        self.write_budget_s = write_budget_s
        self._drainer = SpoolDrainer(self.drain_spool, self.spooled) if spool is not None else None
        if self._drainer is not None and self.spooled():  # left by a process that could not write them
            self._drainer.start()

    def _scope(self, namespace: str | None, all_namespaces: bool) -> str | None:
        return None if all_namespaces else pick_namespace(namespace, self.namespace)

    def citations(self, text: str | None, *, namespace: str | None = None) -> builtins.list[str]:
        """Names of the namespace's behaviors that ``text`` cites, in order of first mention."""
        scope = pick_namespace(namespace, self.namespace)
        known = []
        for name in parse_citations(text):
            try:  # one indexed lookup per cited name: the handbook may hold many thousands
                self.store.get_behavior(scope, name)
            except NotFoundError:
                continue
            known.append(name)
        return known

    def save(self, trace: Trace, *, reflect: bool = True) -> Trace:
        """Save a finished trace with its ``shown`` and ``cited`` counts; ``reflect=False`` marks it skipped.

        Within ``write_budget_s``, or else into the spool (when there is one) to be written later.
        """
        encodable_data(trace)  # in place; a lone surrogate would make the store refuse the whole trace
        if not reflect:
            trace.reflection_status = ReflectionStatus.SKIPPED
        try:
            self._write(trace, self.write_budget_s)
        except StoreError as exc:
            if self.spool is None:
                raise
            self.spool.append(trace)
            log.warning("trace %s spooled to %s: %s; it will be written later", trace.id, self.spool.path, exc)
            if self._drainer is not None:
                self._drainer.start()
        return trace

    def _write(self, trace: Trace, budget_s: float | None) -> bool:
        outputs = "\n".join(step.output or "" for step in trace.steps if step.kind == "model")
        trace.cited = self.citations(f"{outputs}\n{trace.answer or ''}", namespace=trace.namespace)
        return self.store.save_trace(trace, timeout_s=budget_s)

    def spooled(self) -> int:
        """How many traces wait in the spool."""
        return 0 if self.spool is None else len(self.spool)

    def drain_spool(self) -> int:
        """Write the spooled traces to the store now (no budget: this is not the agent's path)."""
        if self.spool is None:
            return 0
        written = self.spool.drain(lambda trace: self._write(trace, None))
        if written:
            log.info("wrote %d spooled trace(s) to the store", written)
        return written

    def close(self) -> None:
        """Stop the spool's drainer thread (what is left waits for the next process)."""
        if self._drainer is not None:
            self._drainer.stop()

    def get(self, trace_id: str, *, namespace: str | None = None, all_namespaces: bool = False) -> Trace:
        """The trace with its steps; the id may be spelled as any UUID.

        Only a trace of ``namespace`` (default: this book's) or of a namespace below it is found;
        ``all_namespaces=True`` looks everywhere. Raises ``NotFoundError`` otherwise.
        """
        scope = self._scope(namespace, all_namespaces)
        wanted = normalize_trace_id(trace_id)
        if scope is None:
            return self.store.get_trace(wanted)
        missing = NotFoundError(f"no trace {wanted} in namespace {scope!r} (or a namespace below it)")
        try:
            trace = self.store.get_trace(wanted)
        except NotFoundError:
            raise missing from None
        if not _within(trace.namespace, scope):
            raise missing  # the same words as a missing trace: another tenant's ids stay unconfirmed
        return trace

    def list(
        self,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        status: ReflectionStatus | str | None = None,
        limit: int = 50,
    ) -> builtins.list[Trace]:
        """Up to ``limit`` traces, newest first, without their steps (``get`` has them)."""
        wanted = None if status is None else ReflectionStatus(status)
        return self.store.list_traces(self._scope(namespace, all_namespaces), status=wanted, limit=limit)

    def count(
        self,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        status: ReflectionStatus | str | None = None,
    ) -> int:
        """How many traces ``list`` would give without a limit."""
        wanted = None if status is None else ReflectionStatus(status)
        return self.store.count_traces(self._scope(namespace, all_namespaces), status=wanted)

    def feedback(
        self,
        trace_id: str,
        *,
        outcome: Outcome | str | None = None,
        score: float | None = None,
        comment: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
    ) -> Trace:
        """Attach an outcome, a score or a comment to a saved trace and return it as stored now.

        Reflection reads them. When the outcome changes to success (or failure), every behavior
        the trace cited gets one more ``helped`` (or ``hurt``); giving the same outcome again
        moves nothing, so feedback can be repeated safely. The trace is found as ``get`` finds it:
        in ``namespace`` (default: this book's) or below, unless ``all_namespaces``.
        """
        trace = self.get(trace_id, namespace=namespace, all_namespaces=all_namespaces)
        fields: dict[str, Any] = {}
        if outcome is not None:
            fields["outcome"] = Outcome(outcome)
        if score is not None:
            fields["score"] = float(score)
        if comment is not None:
            fields["feedback"] = encodable(comment)
        if fields:
            self.store.update_trace_fields(trace.id, **fields)
        new_outcome = fields.get("outcome")
        counter = _OUTCOME_COUNTERS.get(new_outcome) if new_outcome is not None else None
        if counter is not None and new_outcome != trace.outcome and trace.cited:
            self.store.increment(trace.namespace, trace.cited, counter)
        return self.store.get_trace(trace.id)
