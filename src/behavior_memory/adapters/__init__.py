"""Framework adapters: the only code that imports LangChain or LlamaIndex.

Each adapter translates its framework's objects into the core's task lifecycle
(``behavior_memory.recording``) and block fetch (``behavior_memory.injection``); no lifecycle
rule lives here. ``wrap`` picks the adapter for an agent or chain by the framework it comes from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..memory import BehaviorMemory

__all__ = ["wrap"]


def wrap(target: Any, memory: BehaviorMemory, **options: Any) -> Any:
    """Give an existing agent or chain behavior memory, in one call.

    A LlamaIndex agent or workflow gets the behavior block and one trace per run
    (``adapters.llamaindex.wrap``); a LangChain Runnable gets the block before its chat models and
    each run saved as a trace (``adapters.langchain.with_behaviors``). Needs the matching extra.
    """
    roots = {cls.__module__.split(".")[0] for cls in type(target).__mro__}
    if roots & {"llama_index", "workflows"}:
        from .llamaindex import wrap as wrap_llamaindex

        return wrap_llamaindex(target, memory, **options)
    if roots & {"langchain", "langchain_core", "langgraph"}:
        from .langchain import with_behaviors

        return with_behaviors(target, memory, **options)
    raise InvalidInputError(
        f"wrap() takes a LangChain Runnable or a LlamaIndex agent or workflow, not {type(target).__name__}"
    )
