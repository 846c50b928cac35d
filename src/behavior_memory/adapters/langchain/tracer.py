"""``BehaviorTracer``: one LangChain root run becomes one ``Trace``.

A callback handler like LangSmith's tracer: add it to any Runnable's callbacks and every root run
(chain, agent graph, bare chat model) is saved as a trace with its model calls (messages, output,
usage, reasoning when the model kept it), tool calls (arguments, result, error), final answer and
outcome. It only reads events, so the user's own callbacks and LangSmith tracing see nothing new::

    chain.invoke(question, config={"callbacks": [BehaviorTracer(memory)]})

The trace id is the root run's id as a string (pass ``config={"run_id": ...}`` to choose it).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run

from ...memory import BehaviorMemory
from ...recording.namespaces import task_namespace
from ...recording.recorder import TraceRecorder
from ...types import Outcome, Trace
from ._messages import MessageLog, clip, output_text, reasoning_text, task_text, tool_outcome

__all__ = ["BehaviorTracer"]

log = logging.getLogger("behavior_memory.adapters.langchain")


def _first_line(error: str | None) -> str | None:
    return None if not error else clip(error.strip().splitlines()[0], 2000)


def _answer(outputs: Mapping[str, Any] | None) -> str | None:
    if not outputs:
        return None
    value: Any = outputs.get("output", outputs) if isinstance(outputs, Mapping) else outputs
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list) and value["messages"]:
        value = value["messages"][-1]
    if isinstance(value, BaseMessage):
        return output_text(value) or None
    if isinstance(value, str):
        return clip(value)
    return clip(str(value)) if value is not None else None


class BehaviorTracer(BaseTracer):
    """Saves each root run it sees as one ``Trace`` of ``memory`` (see the module docstring).

    ``namespace`` is the base namespace (default: the memory's); with ``namespace_from_metadata``
    a run's metadata ``namespace`` or ``user_id`` picks the task's namespace as in the middleware.
    ``task``, ``shown`` and ``metadata`` fix those fields (the wrapper sets them); otherwise the task
    is read from the root run's input. With ``save=False`` traces are built but left in
    ``self.traces`` for the caller to save. ``on_trace`` receives every saved trace.
    """

    name = "behavior_memory_tracer"
    run_inline = True  # in-memory bookkeeping only: no executor hop per event under asyncio

    def __init__(
        self,
        memory: BehaviorMemory,
        *,
        namespace: str | None = None,
        namespace_from_metadata: bool = True,
        task: str | None = None,
        shown: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        save: bool = True,
        on_trace: Callable[[Trace], None] | None = None,
    ) -> None:
        super().__init__(_schema_format="original+chat")
        self.memory = memory
        self.namespace = namespace or memory.namespace
        self.namespace_from_metadata = namespace_from_metadata
        self.task, self.shown, self.metadata = task, tuple(shown), dict(metadata or {})
        self.save, self.on_trace = save, on_trace
        self.traces: deque[Trace] = deque(maxlen=1000)  # built traces, newest last
        self._unsaved: dict[str, TraceRecorder] = {}
        self._sent: dict[UUID, list[BaseMessage]] = {}
        self._replies: dict[UUID, Any] = {}

    @property
    def last_trace_id(self) -> str | None:
        return self.traces[-1].id if self.traces else None

    # --- keep the message objects (the run tree holds serialized copies only) --------------------------
    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> Run:
        self._sent[run_id] = list(messages[0]) if messages else []
        return super().on_chat_model_start(serialized, messages, run_id=run_id, **kwargs)

    def _keep_reply(self, run_id: UUID, response: LLMResult | None) -> None:
        if response is not None and response.generations and response.generations[0]:
            first = response.generations[0][0]
            self._replies[run_id] = first.message if isinstance(first, ChatGeneration) else first.text

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> Run:
        self._keep_reply(run_id, response)
        return super().on_llm_end(response, run_id=run_id, **kwargs)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> Run:
        self._keep_reply(run_id, kwargs.get("response"))
        return super().on_llm_error(error, run_id=run_id, **kwargs)

    # --- run tree -> Trace ---------------------------------------------------------------------------
    def _walk(self, run: Run, out: list[Run]) -> None:
        for child in sorted(run.child_runs, key=lambda r: r.start_time):
            out.append(child)
            if child.run_type not in ("llm", "chat_model"):
                self._walk(child, out)

    def _model_step(self, trace_log: MessageLog, run: Run, recorder: TraceRecorder) -> None:
        sent: Sequence[Any] = self._sent.pop(run.id, [])
        records = (
            trace_log.new(sent)
            if sent
            else [{"role": "user", "content": clip(str(p))} for p in (run.inputs or {}).get("prompts", [])]
        )
        reply = self._replies.pop(run.id, None)
        if isinstance(reply, BaseMessage):
            trace_log.saw(reply)
            output, usage, reasoning = (
                output_text(reply),
                getattr(reply, "usage_metadata", None),
                reasoning_text(reply),
            )
        else:
            llm_output = (run.outputs or {}).get("llm_output") or {}
            output, usage, reasoning = reply, llm_output.get("token_usage"), None
        meta = run.extra.get("metadata") or {}
        params = run.extra.get("invocation_params") or {}
        recorder.model_call(
            messages=records,
            output=output,
            usage=usage,
            reasoning=reasoning,
            model=meta.get("ls_model_name") or params.get("model") or params.get("model_name"),
            latency_s=(run.end_time - run.start_time).total_seconds() if run.end_time else None,
            error=_first_line(run.error),
        )

    def _tool_step(self, run: Run, recorder: TraceRecorder) -> None:
        inputs = dict(run.inputs or {})
        result, failed = (None, None) if run.error else tool_outcome((run.outputs or {}).get("output"))
        recorder.tool_call(
            name=run.name,
            args=inputs,
            result=result,
            error=_first_line(run.error) or failed,
            latency_s=(run.end_time - run.start_time).total_seconds() if run.end_time else None,
        )

    def build(self, run: Run) -> Trace:
        """The ``Trace`` of one finished root run (not saved)."""
        meta = run.extra.get("metadata") or {}
        namespace = task_namespace(self.namespace, meta) if self.namespace_from_metadata else self.namespace
        task = self.task if self.task is not None else task_text(run.inputs)
        recorder = self.memory.trace(
            task=clip(task),
            namespace=namespace,
            hits=self.shown,
            metadata={"adapter": "langchain", "run_name": run.name, **self.metadata},
        )
        recorder.trace.id = str(run.id)
        trace_log = MessageLog()
        runs: list[Run] = [run] if run.run_type in ("llm", "chat_model") else []
        self._walk(run, runs)
        for item in runs:
            if item.run_type in ("llm", "chat_model"):
                self._model_step(trace_log, item, recorder)
            elif item.run_type == "tool":
                self._tool_step(item, recorder)
        failed = run.error is not None
        recorder.finish(
            answer=None if failed else _answer(run.outputs),
            outcome=Outcome.FAILURE if failed else Outcome.UNKNOWN,
        )
        if failed:
            recorder.trace.metadata["error"] = _first_line(run.error)
        if run.end_time:
            recorder.trace.metadata["duration_s"] = (run.end_time - run.start_time).total_seconds()
        self._unsaved[recorder.id] = recorder
        return recorder.trace

    def save_trace(self, trace: Trace) -> Trace:
        """Save a trace this tracer built (``save=False``); counters move and reflection is queued."""
        recorder = self._unsaved.pop(trace.id, None)
        if recorder is None:  # saved already
            return trace
        saved: Trace = recorder.save()
        if self.on_trace is not None:
            try:
                self.on_trace(saved)
            except Exception:
                log.warning("on_trace callback failed for trace %s", saved.id, exc_info=True)
        return saved

    def _persist_run(self, run: Run) -> None:
        try:
            trace = self.build(run)
            self.traces.append(trace)
            if self.save:
                self.save_trace(trace)
        except Exception:  # a tracer must never break the run it watches
            log.warning("could not record run %s as a trace", run.id, exc_info=True)
        finally:
            for run_id in [r.id for r in self._runs_of(run)]:
                self._sent.pop(run_id, None)
                self._replies.pop(run_id, None)

    def _runs_of(self, run: Run) -> list[Run]:
        found = [run]
        for child in run.child_runs:
            found.extend(self._runs_of(child))
        return found
