"""``search_behaviors_tool``: the handbook as a LangChain tool an agent calls when it is stuck.

::

    agent = create_agent(model, tools, middleware=[BehaviorMiddleware(memory, search_tool=True)])
    # or, by hand: create_agent(model, [*tools, search_behaviors_tool(memory)], middleware=[...])

The search itself is the core's ``BehaviorSearch`` (a time budget, never raises: a bad argument or
a dead store is a message the model reads). The task's namespace follows the same rule as the
middleware's (runtime context, then config metadata, then the base namespace). What the tool
returned counts as shown in the task's trace once the middleware records the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from ...injection.search import MAX_SEARCH_K, SEARCH_TOOL_DESCRIPTION, SEARCH_TOOL_NAME, BehaviorSearch
from ...memory import BehaviorMemory
from ...recording.namespaces import task_namespace

__all__ = ["SearchBehaviorsArgs", "search_behaviors_tool"]


class SearchBehaviorsArgs(BaseModel):
    """The tool's arguments, as the model sees their schema (checked again by ``BehaviorSearch``)."""

    query: str = Field(description="What you are stuck on, in a few words.")
    k: int | None = Field(default=None, description=f"How many behaviors (1 to {MAX_SEARCH_K}).")


def _namespace(base: str) -> str:
    """The running task's namespace: the middleware's rule, read from LangGraph's context."""
    context: Any = None
    metadata: Mapping[str, Any] = {}
    try:
        from langgraph.config import get_config

        metadata = get_config().get("metadata") or {}
    except Exception:  # called outside a graph (a test, a plain invoke)
        pass
    try:
        from langgraph.runtime import get_runtime

        context = get_runtime().context
    except Exception:
        pass
    try:
        return task_namespace(base, context, metadata)
    except Exception:  # a bad user_id is the middleware's to report; search the base namespace
        return base


def search_behaviors_tool(
    memory: BehaviorMemory,
    *,
    namespace: str | None = None,
    k: int | None = None,
    topic: str | None = None,
    token_budget: int | None = None,
    timeout_s: float | None = 5.0,
) -> BaseTool:
    """A ``search_behaviors(query, k)`` tool over ``memory``'s handbook (see the module docstring)."""
    base = namespace or memory.namespace
    search = BehaviorSearch(memory, k=k, topic=topic, token_budget=token_budget, timeout_s=timeout_s)

    def run(query: str, k: int | None = None) -> str:
        return search.search(query, k=k, namespace=_namespace(base)).text

    async def arun(query: str, k: int | None = None) -> str:
        return (await search.asearch(query, k=k, namespace=_namespace(base))).text

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=SEARCH_TOOL_NAME,
        description=SEARCH_TOOL_DESCRIPTION,
        args_schema=SearchBehaviorsArgs,
        handle_validation_error=_invalid,  # a wrong type is a message for the model, not an exception
    )


def _invalid(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"Invalid search: {exc}"
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors()]
    return "Invalid search: " + "; ".join(parts)
