"""``with_behaviors(chain, memory)`` (also ``memory.wrap(chain)``): behavior memory for any Runnable.

At wrap time a small ``inject_behaviors`` step is put before each chat model found in the chain
(inside sequences, bindings, parallel maps and fallbacks). Each call then fetches the block for the
input (the core's ``BlockFetcher``, with its time budget), hands it to those steps through
``config["configurable"]``, and adds a ``BehaviorTracer`` to the callbacks (the user's own
callbacks stay as they were), so the run is saved as one trace. Its id comes from
``memory.capture()``, as in every integration::

    chain = memory.wrap(prompt | llm)
    with memory.capture() as run:
        answer = chain.invoke({"question": "..."})
    memory.feedback(run.trace_id, outcome="success")

For ``create_agent`` agents use ``BehaviorMiddleware`` instead: it also records tool calls by task
and keeps the block fixed across the agent's model calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.runnables import (
    Runnable,
    RunnableBinding,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
    RunnableSequence,
    ensure_config,
)
from langchain_core.runnables.fallbacks import RunnableWithFallbacks

from ...errors import InvalidInputError
from ...injection.fetch import BlockFetcher
from ...memory import BehaviorMemory
from ...recording.namespaces import task_namespace
from ...types import Trace
from ._messages import task_text, with_block
from .tracer import BehaviorTracer

__all__ = ["BLOCK_KEY", "BehaviorRunnable", "inject_before_models", "with_behaviors"]

#: Key in ``config["configurable"]`` that carries the block to the ``inject_behaviors`` steps.
BLOCK_KEY = "bm_block"


def _messages_with_block(value: Any, block: str) -> Any:
    if hasattr(value, "to_messages"):
        messages: list[BaseMessage] = value.to_messages()
    elif isinstance(value, str):
        messages = [HumanMessage(value)]
    elif isinstance(value, Sequence):
        messages = convert_to_messages(value)
    else:  # not chat input: leave it to the model to complain as it would
        return value
    for i, message in enumerate(messages):
        if isinstance(message, SystemMessage):
            return [*messages[:i], with_block(message, block), *messages[i + 1 :]]
    return [SystemMessage(block), *messages]


def _inject(value: Any, config: RunnableConfig) -> Any:
    block = (config.get("configurable") or {}).get(BLOCK_KEY)
    return _messages_with_block(value, block) if block else value


async def _ainject(value: Any, config: RunnableConfig) -> Any:
    return _inject(value, config)


def _injector() -> Runnable[Any, Any]:
    return RunnableLambda(_inject, afunc=_ainject, name="inject_behaviors")


def _is_chat_model(runnable: Any) -> bool:
    return isinstance(runnable, BaseChatModel) or (
        isinstance(runnable, RunnableBinding) and isinstance(runnable.bound, BaseChatModel)
    )


def inject_before_models(runnable: Runnable[Any, Any]) -> tuple[Runnable[Any, Any], int]:
    """``runnable`` with an ``inject_behaviors`` step before each chat model, and how many were put."""
    if _is_chat_model(runnable):
        return _injector() | runnable, 1
    if isinstance(runnable, RunnableSequence):
        parts = [inject_before_models(step) for step in runnable.steps]
        count = sum(n for _, n in parts)
        return (RunnableSequence(*(step for step, _ in parts), name=runnable.name) if count else runnable), count
    if isinstance(runnable, RunnableBinding):
        inner, count = inject_before_models(runnable.bound)
        return (runnable.model_copy(update={"bound": inner}) if count else runnable), count
    if isinstance(runnable, RunnableParallel):
        branches = {key: inject_before_models(step) for key, step in runnable.steps__.items()}
        count = sum(n for _, n in branches.values())
        return (RunnableParallel({k: s for k, (s, _) in branches.items()}) if count else runnable), count
    if isinstance(runnable, RunnableWithFallbacks):
        first, count = inject_before_models(runnable.runnable)
        others = [inject_before_models(f) for f in runnable.fallbacks]
        count += sum(n for _, n in others)
        if not count:
            return runnable, 0
        return runnable.model_copy(update={"runnable": first, "fallbacks": [f for f, _ in others]}), count
    return runnable, 0


def _with_handler(callbacks: Any, handler: BaseCallbackHandler) -> Any:
    if callbacks is None:
        return [handler]
    if isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.add_handler(handler, inherit=True)
        return manager
    return [*callbacks, handler]


class BehaviorRunnable(Runnable[Any, Any]):
    """A Runnable with behaviors injected before its chat models and each call saved as a trace.

    Made by ``with_behaviors``; behaves like the chain it wraps (invoke, ainvoke, stream, astream,
    batch). Each call is one trace; ``memory.capture()`` around the call gives its id, and
    ``on_trace`` receives every saved trace.
    """

    def __init__(
        self,
        chain: Runnable[Any, Any],
        memory: BehaviorMemory,
        *,
        namespace: str | None = None,
        k: int | None = None,
        topic: str | None = None,
        token_budget: int | None = None,
        retrieval_timeout_s: float | None = 2.0,
        inject: bool = True,
        task_from: Callable[[Any], str] | None = None,
        on_trace: Callable[[Trace], None] | None = None,
        search_tool: bool = False,
    ) -> None:
        if search_tool:  # a built Runnable's tools are fixed: the tool goes in where the agent is made
            raise InvalidInputError(
                "search_tool=True needs an agent being built: use BehaviorMiddleware(memory, search_tool=True) "
                "with create_agent, or add search_behaviors_tool(memory) to the tools your chain binds"
            )
        self.chain = chain
        self.memory = memory
        self.namespace = namespace or memory.namespace
        self.topic = topic
        self.task_from = task_from or task_text
        self.on_trace = on_trace
        self.fetcher = BlockFetcher(memory, k=k, topic=topic, token_budget=token_budget, timeout_s=retrieval_timeout_s)
        self.bound, count = inject_before_models(chain) if inject else (chain, 0)
        if inject and not count:
            raise InvalidInputError(
                f"found no chat model in {type(chain).__name__} to put behaviors before: pass the chain that "
                "contains the model (prompt | llm), use inject=False to record traces only, or use "
                "BehaviorMiddleware for create_agent agents"
            )
        self.name = chain.get_name()

    @property
    def InputType(self) -> Any:
        return self.chain.InputType

    @property
    def OutputType(self) -> Any:
        return self.chain.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.chain.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.chain.get_output_schema(config)

    # --- one call ------------------------------------------------------------------------------------
    def _namespace(self, config: RunnableConfig) -> str:
        return task_namespace(self.namespace, config.get("metadata") or {})

    def _start(
        self,
        config: RunnableConfig | None,
        block: str,
        names: Sequence[str],
        query: str,
        namespace: str,
        status: str,
    ) -> tuple[RunnableConfig, BehaviorTracer]:
        config = ensure_config(config)
        tracer = BehaviorTracer(
            self.memory,
            namespace=namespace,
            namespace_from_metadata=False,
            task=query,
            shown=names,
            metadata={"retrieval": status, "wrapper": self.name},
            save=False,
            on_trace=self.on_trace,
        )
        patched: RunnableConfig = {
            **config,
            "callbacks": _with_handler(config.get("callbacks"), tracer),
            "configurable": {**(config.get("configurable") or {}), BLOCK_KEY: block},
        }
        return patched, tracer

    def _prepare(self, value: Any, config: RunnableConfig | None) -> tuple[RunnableConfig, BehaviorTracer]:
        config = ensure_config(config)
        query, namespace = self.task_from(value), self._namespace(config)
        fetched = self.fetcher.fetch(query, namespace)
        return self._start(config, str(fetched.block), fetched.block.names, query, namespace, fetched.status)

    async def _aprepare(self, value: Any, config: RunnableConfig | None) -> tuple[RunnableConfig, BehaviorTracer]:
        config = ensure_config(config)
        query, namespace = self.task_from(value), self._namespace(config)
        fetched = await self.fetcher.afetch(query, namespace)
        return self._start(config, str(fetched.block), fetched.block.names, query, namespace, fetched.status)

    @staticmethod
    def _finish(tracer: BehaviorTracer) -> None:
        tracer.save_ended()
        tracer.flush()  # the call is over: a run whose end never came (a stream left early) is abandoned

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        patched, tracer = self._prepare(input, config)
        try:
            return self.bound.invoke(input, patched, **kwargs)
        finally:
            self._finish(tracer)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        patched, tracer = await self._aprepare(input, config)
        try:
            return await self.bound.ainvoke(input, patched, **kwargs)
        finally:
            await asyncio.to_thread(self._finish, tracer)  # an SQLite write: keep it off the event loop

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        patched, tracer = self._prepare(input, config)
        try:
            yield from self.bound.stream(input, patched, **kwargs)
        finally:
            self._finish(tracer)

    async def astream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        patched, tracer = await self._aprepare(input, config)
        try:
            async for chunk in self.bound.astream(input, patched, **kwargs):
                yield chunk
        finally:
            await asyncio.to_thread(self._finish, tracer)


def with_behaviors(chain: Runnable[Any, Any], memory: BehaviorMemory, **options: Any) -> BehaviorRunnable:
    """``chain`` with behavior memory: see ``BehaviorRunnable`` for the options."""
    return BehaviorRunnable(chain, memory, **options)
