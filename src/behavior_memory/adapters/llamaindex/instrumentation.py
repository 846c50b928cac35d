"""Trace capture through LlamaIndex's instrumentation module: one ``Trace`` per workflow run.

``instrument(memory)`` adds one event handler and one span handler to the root dispatcher. They
group what a run does by its instrument tags, which the workflow runtime copies into every step:

- our tag ``behavior_memory.run`` when a run was started by ``wrap`` (or inside
  ``instrument_tags({RUN_TAG: key})`` after ``start_run``), else
- LlamaIndex's own ``llamaindex.run_id``, for agent runs nobody tagged (``record_untagged``).

Model calls come from ``LLMChatStartEvent``/``LLMChatEndEvent`` (messages, text, reasoning, usage),
tool calls from the spans of ``BaseTool.acall``/``call`` (arguments, result or error). This module
only translates: the task lifecycle is the core's ``TaskRegistry``. A run is a task opened when its
run span opens and closed (saved, never raising into the agent) when the span closes; a run whose
span never closes is saved as abandoned after ``abandon_after_s`` and dropped. The trace id of a
run comes from ``memory.capture()``, as in every integration.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.agent.workflow import AgentWorkflow
from llama_index.core.agent.workflow.base_agent import BaseWorkflowAgent
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.tools.types import BaseTool
from llama_index.core.workflow import StopEvent, Workflow
from llama_index_instrumentation import get_dispatcher
from llama_index_instrumentation.dispatcher import active_instrument_tags

from ...recording.recorder import TraceRecorder
from ...recording.tasks import OpenTask, TaskRegistry
from ...recording.text import error_text, json_safe
from ._handlers import (
    LLAMAINDEX_RUN_TAG,
    NAMESPACE_TAG,
    RUN_TAG,
    TOPIC_TAG,
    USER_TAG,
    BehaviorMemoryEventHandler,
    BehaviorMemorySpanHandler,
    run_key,
    tag_namespace,
)
from ._messages import (
    message_dict,
    message_text,
    response_model,
    response_output,
    response_reasoning,
    response_usage,
    user_input_text,
)

__all__ = [
    "NAMESPACE_TAG",
    "RUN_TAG",
    "TOPIC_TAG",
    "USER_TAG",
    "LlamaIndexInstrumentation",
    "instrument",
    "instrumentation_for",
    "run_key",
    "uninstrument",
]

log = logging.getLogger(__name__)

_INSTRUMENTS: dict[int, LlamaIndexInstrumentation] = {}
_INSTRUMENTS_LOCK = threading.Lock()


def _answer(result: Any) -> str | None:
    if isinstance(result, StopEvent):
        result = result.result
    if result is None:
        return None
    response = getattr(result, "response", None)  # AgentOutput
    return message_text(response) if response is not None else str(result)


@dataclass
class _Run:
    """The spans of one run, kept in its task's ``state`` (the registry owns the task itself)."""

    key: str
    run_span: str | None = None
    llm_starts: dict[str, float] = field(default_factory=dict)  # model-call span id -> perf_counter at start
    llm_spans: set[str] = field(default_factory=set)  # open spans of LLM methods
    nested_llm: set[str] = field(default_factory=set)  # LLM spans inside a started call (wrapper LLM, chat->complete)
    tools: dict[str, tuple[str, Any, float]] = field(default_factory=dict)  # span id -> call


def _run(task: OpenTask) -> _Run:
    run: _Run = task.state["run"]
    return run


class LlamaIndexInstrumentation:
    """The handlers ``instrument(memory)`` registered, and the runs they are recording (``tasks``)."""

    def __init__(self, memory: Any, *, record_untagged: bool = True, abandon_after_s: float = 3600.0) -> None:
        self.memory = memory
        self.record_untagged = record_untagged
        self.tasks = TaskRegistry(memory, adapter="llamaindex", abandon_after_s=abandon_after_s)
        self._keys: dict[str, str] = {}  # run key -> trace id of its open task
        self._spans: dict[str, str] = {}  # open LLM/tool/run span id -> trace id
        self._lock = threading.Lock()
        self.event_handler = BehaviorMemoryEventHandler.for_observer(self)
        self.span_handler = BehaviorMemorySpanHandler.for_observer(self)

    # --- runs ---------------------------------------------------------------------------------
    def start_run(
        self,
        key: str,
        task: str,
        *,
        namespace: str | None = None,
        topic: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Begin recording the run whose events carry ``{RUN_TAG: key}``; returns its trace id."""
        opened = self.tasks.open(task, namespace=namespace, topic=topic, metadata=metadata, state={"run": _Run(key)})
        with self._lock:
            self._keys[key] = opened.trace_id
            self._prune()
        return opened.trace_id

    def discard_run(self, key: str) -> None:
        """Forget a run that never started (nothing is saved)."""
        with self._lock:
            trace_id = self._keys.pop(key, None)
            self._prune()
        if trace_id is not None:
            self.tasks.discard(trace_id)

    def flush(self, *, older_than_s: float = 0.0) -> list[str]:
        """Save the runs idle for ``older_than_s`` seconds as abandoned (see ``TaskRegistry.flush``)."""
        saved = self.tasks.flush(older_than_s=older_than_s)
        with self._lock:
            self._prune()
        return saved

    @property
    def open_runs(self) -> int:
        """Runs being recorded (a run swept as abandoned no longer counts)."""
        return len(self.tasks.open_ids)

    def current_run(self) -> TraceRecorder | None:
        """The recorder of the run the calling code belongs to (by the active instrument tags)."""
        task = self._task(run_key(active_instrument_tags.get()))
        return task.recorder if task is not None else None

    def _task(self, key: str | None) -> OpenTask | None:
        """The open task of a run key (and note that the run is alive, so the sweep spares it)."""
        return self.tasks.get(self._keys.get(key)) if key else None

    def _prune(self) -> None:
        """Drop keys and spans of tasks the registry no longer holds (swept); the caller holds the lock."""
        alive = set(self.tasks.open_ids)
        for mapping in (self._keys, self._spans):
            for name in [n for n, tid in mapping.items() if tid not in alive]:
                del mapping[name]

    def _finish(self, task: OpenTask, result: Any, err: BaseException | None) -> None:
        run = _run(task)
        with self._lock:
            if self._keys.get(run.key) != task.trace_id:
                return  # already finished
            del self._keys[run.key]
            for span_id in [s for s, tid in self._spans.items() if tid == task.trace_id]:
                del self._spans[span_id]
        trace = task.recorder.trace
        if not trace.steps and not trace.task.strip():
            # Nothing asked and nothing done (an empty message the agent refused): nothing to learn.
            log.debug("LlamaIndex run %s had no task and no calls; no trace saved", run.key)
            self.tasks.discard(task.trace_id)
            return
        self.tasks.close(task.trace_id, answer=None if err is not None else _answer(result), error=err)

    # --- spans --------------------------------------------------------------------------------
    def on_span_enter(
        self, id_: str, bound_args: Any, instance: Any, parent_id: str | None, tags: dict[str, Any] | None
    ) -> SimpleSpan | None:
        """Open a span worth keeping: a run span, a tool call, or an LLM call inside a recorded run."""
        task: OpenTask | None
        if isinstance(instance, Workflow):
            if not id_.startswith(f"{type(instance).__name__}.run-"):
                return None
            # The runtime opens the run span without passing tags; the context holds them.
            task = self._task_for_run_span(id_, bound_args, instance, tags or active_instrument_tags.get())
        elif isinstance(instance, BaseLLM):
            task = self._task(run_key(tags or active_instrument_tags.get()))
            if task is None:
                return None
            run = _run(task)
            with self._lock:
                if parent_id is not None and (parent_id in run.llm_starts or parent_id in run.nested_llm):
                    run.nested_llm.add(id_)  # its events repeat the outer call's; record the outer only
                else:
                    run.llm_spans.add(id_)
                self._spans[id_] = task.trace_id
        elif isinstance(instance, BaseTool):
            if not (
                id_.startswith(f"{type(instance).__name__}.acall-")
                or id_.startswith(f"{type(instance).__name__}.call-")
            ):
                return None
            task = self._task(run_key(tags or active_instrument_tags.get()))
            if task is None or (parent_id is not None and parent_id in _run(task).tools):
                return None  # not ours, or a tool called by a tool we already record
            arguments = dict(getattr(bound_args, "arguments", {}) or {})
            args = dict(arguments.get("kwargs") or {})
            if arguments.get("args"):
                args["args"] = list(arguments["args"])
            name = instance.metadata.get_name()
            with self._lock:
                _run(task).tools[id_] = (name, json_safe(args), time.perf_counter())
                self._spans[id_] = task.trace_id
        else:
            return None
        return SimpleSpan(id_=id_, parent_id=parent_id, tags=dict(tags or {})) if task is not None else None

    def _task_for_run_span(self, id_: str, bound_args: Any, workflow: Any, tags: dict[str, Any]) -> OpenTask | None:
        ours = tags.get(RUN_TAG)
        llama_run = str(tags.get(LLAMAINDEX_RUN_TAG) or "")
        task: OpenTask | None = None
        if ours:
            task = self._task(str(ours))
            if task is None or _run(task).run_span is not None:
                return None  # another memory's run, or a workflow nested in one we record
        elif (
            not (self.record_untagged and isinstance(workflow, BaseWorkflowAgent | AgentWorkflow))
            or not llama_run
            or llama_run in self._keys
        ):
            return None
        if task is None:  # an untagged agent run: record it under LlamaIndex's run id
            start = dict(getattr(bound_args, "arguments", {}) or {}).get("start_event")
            self.start_run(
                llama_run,
                user_input_text(_field(start, "user_msg"), _field(start, "chat_history")),
                namespace=tag_namespace(self.memory.namespace, tags),
                topic=tags.get(TOPIC_TAG),
                metadata={"workflow": type(workflow).__name__},
            )
            task = self._task(llama_run)
            if task is None:
                return None
        with self._lock:
            _run(task).run_span = id_
            self._spans[id_] = task.trace_id
            if llama_run:
                task.recorder.trace.metadata.setdefault("llamaindex_run_id", llama_run)
        return task

    def on_span_exit(self, id_: str, result: Any, err: BaseException | None) -> None:
        """Close a kept span: save the run, record the tool call, or record a model call that raised."""
        task = self.tasks.get(self._spans.get(id_))
        if task is None:
            self._spans.pop(id_, None)
            return
        run = _run(task)
        if id_ == run.run_span:
            self._finish(task, result, err)
        elif id_ in run.llm_spans or id_ in run.nested_llm:
            with self._lock:
                run.llm_spans.discard(id_)
                run.nested_llm.discard(id_)
                if id_ not in run.llm_starts:  # a streaming call's events come after its span closed
                    self._spans.pop(id_, None)
            if err is not None and id_ in run.llm_starts:  # a non-streaming model call raised
                self._model_call(task, id_, [], None, err)
        elif id_ in run.tools:
            with self._lock:
                name, args, started = run.tools.pop(id_)
                self._spans.pop(id_, None)
            output = getattr(result, "content", result)
            error = error_text(err)
            if error is None and getattr(result, "is_error", False):
                error = str(output)
            task.recorder.tool_call(
                name=name,
                args=args,
                result=None if error else output,
                error=error,
                latency_s=round(time.perf_counter() - started, 6),
            )

    # --- events -------------------------------------------------------------------------------
    def on_event(self, event: BaseEvent) -> None:
        """Record model calls from the LLM start/end/exception events of a recorded run."""
        task = self._task(run_key(event.tags))
        if task is None:
            return
        run = _run(task)
        span_id = event.span_id or event.id_
        if isinstance(event, LLMChatStartEvent | LLMCompletionStartEvent):
            if span_id in run.nested_llm:
                return
            with self._lock:
                run.llm_starts[span_id] = time.perf_counter()
                self._spans[span_id] = task.trace_id
        elif isinstance(event, LLMChatEndEvent):
            self._model_call(task, span_id, event.messages, event.response, None)
        elif isinstance(event, LLMCompletionEndEvent):
            if span_id in run.llm_starts:
                self._model_call(
                    task,
                    span_id,
                    [{"role": "user", "content": event.prompt}],
                    event.response,
                    None,
                    text=event.response.text,
                )
        elif isinstance(event, ExceptionEvent) and span_id in run.llm_starts:  # a streaming call raised
            self._model_call(task, span_id, [], None, event.exception)

    def _model_call(
        self,
        task: OpenTask,
        span_id: str,
        messages: Any,
        response: Any,
        err: BaseException | None,
        text: str | None = None,
    ) -> None:
        with self._lock:
            start = _run(task).llm_starts.pop(span_id, None)
            self._spans.pop(span_id, None)
        if start is None:
            return  # already recorded (an error reported twice, or a completion inside a chat call)
        chat = response if hasattr(response, "message") else None
        task.recorder.model_call(
            messages=[message_dict(m) for m in messages or ()],
            output=text if text is not None else (response_output(chat) if chat is not None else None),
            usage=response_usage(response) if response is not None else None,
            reasoning=response_reasoning(chat),
            model=response_model(response),
            latency_s=round(time.perf_counter() - start, 6),
            error=error_text(err),
        )


def _field(event: Any, name: str) -> Any:
    if event is None:
        return None
    getter = getattr(event, "get", None)
    if callable(getter):
        try:
            return getter(name, None)
        except Exception:
            return None
    return getattr(event, name, None)


def instrument(
    memory: Any, *, record_untagged: bool = True, abandon_after_s: float | None = None
) -> LlamaIndexInstrumentation:
    """Record every LlamaIndex agent run as a trace of ``memory`` (idempotent per memory).

    Runs started through ``wrap`` are always recorded; other agent runs (``FunctionAgent``,
    ``ReActAgent``, ``AgentWorkflow``) are too unless ``record_untagged=False``. Put
    ``{USER_TAG: "alice"}`` (namespace: the memory's plus ``/alice``), ``{NAMESPACE_TAG: ...}`` or
    ``{TOPIC_TAG: ...}`` in ``instrument_tags`` around ``agent.run`` to file an untagged run
    elsewhere. A run whose span never closes is saved as abandoned ``abandon_after_s`` (default an
    hour) after its last event; set it on the first call.
    """
    with _INSTRUMENTS_LOCK:
        existing = _INSTRUMENTS.get(id(memory))
        if existing is not None and existing.memory is memory:
            existing.record_untagged = record_untagged
            return existing
        instrumentation = LlamaIndexInstrumentation(
            memory,
            record_untagged=record_untagged,
            abandon_after_s=3600.0 if abandon_after_s is None else abandon_after_s,
        )
        dispatcher = get_dispatcher()
        dispatcher.add_event_handler(instrumentation.event_handler)
        dispatcher.add_span_handler(instrumentation.span_handler)
        _INSTRUMENTS[id(memory)] = instrumentation
        return instrumentation


def uninstrument(memory: Any) -> None:
    """Remove ``memory``'s handlers from the root dispatcher; runs still open are saved as abandoned."""
    with _INSTRUMENTS_LOCK:
        instrumentation = _INSTRUMENTS.pop(id(memory), None)
    if instrumentation is None:
        return
    dispatcher = get_dispatcher()
    dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not instrumentation.event_handler]
    dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not instrumentation.span_handler]
    instrumentation.flush()


def instrumentation_for(memory: Any) -> LlamaIndexInstrumentation | None:
    """The instrumentation ``instrument(memory)`` registered, if any."""
    found = _INSTRUMENTS.get(id(memory))
    return found if found is not None and found.memory is memory else None
