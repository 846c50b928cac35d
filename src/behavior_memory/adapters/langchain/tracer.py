"""``BehaviorTracer``: one LangChain root run becomes one ``Trace``.

A callback handler like LangSmith's tracer: add it to any Runnable's callbacks and every root run
(chain, agent graph, bare chat model) is saved as a trace with its model calls (messages, output,
usage, reasoning when the model kept it), tool calls (arguments, result, error), final answer and
outcome. It only reads events, so the user's own callbacks and LangSmith tracing see nothing new.

The tracer translates runs; the task lifecycle is the core's ``TaskRegistry``: a root run opens a
task when it starts (its trace id is the run's id as 32 hex digits) and closes it when it ends,
saving without ever raising into the run. Trace ids come from ``memory.capture()``, as in every
integration::

    with memory.capture() as run:
        chain.invoke(question, config={"callbacks": [BehaviorTracer(memory)]})
    memory.feedback(run.trace_id, outcome="success")
"""

from __future__ import annotations

import logging
import threading
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
from ...recording.tasks import TaskRegistry
from ...recording.text import clip, error_text
from ...types import Trace
from ._messages import MessageLog, output_text, reasoning_text, task_text, tool_outcome

__all__ = ["BehaviorTracer"]

log = logging.getLogger("behavior_memory.adapters.langchain")


def _answer(outputs: Mapping[str, Any] | None) -> str | None:
    if not outputs:
        return None
    value: Any = outputs.get("output", outputs) if isinstance(outputs, Mapping) else outputs
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list) and value["messages"]:
        value = value["messages"][-1]
    if isinstance(value, BaseMessage):
        return output_text(value) or None
    return str(value) if value is not None else None


def _seconds(run: Run) -> float | None:
    return (run.end_time - run.start_time).total_seconds() if run.end_time else None


class BehaviorTracer(BaseTracer):
    """Saves each root run it sees as one ``Trace`` of ``memory`` (see the module docstring).

    ``namespace`` is the base namespace (default: the memory's); with ``namespace_from_metadata``
    a run's metadata ``namespace`` or ``user_id`` picks the task's namespace as in the middleware.
    ``task``, ``shown`` and ``metadata`` fix those fields (the wrapper sets them); otherwise the task
    is read from the root run's input. With ``save=False`` a run's trace is kept when the run ends
    and saved by ``save_ended()`` (the wrapper calls it off the event loop). A root run whose end
    never came is saved as abandoned by ``flush()``, or after ``abandon_after_s`` when the next run
    starts. ``on_trace`` receives every saved trace.
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
        abandon_after_s: float = 3600.0,
        on_trace: Callable[[Trace], None] | None = None,
    ) -> None:
        super().__init__(_schema_format="original+chat")
        self.memory = memory
        self.namespace = namespace or memory.namespace
        self.namespace_from_metadata = namespace_from_metadata
        self.task, self.shown, self.metadata = task, tuple(shown), dict(metadata or {})
        self.save = save
        self.tasks = TaskRegistry(memory, adapter="langchain", abandon_after_s=abandon_after_s, on_trace=on_trace)
        self._ended: dict[str, dict[str, Any]] = {}  # trace id -> how to close it (save=False)
        self._lock = threading.Lock()
        self._sent: dict[UUID, list[BaseMessage]] = {}
        self._replies: dict[UUID, Any] = {}
        self._errors: dict[UUID, BaseException] = {}  # the exception itself: runs keep only its traceback text

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
        self._errors[run_id] = error
        return super().on_llm_error(error, run_id=run_id, **kwargs)

    def on_chain_error(
        self, error: BaseException, *, inputs: dict[str, Any] | None = None, run_id: UUID, **kwargs: Any
    ) -> Run:
        self._errors[run_id] = error
        return super().on_chain_error(error, inputs=inputs, run_id=run_id, **kwargs)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> Run:
        self._errors[run_id] = error
        return super().on_tool_error(error, run_id=run_id, **kwargs)

    def _error(self, run: Run) -> str | None:
        """The core's error text of a failed run (``TypeName: message``), else None."""
        if run.error is None:
            return None
        return error_text(self._errors.get(run.id) or run.error)

    # --- a root run opens its task ------------------------------------------------------------------
    def _on_run_create(self, run: Run) -> None:
        if run.parent_run_id is not None:  # BaseTracer makes a run whose parent it never saw a root
            return
        try:
            meta = run.extra.get("metadata") or {}
            self.tasks.open(
                clip(self.task if self.task is not None else task_text(run.inputs)),
                namespace=task_namespace(self.namespace, meta) if self.namespace_from_metadata else self.namespace,
                shown=self.shown,
                metadata={"run_name": run.name, **self.metadata},
                trace_id=run.id.hex,
                state={"log": MessageLog()},
            )
        except Exception:  # a tracer must never break the run it watches
            log.warning("could not start a trace for run %s", run.id, exc_info=True)

    # --- run tree -> steps ---------------------------------------------------------------------------
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
            output, usage, reasoning = output_text(reply), getattr(reply, "usage_metadata", None), reasoning_text(reply)
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
            latency_s=_seconds(run),
            error=self._error(run),
        )

    def _tool_step(self, run: Run, recorder: TraceRecorder) -> None:
        result, failed = (None, None) if run.error else tool_outcome((run.outputs or {}).get("output"))
        recorder.tool_call(
            name=run.name,
            args=dict(run.inputs or {}),
            result=result,
            error=self._error(run) or failed,
            latency_s=_seconds(run),
        )

    # --- a root run's end closes its task ------------------------------------------------------------
    def _persist_run(self, run: Run) -> None:
        trace_id = run.id.hex
        task = self.tasks.get(trace_id)  # None when its start failed, or the sweep saved it as abandoned
        error, seconds = self._error(run), _seconds(run)
        ending: dict[str, Any] = {"error": error, "metadata": None if seconds is None else {"duration_s": seconds}}
        try:
            if task is not None:
                runs: list[Run] = [run] if run.run_type in ("llm", "chat_model") else []
                self._walk(run, runs)
                for item in runs:
                    if item.run_type in ("llm", "chat_model"):
                        self._model_step(task.state["log"], item, task.recorder)
                    elif item.run_type == "tool":
                        self._tool_step(item, task.recorder)
                ending["answer"] = None if error is not None else _answer(run.outputs)
        except Exception:  # a tracer must never break the run it watches; save what was recorded
            log.warning("could not record run %s into its trace", run.id, exc_info=True)
        finally:
            for run_id in [r.id for r in self._runs_of(run)]:
                self._sent.pop(run_id, None)
                self._replies.pop(run_id, None)
                self._errors.pop(run_id, None)
        if task is None:
            return
        if self.save:
            self.tasks.close(trace_id, **ending)
        else:
            with self._lock:
                self._ended[trace_id] = ending

    def _runs_of(self, run: Run) -> list[Run]:
        found = [run]
        for child in run.child_runs:
            found.extend(self._runs_of(child))
        return found

    def save_ended(self) -> list[Trace]:
        """Save the traces of the runs that ended while ``save=False``; never raises."""
        with self._lock:
            ended, self._ended = self._ended, {}
        saved = (self.tasks.close(trace_id, **ending) for trace_id, ending in ended.items())
        return [trace for trace in saved if trace is not None]

    def flush(self, *, older_than_s: float = 0.0) -> list[str]:
        """Save the traces of root runs whose end never came, as abandoned; returns their ids."""
        return self.tasks.flush(older_than_s=older_than_s)

    @property
    def open_traces(self) -> list[str]:
        """Ids of traces still being recorded (root runs under way, or ended and not yet saved)."""
        return self.tasks.open_ids
