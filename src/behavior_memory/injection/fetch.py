"""Fetching a task's behavior block within a time budget, for every integration.

A retrieval that fails or runs late means no block for that task (one WARNING log line), never a
broken agent. While the exposure experiment runs (``curation.lifecycle.withhold_epsilon``), the
fetcher tosses its coin between retrieval and rendering (``exposure.Exposure``): withheld behaviors
stay out of the block and reach the task's trace as ``metadata["withheld"]``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._threads import start_background
from .budget import TimeBudget
from .exposure import Exposure
from .render import RenderedBlock
from .tokens import count_tokens

if TYPE_CHECKING:
    from ..retrieval.base import ScoredBehavior


class BlockSource(Protocol):
    """What the fetcher needs of a ``BehaviorMemory``: retrieval and rendering (no upward import)."""

    def retrieve(
        self, query: str, *, k: int | None = ..., namespace: str | None = ..., topic: str | None = ...
    ) -> list[ScoredBehavior]: ...

    async def aretrieve(
        self, query: str, *, k: int | None = ..., namespace: str | None = ..., topic: str | None = ...
    ) -> list[ScoredBehavior]: ...

    def render(self, hits: Iterable[Any], *, token_budget: int | None = ...) -> RenderedBlock: ...


__all__ = ["MAX_QUERY_CHARS", "BlockFetcher", "BlockSource", "Fetched"]

log = logging.getLogger(__name__)

#: Longest query handed to retrieval: the last user message can be a pasted document.
MAX_QUERY_CHARS = 4_000


@dataclass(frozen=True, slots=True)
class Fetched:
    """The block for one task and how getting it went (``status``: ok, empty, timeout, error).

    ``withheld``: behaviors retrieval chose that the exposure experiment kept out of the block
    (already handed to the task's trace; see ``exposure``).
    """

    block: RenderedBlock
    status: str
    seconds: float
    withheld: tuple[str, ...] = ()


_EMPTY = RenderedBlock("")
#: The memories whose retrieval a fetcher has warmed up already (weakly: a closed memory goes).
_WARMED: weakref.WeakSet[BlockSource] = weakref.WeakSet()
_WARMED_LOCK = threading.Lock()


class BlockFetcher:
    """Retrieve and render a task's behavior block within ``timeout_s`` (``None``: no limit).

    A retrieval that raises or runs past the budget gives an empty block and one WARNING log line;
    the agent goes on exactly as it would without behavior memory.
    """

    def __init__(
        self,
        memory: BlockSource,
        *,
        k: int | None = None,
        topic: str | None = None,
        token_budget: int | None = None,
        timeout_s: float | None = 2.0,
    ) -> None:
        self.memory = memory
        self.k, self.topic, self.token_budget = k, topic, token_budget
        self._budget = TimeBudget(timeout_s, workers=4, thread_name="bmem-retrieve")
        if timeout_s is not None:
            self._warm_up()

    @property
    def timeout_s(self) -> float | None:
        return self._budget.timeout_s

    def _warm_up(self) -> None:
        """Load the tokenizer now, and the embedder in the background, so the first task's budget
        is not spent loading them (MiniLM takes seconds cold, longer than the default budget).
        Once per memory: fetchers are cheap to make, and some adapters make one per task."""
        with _WARMED_LOCK:
            if self.memory in _WARMED:
                return
            _WARMED.add(self.memory)
        try:
            count_tokens("behavior")
        except Exception:  # the first render will report it
            log.debug("could not load the tokenizer ahead of the first task", exc_info=True)
        start_background(self._warm_retrieval, "bmem-warm-up")

    def _warm_retrieval(self) -> None:
        try:
            self.memory.retrieve("warm up", k=1, topic=self.topic)
        except Exception:  # the first task will report it
            log.debug("could not warm up retrieval ahead of the first task", exc_info=True)

    def _exposure(self) -> Exposure | None:
        exposure = getattr(self.memory, "exposure", None)  # a memory without one shows everything
        return exposure if isinstance(exposure, Exposure) and exposure.active else None

    def _split(self, hits: list[ScoredBehavior]) -> tuple[list[ScoredBehavior], list[str]]:
        exposure = self._exposure()
        return exposure.split(hits) if exposure is not None else (hits, [])

    def _note(self, namespace: str, withheld: tuple[str, ...]) -> None:
        """Hand the withheld names to the task's trace, from the caller's context (not the pool's)."""
        exposure = self._exposure()
        if exposure is not None:
            exposure.note(namespace, withheld)

    def _render(self, query: str, namespace: str) -> tuple[RenderedBlock, tuple[str, ...]]:
        hits = self.memory.retrieve(query, k=self.k, namespace=namespace, topic=self.topic)
        shown, withheld = self._split(hits)
        return self.memory.render(shown, token_budget=self.token_budget), tuple(withheld)

    def fetch(self, query: str, namespace: str) -> Fetched:
        """Sync: retrieval runs in a small pool so that a hung store cannot hold the agent."""
        started = time.perf_counter()
        query = query[:MAX_QUERY_CHARS]
        if not query.strip():
            self._note(namespace, ())
            return Fetched(_EMPTY, "empty", 0.0)
        try:
            block, withheld = self._budget.run(self._render, query, namespace)
        except TimeoutError:
            return self._late(namespace, started)
        except Exception:
            return self._failed(namespace, started)
        self._note(namespace, withheld)
        return Fetched(block, "ok" if block else "empty", time.perf_counter() - started, withheld)

    async def afetch(self, query: str, namespace: str) -> Fetched:
        """Async twin of ``fetch``; a late retrieval is cancelled at the budget."""
        started = time.perf_counter()
        query = query[:MAX_QUERY_CHARS]
        if not query.strip():
            self._note(namespace, ())
            return Fetched(_EMPTY, "empty", 0.0)
        try:
            hits = await self._budget.arun(
                self.memory.aretrieve(query, k=self.k, namespace=namespace, topic=self.topic)
            )
            shown, withheld = self._split(hits)
            block = self.memory.render(shown, token_budget=self.token_budget)
        except TimeoutError:
            return self._late(namespace, started)
        except Exception:
            return self._failed(namespace, started)
        self._note(namespace, tuple(withheld))
        return Fetched(block, "ok" if block else "empty", time.perf_counter() - started, tuple(withheld))

    def _late(self, namespace: str, started: float) -> Fetched:
        self._note(namespace, ())  # no block: nothing was withheld from it
        log.warning(
            "behavior retrieval in %r took longer than %.3f s: no behaviors for this task",
            namespace,
            self.timeout_s,
        )
        return Fetched(_EMPTY, "timeout", time.perf_counter() - started)

    def _failed(self, namespace: str, started: float) -> Fetched:
        self._note(namespace, ())
        log.warning("behavior retrieval in %r failed: no behaviors for this task", namespace, exc_info=True)
        return Fetched(_EMPTY, "error", time.perf_counter() - started)
