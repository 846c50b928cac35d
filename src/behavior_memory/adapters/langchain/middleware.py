"""``BehaviorMiddleware``: behavior memory inside a LangChain ``create_agent`` agent.

One agent invocation is one task. ``before_agent`` retrieves behaviors once, from the user's last
message, and keeps the rendered block in private state; ``wrap_model_call`` appends it to the system
message as a plain-string suffix, so every model call of the task sends a byte-identical prefix
(vLLM's prefix cache reuses it); model and tool calls are recorded into the task's trace;
``after_agent`` saves the trace (reflection then runs off the hot path) and the result carries its
id under ``bm_trace_id``::

    agent = create_agent(model, tools, middleware=[BehaviorMiddleware(memory)])
    result = agent.invoke({"messages": [("user", "What is 17 * 23?")]})
    memory.feedback(result["bm_trace_id"], outcome="success")
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain.agents.middleware.types import ExtendedModelResponse, OmitFromInput, PrivateStateAttr
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Command

from ...injection.fetch import BlockFetcher, Fetched
from ...memory import BehaviorMemory
from ...recording.namespaces import task_namespace
from ...recording.recorder import TraceRecorder
from ...types import Outcome, Trace
from ._messages import (
    MessageLog,
    clip,
    last_human_text,
    output_text,
    reasoning_text,
    tool_outcome,
    with_block,
)

__all__ = ["BehaviorMiddleware", "BehaviorState"]

log = logging.getLogger("behavior_memory.adapters.langchain")


class BehaviorState(AgentState[Any]):
    """The keys the middleware adds to the agent state."""

    bm_block: NotRequired[Annotated[str, PrivateStateAttr]]
    """The task's rendered behavior block (private: not in the agent's input or output)."""
    bm_trace_id: NotRequired[Annotated[str, OmitFromInput]]
    """Id of the task's trace, in the agent's result: ``memory.feedback(result["bm_trace_id"], ...)``."""


@dataclass
class _OpenTask:
    recorder: TraceRecorder
    started: float = field(default_factory=time.monotonic)
    touched: float = field(default_factory=time.monotonic)
    log: MessageLog = field(default_factory=MessageLog)


def _model_message(result: Any) -> AIMessage | None:
    if isinstance(result, ExtendedModelResponse):
        result = result.model_response
    if isinstance(result, AIMessage):
        return result
    if isinstance(result, ModelResponse):
        return next((m for m in result.result if isinstance(m, AIMessage)), None)
    return None


class BehaviorMiddleware(AgentMiddleware[BehaviorState, Any]):
    """Behavior memory for ``create_agent``: inject once per task, record every call, save the trace.

    ``namespace`` is the base namespace (default: the memory's). Per task, a runtime context (or
    config metadata) with ``namespace`` replaces it and one with ``user_id`` is appended to it.
    ``retrieval_timeout_s`` bounds retrieval; past it (or on any retrieval error) the task runs
    without behaviors and a WARNING is logged. ``record_messages="delta"`` records each message once
    per trace (long histories stay linear); ``"full"`` records every model call's whole input.
    A run that raises keeps its trace open (an outer retry continues it); ``flush()`` or the next task
    after ``abandon_after_s`` saves it as a failure. ``on_trace`` receives every saved trace.
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
    ) -> None:
        super().__init__()
        self.memory = memory
        self.namespace = namespace or memory.namespace
        self.topic = topic
        self.record_messages = record_messages
        self.abandon_after_s = abandon_after_s
        self.on_trace = on_trace
        self.fetcher = BlockFetcher(memory, k=k, topic=topic, token_budget=token_budget, timeout_s=retrieval_timeout_s)
        self.tools = []
        self._name = name or type(self).__name__
        self._open: dict[str, _OpenTask] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + abandon_after_s

    @property
    def name(self) -> str:
        return self._name

    # --- before_agent: retrieve once, open the trace ----------------------------------------------
    def _task_namespace(self, runtime: Runtime[Any]) -> str:
        metadata: Mapping[str, Any] = {}
        try:
            metadata = get_config().get("metadata") or {}
        except RuntimeError:  # outside a runnable context (a hook called by hand)
            pass
        return task_namespace(self.namespace, getattr(runtime, "context", None), metadata)

    def _open_task(self, query: str, namespace: str, fetched: Fetched) -> dict[str, Any]:
        recorder = self.memory.trace(
            task=query,
            namespace=namespace,
            topic=self.topic,
            hits=fetched.block.names,
            metadata={
                "adapter": "langchain",
                "retrieval": fetched.status,
                "retrieval_ms": round(fetched.seconds * 1000, 3),
                "block_tokens": fetched.block.tokens,
            },
        )
        self._sweep()
        with self._lock:
            self._open[recorder.id] = _OpenTask(recorder, log=MessageLog(full=self.record_messages == "full"))
        return {"bm_block": str(fetched.block), "bm_trace_id": recorder.id}

    def before_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        query = last_human_text(state["messages"])
        namespace = self._task_namespace(runtime)
        return self._open_task(query, namespace, self.fetcher.fetch(query, namespace))

    async def abefore_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        query = last_human_text(state["messages"])
        namespace = self._task_namespace(runtime)
        return self._open_task(query, namespace, await self.fetcher.afetch(query, namespace))

    # --- wrap_model_call: inject and record ---------------------------------------------------------
    def _task(self, state: Any) -> _OpenTask | None:
        trace_id = state.get("bm_trace_id") if isinstance(state, Mapping) else None
        task = self._open.get(trace_id) if trace_id else None
        if task is not None:
            task.touched = time.monotonic()
        return task

    @staticmethod
    def _inject(request: ModelRequest[Any]) -> ModelRequest[Any]:
        block = request.state.get("bm_block") if isinstance(request.state, Mapping) else None
        if not block:
            return request
        return request.override(system_message=with_block(request.system_message, str(block)))

    def _record_model(
        self,
        task: _OpenTask,
        request: ModelRequest[Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
    ) -> None:
        try:
            system = [request.system_message] if request.system_message is not None else []
            sent = task.log.new([*system, *request.messages])
            reply = _model_message(result)
            if reply is not None:
                task.log.saw(reply)
            metadata = getattr(reply, "response_metadata", None) or {}
            task.recorder.model_call(
                messages=sent,
                output=output_text(reply) if reply is not None else None,
                usage=getattr(reply, "usage_metadata", None),
                reasoning=reasoning_text(reply) if reply is not None else None,
                model=metadata.get("model_name") or getattr(request.model, "model_name", None),
                latency_s=round(seconds, 6),
                error=None if error is None else clip(f"{type(error).__name__}: {error}", 2000),
            )
        except Exception:  # recording must never change what the agent does
            log.warning("could not record a model call into trace %s", task.recorder.id, exc_info=True)

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
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
        self, task: _OpenTask, call: Mapping[str, Any], out: Any, error: BaseException | None, seconds: float
    ) -> None:
        try:
            result, failed = (None, clip(f"{type(error).__name__}: {error}", 2000)) if error else tool_outcome(out)
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
        trace_id = state.get("bm_trace_id") if isinstance(state, Mapping) else None
        with self._lock:
            task = self._open.pop(trace_id, None) if trace_id else None
        if task is None:
            return
        messages = state.get("messages") or []
        answer = next((output_text(m) for m in reversed(messages) if isinstance(m, AIMessage)), None)
        task.recorder.finish(answer=answer)
        self._save(task)

    def _save(self, task: _OpenTask) -> None:
        recorder = task.recorder
        recorder.trace.metadata["duration_s"] = round(time.monotonic() - task.started, 6)
        try:
            trace = recorder.save()
        except Exception:  # the agent's answer matters more than its trace
            log.error("could not save trace %s; the agent's result is unaffected", recorder.id, exc_info=True)
            return
        if self.on_trace is not None:
            try:
                self.on_trace(trace)
            except Exception:
                log.warning("on_trace callback failed for trace %s", trace.id, exc_info=True)

    def after_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._close(state)
        return None

    async def aafter_agent(self, state: BehaviorState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        await asyncio.to_thread(self._close, state)  # an SQLite write: keep it off the event loop
        return None

    # --- runs that never reached after_agent ---------------------------------------------------------
    def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(self.abandon_after_s, 60.0)
        self.flush(older_than_s=self.abandon_after_s)

    def flush(self, *, older_than_s: float = 0.0) -> list[str]:
        """Save the traces of runs that raised or stopped before ``after_agent``; returns their ids.

        Each is saved as a failure when a recorded call failed (else outcome unknown), with
        ``metadata["ended"] = "abandoned"``. Call it at shutdown, or after catching an agent's error.
        """
        cutoff = time.monotonic() - older_than_s
        with self._lock:
            stale = [tid for tid, task in self._open.items() if task.touched <= cutoff]
            tasks = [self._open.pop(tid) for tid in stale]
        for task in tasks:
            trace = task.recorder.trace
            trace.metadata["ended"] = "abandoned"
            errors = [s.error for s in trace.steps if s.error]
            if errors:
                trace.metadata.setdefault("error", errors[-1])
            task.recorder.finish(outcome=Outcome.FAILURE if errors else Outcome.UNKNOWN)
            self._save(task)
        return stale

    @property
    def open_traces(self) -> list[str]:
        """Ids of traces still being recorded (tasks under way, or runs that raised)."""
        return list(self._open)
