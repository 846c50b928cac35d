"""Searching the handbook mid-task: the ``search_behaviors`` tool every integration offers.

The block injected up front is retrieved once, from the task's first message. An agent that gets
stuck later can ask again with words of its own: ``BehaviorSearch`` retrieves and renders the
same paper block for that query, within a time budget, and never raises. A bad argument, a dead
store or a late retrieval gives a message the model can read and act on (go on without it).

What a search returned counts as shown, exactly like the injected block: every adapter records
the tool call, and the recorder notes the names on the result's ``name: instruction`` lines
(``search_result_names``), so citations of them feed the same counters. The LangChain tool, the
LlamaIndex ``FunctionTool`` and the MCP server's ``search_behaviors`` all come from here.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from .budget import TimeBudget

if TYPE_CHECKING:
    from ..retrieval.base import ScoredBehavior
    from ..types import Behavior
    from .fetch import BlockSource

__all__ = [
    "MAX_SEARCH_K",
    "MAX_SEARCH_QUERY_CHARS",
    "SEARCH_TOOL_DESCRIPTION",
    "SEARCH_TOOL_NAME",
    "BehaviorSearch",
    "SearchResult",
    "search_result_names",
    "validate_k",
    "validate_query",
]

log = logging.getLogger(__name__)

SEARCH_TOOL_NAME = "search_behaviors"
SEARCH_TOOL_DESCRIPTION = (
    "Search the handbook of behaviors: short, reusable strategies learned from earlier tasks. "
    "Call it when you are stuck or unsure how to proceed, with a short description of the problem "
    "as `query` (and optionally `k`, how many behaviors, 1 to 20). Whenever you use a behavior it "
    "returns, cite it by its name."
)
#: Longest query the tool accepts: an agent should describe its problem, not paste a document.
MAX_SEARCH_QUERY_CHARS = 2_000
MAX_SEARCH_K = 20
NO_MATCH = "No behavior in the handbook matches this query; go on without one."
# A rendered line starts with the behavior's name and a colon (``render.behavior_line``).
_LINE_NAME = re.compile(r"^(behavior_[a-z0-9_]{2,80}): ", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One search: ``text`` for the model, the behaviors in it, and how it went.

    ``status``: ok, empty (nothing matched), invalid (a bad argument), timeout or error (the
    store or the retriever failed). ``text`` is always something the model can read.
    """

    text: str
    status: str
    names: tuple[str, ...] = ()
    behaviors: tuple[Behavior, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in {"ok", "empty"}


def validate_query(query: Any) -> str:
    """The query, stripped; ``InvalidInputError`` when it is not a non-empty string of sane size."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, not {type(query).__name__}")
    text = query.strip()
    if not text:
        raise InvalidInputError("query is empty: describe what you are stuck on in a few words")
    if len(text) > MAX_SEARCH_QUERY_CHARS:
        raise InvalidInputError(
            f"query is {len(text)} characters; at most {MAX_SEARCH_QUERY_CHARS} are allowed (describe the problem)"
        )
    return text


def validate_k(k: Any, default: int) -> int:
    """``k`` as an int from 1 to ``MAX_SEARCH_K`` (``None``: ``default``, capped the same way)."""
    if k is None:
        return max(1, min(int(default), MAX_SEARCH_K))
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidInputError(f"k must be an integer, not {type(k).__name__}")
    if not 1 <= k <= MAX_SEARCH_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_SEARCH_K}, got {k}")
    return k


def search_result_names(text: str | None) -> list[str]:
    """The behaviors a ``search_behaviors`` result showed: the names that open its lines."""
    if not text:
        return []
    found: list[str] = []
    for name in _LINE_NAME.findall(text):
        if name not in found:
            found.append(name)
    return found


class BehaviorSearch:
    """Retrieve and render behaviors for a query an agent asks mid-task; never raises.

    ``k`` is the default number (``retrieval.k`` when ``None``), ``timeout_s`` the budget of one
    search (``None``: no limit), ``token_budget`` that of the rendered text.
    """

    def __init__(
        self,
        memory: BlockSource,
        *,
        k: int | None = None,
        topic: str | None = None,
        token_budget: int | None = None,
        timeout_s: float | None = 5.0,
    ) -> None:
        self.memory = memory
        self.topic, self.token_budget = topic, token_budget
        config = getattr(memory, "config", None)
        self.k: int = k or int(getattr(getattr(config, "retrieval", None), "k", 5) or 5)
        self._budget = TimeBudget(timeout_s, workers=2, thread_name="bmem-search")

    @property
    def timeout_s(self) -> float | None:
        return self._budget.timeout_s

    def _result(self, hits: list[ScoredBehavior], started: float) -> SearchResult:
        block = self.memory.render(hits, token_budget=self.token_budget)
        by_name = {h.behavior.name: h.behavior for h in hits}
        behaviors = tuple(by_name[n] for n in block.names if n in by_name)
        seconds = time.perf_counter() - started
        if not block:
            return SearchResult(NO_MATCH, "empty", seconds=seconds)
        return SearchResult(str(block), "ok", block.names, behaviors, seconds)

    def _retrieve(self, query: str, k: int, namespace: str | None) -> list[ScoredBehavior]:
        return self.memory.retrieve(query, k=k, namespace=namespace, topic=self.topic)

    def search(self, query: Any, *, k: Any = None, namespace: str | None = None) -> SearchResult:
        """Search now, in a small pool so that a hung store cannot hold the agent past the budget."""
        started = time.perf_counter()
        try:
            text, count = validate_query(query), validate_k(k, self.k)
        except InvalidInputError as exc:
            return SearchResult(f"Invalid search: {exc}", "invalid")
        try:
            hits = self._budget.run(self._retrieve, text, count, namespace)
            return self._result(hits, started)
        except TimeoutError:
            return self._late(namespace, started)
        except Exception as exc:
            return self._failed(namespace, exc, started)

    async def asearch(self, query: Any, *, k: Any = None, namespace: str | None = None) -> SearchResult:
        """Async twin of ``search``; a late retrieval is cancelled at the budget."""
        started = time.perf_counter()
        try:
            text, count = validate_query(query), validate_k(k, self.k)
        except InvalidInputError as exc:
            return SearchResult(f"Invalid search: {exc}", "invalid")
        try:
            hits = await self._budget.arun(self.memory.aretrieve(text, k=count, namespace=namespace, topic=self.topic))
            return self._result(hits, started)
        except TimeoutError:
            return self._late(namespace, started)
        except Exception as exc:
            return self._failed(namespace, exc, started)

    def _late(self, namespace: str | None, started: float) -> SearchResult:
        log.warning("search_behaviors in %r took longer than %s s", namespace, self.timeout_s)
        text = "The behavior handbook did not answer in time; go on without it."
        return SearchResult(text, "timeout", seconds=time.perf_counter() - started)

    def _failed(self, namespace: str | None, exc: Exception, started: float) -> SearchResult:
        log.warning("search_behaviors in %r failed", namespace, exc_info=True)
        text = f"The behavior handbook is unavailable ({type(exc).__name__}); go on without it."
        return SearchResult(text, "error", seconds=time.perf_counter() - started)

    def close(self) -> None:
        """Release the pool's threads (a hung retrieval is left to finish on its own)."""
        self._budget.close()
