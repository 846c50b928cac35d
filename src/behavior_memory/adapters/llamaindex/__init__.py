"""LlamaIndex adapter: behavior memory for FunctionAgent, ReActAgent and AgentWorkflow.

Install with ``pip install "behavior-memory[llamaindex]"``. Two ways in::

    from llama_index.core.memory import Memory
    from behavior_memory.adapters.llamaindex import BehaviorMemoryBlock, instrument, wrap

    instrument(memory)                      # every agent run -> one trace (instrumentation module)
    chat_memory = Memory.from_defaults(session_id="s1", memory_blocks=[BehaviorMemoryBlock(memory)])
    await agent.run("...", memory=chat_memory)

    agent = wrap(agent, memory)             # or both at once, per run, for an existing agent
    with memory.capture() as run:           # the one way to a run's trace id, in every integration
        handler = agent.run("...")
    await handler
    memory.feedback(run.trace_id, outcome="success")

``Memory.from_defaults`` compiles its jinja block template on every step (about 13 ms here): pass
``memory_blocks_template=FAST_MEMORY_BLOCKS_TEMPLATE`` (same bytes), or build the memory with
``behavior_chat_memory(block)`` (also keeps history in process instead of SQLite), as ``wrap`` does.

Also ``LlamaIndexBehaviorRetriever`` (behaviors as ``TextNode``s) and ``BehaviorNodePostprocessor``
(relevance floor, status filter, token budget). The task lifecycle (open runs, the abandoned-run
sweep, saving, clipping, namespaces, the block's time budget) is the core's; this package only
translates LlamaIndex objects into it. It is the only module tree that imports LlamaIndex;
``import behavior_memory`` never does.
"""

from __future__ import annotations

from ..._optional import require

# Fail here, with the pip command, before the submodules fail with a bare ImportError.
for _module in ("llama_index.core", "llama_index_instrumentation"):
    require(_module, "llamaindex", what="behavior_memory.adapters.llamaindex")

from .agent import BehaviorMemoryAgent, choose_insert_method, wrap
from .block import BehaviorMemoryBlock
from .chat_store import FAST_MEMORY_BLOCKS_TEMPLATE, InProcessChatStore, behavior_chat_memory
from .instrumentation import (
    NAMESPACE_TAG,
    RUN_TAG,
    TOPIC_TAG,
    USER_TAG,
    LlamaIndexInstrumentation,
    instrument,
    instrumentation_for,
    uninstrument,
)
from .retriever import BehaviorNodePostprocessor, LlamaIndexBehaviorRetriever, behavior_node
from .search_tool import search_behaviors_tool

__all__ = [
    "FAST_MEMORY_BLOCKS_TEMPLATE",
    "NAMESPACE_TAG",
    "RUN_TAG",
    "TOPIC_TAG",
    "USER_TAG",
    "BehaviorMemoryAgent",
    "BehaviorMemoryBlock",
    "BehaviorNodePostprocessor",
    "InProcessChatStore",
    "LlamaIndexBehaviorRetriever",
    "LlamaIndexInstrumentation",
    "behavior_chat_memory",
    "behavior_node",
    "choose_insert_method",
    "instrument",
    "instrumentation_for",
    "search_behaviors_tool",
    "uninstrument",
    "wrap",
]
