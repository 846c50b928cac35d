"""``BehaviorMiddleware``: behavior memory inside a LangChain ``create_agent`` agent.

One agent invocation is one task. ``before_agent`` retrieves behaviors once, from the user's last
message, and keeps the rendered block in private state; ``wrap_model_call`` appends it to the system
message as a plain-string suffix, so every model call of the task sends a byte-identical prefix
(vLLM's prefix cache reuses it); model and tool calls are recorded into the task's trace;
``after_agent`` saves the trace (reflection then runs off the hot path).

The middleware only translates hooks: the task lifecycle (open, find, save without raising, sweep
the abandoned), the block fetch with its time budget and the namespace rule are the core's. The
trace id of a run comes from ``memory.capture()``, as in every integration::

    agent = create_agent(model, tools, middleware=[BehaviorMiddleware(memory)])
    with memory.capture() as run:
        agent.invoke({"messages": [("user", "What is 17 * 23?")]})
    memory.feedback(run.trace_id, outcome="success")
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain.agents.middleware.types import ExtendedModelResponse, PrivateStateAttr
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Command

from ...injection.fetch import BlockFetcher, Fetched
from ...memory import BehaviorMemory
from ...recording.namespaces import task_namespace
from ...recording.tasks import OpenTask, TaskRegistry
from ...recording.text import error_text
from ...types import Trace
from ._messages import MessageLog, last_human_text, output_text, reasoning_text, tool_outcome, with_block

__all__ = ["BehaviorMiddleware", "BehaviorState"]

log = logging.getLogger("behavior_memory.adapters.langchain")


class BehaviorState(AgentState[Any]):
    """The keys the middleware adds to the agent state (both private: not in the input or output)."""

    bm_block: NotRequired[Annotated[str, PrivateStateAttr]]
    """The task's rendered behavior block."""
    bm_trace_id: NotRequired[Annotated[str, PrivateStateAttr]]
    """Id of the task's trace, so each hook finds its task; users get it from ``memory.capture()``."""


def _model_message(result: Any) -> AIMessage | None:
    if isinstance(result, ExtendedModelResponse):
        result = result.model_response
    if isinstance(result, AIMessage):
        return result
    if isinstance(result, ModelResponse):
        return next((m for m in result.result if isinstance(m, AIMessage)), None)
    return None


def _log(task: OpenTask) -> MessageLog:
    found: MessageLog = task.state["log"]
    return found


class BehaviorMiddleware(AgentMiddleware[BehaviorState, Any]):
    """Behavior memory for ``create_agent``: inject once per task, record every call, save the trace.

    ``namespace`` is the base namespace (default: the memory's). Per task, a runtime context (or
    config metadata) with ``namespace`` replaces it and one with ``user_id`` is appended to it.
    ``retrieval_timeout_s`` bounds retrieval; past it (or on any retrieval error) the task runs
    without behaviors and a WARNING is logged. ``record_messages="delta"`` records each message once
    per trace (long histories stay linear); ``"full"`` records every model call's whole input.
    A run that raises keeps its trace open (an outer retry continues it); ``flush()`` or the next task
    after ``abandon_after_s`` saves it as a failure. ``on_trace`` receives every saved trace.
    Trace ids come from ``memory.capture()``. ``search_tool=True`` also gives the agent the
    ``search_behaviors`` tool, to search the handbook mid-task; what it returns counts as shown.
    """

    state_schema = BehaviorState

    def __init__(
        self,
        memory: BehaviorMemory,
        *,
        namespace: str | None = None,
        k: int | None = None,
        topic: str | None = None,
        token_budget: int | None = None,
        retrieval_timeout_s: float | None = 2.0,
        record_messages: Literal["delta", "full"] = "delta",
        abandon_after_s: float = 3600.0,
        on_trace: Callable[[Trace], None] | None = None,
        name: str | None = None,
        search_tool: bool = False,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.namespace = namespace or memory.namespace
        self.topic = topic
        self.record_messages = record_messages
        self.tasks = TaskRegistry(memory, adapter="langchain", abandon_after_s=abandon_after_s, on_trace=on_trace)
        self.fetcher = BlockFetcher(memory, k=k, topic=topic, token_budget=token_budget, timeout_s=retrieval_timeout_s)
        self.tools = []
        if search_tool:  # the agent may also search the handbook mid-task (search_tool.py)
            from .search_tool import search_behaviors_tool

            self.tools = [search_behaviors_tool(memory, namespace=namespace, k=k, topic=topic)]
        self._name = name or type(self).__name__
        self._adopted = False  # reflection.llm: agent: the agent's model was handed over

    @property
    def name(self) -> str:
        return self._name

    # --- before_agent: retrieve once, open the task ---------------------------------------------
    def _task_namespace(self, runtime: Runtime[Any]) -> str:
        metadata: Mapping[str, Any] = {}
        try:
            metadata = get_config().get("metadata") or {}
        except RuntimeError:  # outside a runnable context (a hook called by hand)
            pass
        return task_namespace(self.namespace, getattr(runtime, "context", None), metadata)

    def _open_task(self, query: str, namespace: str, fetched: Fetched) -> dict[str, Any]:
        opened = self.tasks.open(
            query,
            namespace=namespace,
            topic=self.topic,
            shown=fetched.block.names,
            metadata={
                "retrieval": fetched.status,
                "retrieval_ms": round(fetched.seconds * 1000, 3),
                "block_tokens": fetched.block.tokens,
            },
            state={"log": MessageLog(full=self.record_messages == "full")},
        )
        return {"bm_block": str(fetched.block), "bm_trace_id": opened.trace_id}

    def before_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        query = last_human_text(state["messages"])
        namespace = self._task_namespace(runtime)
        return self._open_task(query, namespace, self.fetcher.fetch(query, namespace))

    async def abefore_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        query = last_human_text(state["messages"])
        namespace = self._task_namespace(runtime)
        return self._open_task(query, namespace, await self.fetcher.afetch(query, namespace))

    # --- wrap_model_call: inject and record ---------------------------------------------------------
    def _task(self, state: Any) -> OpenTask | None:
        return self.tasks.get(state.get("bm_trace_id") if isinstance(state, Mapping) else None)

    @staticmethod
    def _inject(request: ModelRequest[Any]) -> ModelRequest[Any]:
        block = request.state.get("bm_block") if isinstance(request.state, Mapping) else None
        if not block:
            return request
        return request.override(system_message=with_block(request.system_message, str(block)))

    def _record_model(
        self,
        task: OpenTask,
        request: ModelRequest[Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
    ) -> None:
        try:
            system = [request.system_message] if request.system_message is not None else []
            sent = _log(task).new([*system, *request.messages])
            reply = _model_message(result)
            if reply is not None:
                _log(task).saw(reply)
            metadata = getattr(reply, "response_metadata", None) or {}
            task.recorder.model_call(
                messages=sent,
                output=output_text(reply) if reply is not None else None,
                usage=getattr(reply, "usage_metadata", None),
                reasoning=reasoning_text(reply) if reply is not None else None,
                model=metadata.get("model_name") or getattr(request.model, "model_name", None),
                latency_s=round(seconds, 6),
                error=error_text(error),
            )
        except Exception:  # recording must never change what the agent does
            log.warning("could not record a model call into trace %s", task.recorder.id, exc_info=True)

    def _adopt(self, request: ModelRequest[Any]) -> None:
        """With ``reflection.llm: agent``, hand the agent's model to the memory for reflection (once)."""
        if self._adopted or self.memory.config.reflection.llm != "agent":
            return
        self._adopted = True
        from langchain_core.language_models import BaseChatModel

        if isinstance(request.model, BaseChatModel):
            from .agent_model import LangChainAgentModel

            self.memory.use_agent_model(LangChainAgentModel(request.model))

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        self._adopt(request)
        request = self._inject(request)
        task = self._task(request.state)
        if task is None:
            return handler(request)
        started = time.perf_counter()
        try:
            result = handler(request)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            self._record_model(task, request, None, exc, time.perf_counter() - started)
            raise
        self._record_model(task, request, result, None, time.perf_counter() - started)
        return result

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        self._adopt(request)
        request = self._inject(request)
        task = self._task(request.state)
        if task is None:
            return await handler(request)
        started = time.perf_counter()
        try:
            result = await handler(request)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            self._record_model(task, request, None, exc, time.perf_counter() - started)
            raise
        self._record_model(task, request, result, None, time.perf_counter() - started)
        return result

    # --- wrap_tool_call: record ----------------------------------------------------------------------
    def _record_tool(
        self, task: OpenTask, call: Mapping[str, Any], out: Any, error: BaseException | None, seconds: float
    ) -> None:
        try:
            result, failed = (None, error_text(error)) if error else tool_outcome(out)
            task.recorder.tool_call(
                name=str(call.get("name")),
                args=dict(call.get("args") or {}),
                result=result,
                error=failed,
                latency_s=round(seconds, 6),
            )
        except Exception:
            log.warning("could not record a tool call into trace %s", task.recorder.id, exc_info=True)

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], ToolMessage | Command[Any]]) -> Any:
        task = self._task(request.state)
        if task is None:
            return handler(request)
        started = time.perf_counter()
        try:
            out = handler(request)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            self._record_tool(task, request.tool_call, None, exc, time.perf_counter() - started)
            raise
        self._record_tool(task, request.tool_call, out, None, time.perf_counter() - started)
        return out

    async def awrap_tool_call(
        self, request: Any, handler: Callable[[Any], Awaitable[ToolMessage | Command[Any]]]
    ) -> Any:
        task = self._task(request.state)
        if task is None:
            return await handler(request)
        started = time.perf_counter()
        try:
            out = await handler(request)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            self._record_tool(task, request.tool_call, None, exc, time.perf_counter() - started)
            raise
        self._record_tool(task, request.tool_call, out, None, time.perf_counter() - started)
        return out

    # --- after_agent: save ---------------------------------------------------------------------------
    def _close(self, state: Any) -> None:
        if not isinstance(state, Mapping):
            return
        messages = state.get("messages") or []
        answer = next((output_text(m) for m in reversed(messages) if isinstance(m, AIMessage)), None)
        self.tasks.close(state.get("bm_trace_id"), answer=answer)

    def after_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._close(state)
        return None

    async def aafter_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        await asyncio.to_thread(self._close, state)  # an SQLite write: keep it off the event loop
        return None

    # --- runs that never reached after_agent ---------------------------------------------------------
    def flush(self, *, older_than_s: float = 0.0) -> list[str]:
        """Save the traces of runs that raised or stopped before ``after_agent``; returns their ids.

        See ``TaskRegistry.flush``: each is a failure when a recorded call failed (else outcome
        unknown), with ``metadata["ended"] = "abandoned"``. Call it at shutdown, or after catching
        an agent's error.
        """
        return self.tasks.flush(older_than_s=older_than_s)

    @property
    def open_traces(self) -> list[str]:
        """Ids of traces still being recorded (tasks under way, or runs that raised)."""
        return self.tasks.open_ids
