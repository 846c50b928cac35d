"""``BehaviorMemory``: the one object users hold.

It ties the store, the embedder, the retriever and the reflection pipeline (reflector, curator,
background worker) together, built from one YAML file or from defaults::

    memory = BehaviorMemory.from_yaml("behavior-memory.yaml")   # or BehaviorMemory()
    hits = memory.retrieve("How many integers below 100 are divisible by 3 or 5?")
    system_prompt = base_prompt + "\\n\\n" + memory.render(hits)
    with memory.trace(task=question, hits=hits) as t:
        ...
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _wiring
from .config.settings import BehaviorMemoryConfig, load_config
from .injection.exposure import Exposure
from .injection.render import RenderedBlock, render_block
from .recording.capture import CapturedTraces, capture, note_trace
from .recording.recorder import TraceRecorder
from .recording.text import encodable, encodable_data
from .recording.traces import TraceBook
from .telemetry import set_attributes, span
from .types import Outcome, Trace, normalize_trace_id, pick_namespace, validate_namespace

# Type-only: the implementations (numpy, openai) load when ``_wiring`` builds them, not on import.
if TYPE_CHECKING:
    from .embeddings.base import Embedder
    from .handbook import Handbook
    from .llm.agent_model import AgentModel, AgentModelClient
    from .llm.client import LLMClient
    from .reflection.worker import ReflectionService, ReflectionWorker, TraceResult
    from .retrieval.base import Retriever, ScoredBehavior
    from .store.base import HandbookStore

__all__ = ["BehaviorMemory"]

log = logging.getLogger(__name__)


class BehaviorMemory:
    """Procedural memory for an agent: retrieve, render, record, (reflect, curate)."""

    def __init__(
        self,
        config: BehaviorMemoryConfig | None = None,
        *,
        store: HandbookStore | None = None,
        embedder: Embedder | None = None,
        retriever: Retriever | None = None,
        llm: LLMClient | None = None,
    ) -> None:
        self.config = config or BehaviorMemoryConfig()
        self.namespace = validate_namespace(self.config.namespace)
        self.store: HandbookStore = store if store is not None else _wiring.build_store(self.config)
        self.embedder = embedder if embedder is not None else _wiring.build_embedder(self.config)
        self.handbook: Handbook = _wiring.build_handbook(
            self.store, self.embedder, self.namespace, _wiring.build_guard(self.config)
        )
        self.traces: TraceBook = _wiring.build_tracebook(self.config, self.store, self.namespace)
        self.retriever = retriever or _wiring.build_retriever(self.config, self.store, self.embedder)
        self._llm = llm
        # The exposure experiment's coin (curation.lifecycle.withhold_epsilon); see injection/exposure.py.
        self.exposure = Exposure(self.config.curation.lifecycle.withhold_epsilon)
        self._reflection: ReflectionService | None = None
        self._agent_llm: AgentModelClient | None = None
        self._worker: ReflectionWorker | None = None
        self._lock = threading.RLock()  # reentrant: worker() builds reflection()

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> BehaviorMemory:
        """Build from a YAML file (see ``bmem config schema`` for every key)."""
        return cls(load_config(path), **overrides)

    # --- retrieve and render ------------------------------------------------------------------
    def retrieve(
        self, query: str, *, k: int | None = None, namespace: str | None = None, topic: str | None = None
    ) -> list[ScoredBehavior]:
        """The behaviors most relevant to ``query`` (active only), in a deterministic order.

        Always what retrieval chose: the exposure experiment (``withhold_epsilon``) withholds some
        of them from an agent's block later (``exposure.choose``), never from this list.
        """
        self.handbook.ensure_embedder()
        scope, count = pick_namespace(namespace, self.namespace), k or self.config.retrieval.k
        with span("bmem.retrieve", self._retrieve_attributes(scope, count)) as current:
            hits = self.retriever.retrieve(query or "", namespace=scope, k=count, topic=topic)
            current.set_attribute("bmem.retrieve.hits", len(hits))
        return hits

    def _retrieve_attributes(self, namespace: str, k: int) -> dict[str, Any]:
        return {
            "bmem.namespace": namespace,
            "bmem.retrieve.k": k,
            "bmem.retrieve.strategy": self.config.retrieval.strategy,
        }

    async def aretrieve(
        self, query: str, *, k: int | None = None, namespace: str | None = None, topic: str | None = None
    ) -> list[ScoredBehavior]:
        """Async twin of ``retrieve``."""
        self.handbook.ensure_embedder()  # a no-op after the first call of the process
        scope, count = pick_namespace(namespace, self.namespace), k or self.config.retrieval.k
        with span("bmem.retrieve", self._retrieve_attributes(scope, count)) as current:
            hits = await self.retriever.aretrieve(query or "", namespace=scope, k=count, topic=topic)
            current.set_attribute("bmem.retrieve.hits", len(hits))
        return hits

    def render(self, hits: Iterable[Any], *, token_budget: int | None = None) -> RenderedBlock:
        """The paper's behavior-conditioned block for these behaviors, within the token budget.

        The result is a ``str`` (empty when there is nothing to show) that also carries ``.names``
        (the behaviors included), ``.dropped`` and ``.tokens``.
        """
        budget = self.config.retrieval.token_budget if token_budget is None else token_budget
        with span("bmem.render", {"bmem.render.token_budget": budget}) as current:
            block = render_block(
                hits, token_budget=budget, template=self.config.resolve(self.config.injection.template)
            )
            attributes = {"bmem.render.tokens": block.tokens, "bmem.render.behaviors": len(block.names)}
            set_attributes(current, {**attributes, "bmem.render.dropped": len(block.dropped)})
        return block

    def citations(self, text: str | None, *, namespace: str | None = None) -> list[str]:
        """Names of this namespace's behaviors that ``text`` cites, in order of first mention."""
        return self.traces.citations(text, namespace=namespace)

    # --- record -------------------------------------------------------------------------------
    def trace(
        self,
        task: str,
        *,
        namespace: str | None = None,
        topic: str | None = None,
        hits: Iterable[Any] = (),
        metadata: dict[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> TraceRecorder:
        """Start recording one task; use as ``with memory.trace(task=...) as t:``.

        ``hits`` are the behaviors shown in this task's prompt. On exit the trace is saved, the
        ``shown`` and ``cited`` counters move, and the trace waits for reflection. Every integration
        opens its traces here, so ``capture()`` sees them all. ``trace_id`` (32 hex digits, or a
        UUID in any form) chooses the id. While the exposure experiment runs, the names withheld
        from this task's block go to ``metadata["withheld"]`` (see ``injection.exposure``).
        """
        # Text made encodable as it comes in: a stray surrogate must not cost the trace (text.encodable).
        trace = Trace(
            task=encodable(task),
            namespace=pick_namespace(namespace, self.namespace),
            topic=None if topic is None else encodable(topic),
            metadata=encodable_data(dict(metadata or {})),
        )
        if trace_id is not None:
            trace.id = normalize_trace_id(trace_id)
        recorder = TraceRecorder(trace, self._save_trace)
        recorder.show(hits)
        self.exposure.opened(trace, has_block=bool(trace.shown))
        note_trace(trace.id)
        return recorder

    def capture(self) -> AbstractContextManager[CapturedTraces]:
        """Collect the ids of the traces opened in a ``with`` block, by any adapter or ``trace()``.

        The one way to learn a run's trace id, the same in every integration::

            with memory.capture() as run:
                agent.invoke({"messages": [("user", "What is 17 * 23?")]})
            memory.feedback(run.trace_id, outcome="success")
        """
        return capture()

    def _save_trace(self, trace: Trace) -> Trace:
        attributes = {
            "bmem.namespace": trace.namespace,
            "bmem.trace.id": trace.id,
            "bmem.trace.steps": len(trace.steps),
        }
        with span("bmem.record", attributes) as current:
            self.traces.save(trace, reflect=self.config.reflection.mode != "off")
            set_attributes(current, {"bmem.trace.shown": len(trace.shown), "bmem.trace.cited": len(trace.cited)})
        self._after_trace_saved(trace)
        return trace

    def _after_trace_saved(self, trace: Trace) -> None:
        if self.config.reflection.mode == "background":
            try:
                self.worker.notify()
            except Exception:  # reflection must never break the agent that just finished a task
                log.exception("could not wake the reflection worker; trace %s waits", trace.id)

    # --- reflect ------------------------------------------------------------------------------
    @property
    def llm(self) -> LLMClient:
        """The client of the configured model server (created on first use)."""
        if self._llm is None:
            self._llm = _wiring.build_llm(self.config)
        return self._llm

    @property
    def reflection(self) -> ReflectionService:
        """The reflection pipeline (reflector + curator) over this memory's store."""
        with self._lock:
            if self._reflection is None:
                self.handbook.ensure_embedder()  # the curator compares new vectors with the stored ones
                llm = self.agent_llm if self.config.reflection.llm == "agent" else self.llm
                self._reflection = _wiring.build_reflection(self.config, self.store, self.embedder, llm)
            return self._reflection

    @property
    def agent_llm(self) -> AgentModelClient:
        """Where ``reflection.llm: agent`` sends reflection: the agent's own model, once an adapter attached it."""
        with self._lock:
            if self._agent_llm is None:
                from .llm.agent_model import AgentModelClient

                self._agent_llm = AgentModelClient()
            return self._agent_llm

    def use_agent_model(self, model: AgentModel) -> None:
        """Reflect with the agent's own ``model`` (adapters call this when ``reflection.llm`` is ``agent``)."""
        self.agent_llm.attach(model)

    @property
    def worker(self) -> ReflectionWorker:
        """The background reflection worker (started on first use)."""
        with self._lock:
            if self._worker is None:
                self._worker = _wiring.build_worker(self.config, self.reflection)
            return self._worker

    def reflect_pending(
        self,
        *,
        concurrency: int | None = None,
        limit: int | None = None,
        on_done: Callable[[Trace, TraceResult], None] | None = None,
    ) -> Counter[str]:
        """Reflect claimable traces now, in this thread, until none is left (or ``limit`` were done).

        Claimable: pending, or claimed by a process that died (its ``reflection.lease_s`` expired),
        in every namespace. Stops early when a whole batch found the model server unavailable:
        those traces stay pending with their attempts intact. Returns how many times a trace ended
        in each way (see ``TraceResult``; a trace that waited and then was reflected counts twice).
        """
        from .reflection.worker import server_unavailable

        width = concurrency or self.config.reflection.concurrency
        outcomes: Counter[str] = Counter()
        while limit is None or sum(outcomes.values()) < limit:
            batch = width if limit is None else min(width, limit - sum(outcomes.values()))
            traces = self.store.claim_pending_traces(batch, lease_s=self.config.reflection.lease_s)
            if not traces:
                break
            results = self.reflection.run_batch(traces, width, on_done)
            outcomes.update(str(r) for r in results)
            if server_unavailable(results):
                break
        return outcomes

    def reflect_trace(self, trace_id: str) -> TraceResult:
        """Reflect one trace now, whatever its status; a trace already reflected mints nothing new.

        Counts as an attempt the way a claim does, so a server fault gives it back and the model's
        bad answers use up ``reflection.max_attempts`` alike.
        """
        trace = self.traces.get(trace_id)
        trace.reflection_attempts += 1
        self.store.update_trace_fields(trace.id, reflection_attempts=trace.reflection_attempts)
        return self.reflection.process(trace)

    def wait_for_reflection(self, timeout: float | None = None) -> bool:
        """Wait until the background worker has nothing left to do (True) or the timeout passed."""
        if self._worker is None:
            return True
        self._worker.notify()
        return self._worker.wait_idle(timeout)

    def feedback(
        self,
        trace_id: str,
        *,
        outcome: Outcome | str | None = None,
        score: float | None = None,
        comment: str | None = None,
        namespace: str | None = None,
    ) -> Trace:
        """Attach an outcome to a saved trace (reflection uses it; counters of cited behaviors move).

        The same as ``memory.traces.feedback``: only a trace of ``namespace`` (default: the memory's)
        or of a namespace below it is found, any other is ``NotFoundError``.
        """
        return self.traces.feedback(trace_id, outcome=outcome, score=score, comment=comment, namespace=namespace)

    # --- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the reflection worker (a trace it holds is reclaimed later) and release the store."""
        if self._worker is not None:
            self._worker.stop()
        if self._llm is not None:
            self._llm.close()
        self.traces.close()
        self.store.close()

    def __enter__(self) -> BehaviorMemory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BehaviorMemory(namespace={self.namespace!r}, store={self.store!r})"
