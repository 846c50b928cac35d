"""``search_behaviors_tool``: the handbook as a LlamaIndex ``FunctionTool`` an agent calls when stuck.

::

    agent = wrap(FunctionAgent(tools=[...], llm=llm), memory, search_tool=True)
    # or, by hand: FunctionAgent(tools=[..., search_behaviors_tool(memory)], llm=llm)

The search is the core's ``BehaviorSearch`` (a time budget; a bad argument or a dead store is a
message the model reads, never an exception). Inside a wrapped run the tool searches that run's
namespace (its instrument tag); what it returned counts as shown in the run's trace.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import FunctionTool
from llama_index_instrumentation.dispatcher import active_instrument_tags

from ...injection.search import SEARCH_TOOL_DESCRIPTION, SEARCH_TOOL_NAME, BehaviorSearch
from .instrumentation import NAMESPACE_TAG

__all__ = ["search_behaviors_tool"]


def _namespace(base: str) -> str:
    tagged = active_instrument_tags.get().get(NAMESPACE_TAG)
    return tagged if isinstance(tagged, str) and tagged else base


def search_behaviors_tool(
    memory: Any,
    *,
    namespace: str | None = None,
    k: int | None = None,
    topic: str | None = None,
    token_budget: int | None = None,
    timeout_s: float | None = 5.0,
) -> FunctionTool:
    """A ``search_behaviors(query, k)`` ``FunctionTool`` over ``memory``'s handbook."""
    base = namespace or memory.namespace
    search = BehaviorSearch(memory, k=k, topic=topic, token_budget=token_budget, timeout_s=timeout_s)

    def search_behaviors(query: str, k: int | None = None) -> str:
        return search.search(query, k=k, namespace=_namespace(base)).text

    async def asearch_behaviors(query: str, k: int | None = None) -> str:
        return (await search.asearch(query, k=k, namespace=_namespace(base))).text

    return FunctionTool.from_defaults(
        fn=search_behaviors,
        async_fn=asearch_behaviors,
        name=SEARCH_TOOL_NAME,
        description=SEARCH_TOOL_DESCRIPTION,
    )
