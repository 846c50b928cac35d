"""LangChain adapter: behavior memory for ``create_agent`` agents, any Runnable, and RAG chains.

Needs the ``[langchain]`` extra (``pip install "behavior-memory[langchain]"``)::

    from behavior_memory.adapters.langchain import BehaviorMiddleware

    agent = create_agent(model, tools, system_prompt="...", middleware=[BehaviorMiddleware(memory)])
    with memory.capture() as run:           # the one way to a run's trace id, in every integration
        agent.invoke({"messages": [("user", "...")]})   # behaviors injected, trace saved
    memory.feedback(run.trace_id, outcome="success")

- ``BehaviorMiddleware``: retrieve once per task, inject into the system message, record every
  model and tool call, save the trace.
- ``with_behaviors(chain, memory)`` / ``memory.wrap(chain)``: the same for any Runnable.
- ``BehaviorTracer``: record runs as traces without injecting anything.
- ``BehaviorRetriever``: the handbook as a ``BaseRetriever``.
- ``search_behaviors_tool(memory)``: the handbook as a tool to search mid-task
  (``BehaviorMiddleware(memory, search_tool=True)`` adds it for you).

Namespaces per task come from the runtime context (``context_schema`` with ``namespace`` or
``user_id``) or from ``config["metadata"]`` (the same keys), by the core's ``task_namespace`` rule.
The adapter only translates LangChain objects: the task lifecycle, block fetch, text rules and
trace ids are the core's, shared with every integration.
"""

from __future__ import annotations

from ..._optional import require

# Fail here, with the pip command, before the submodules fail with a bare ImportError.
for _module in ("langchain_core", "langchain.agents", "langgraph"):
    require(_module, "langchain", what="behavior_memory.adapters.langchain")

from .middleware import BehaviorMiddleware, BehaviorState
from .retriever import BehaviorRetriever, behavior_document
from .runnable import BehaviorRunnable, with_behaviors
from .search_tool import search_behaviors_tool
from .tracer import BehaviorTracer

__all__ = [
    "BehaviorMiddleware",
    "BehaviorRetriever",
    "BehaviorRunnable",
    "BehaviorState",
    "BehaviorTracer",
    "behavior_document",
    "search_behaviors_tool",
    "with_behaviors",
]
