"""Trace capture through LlamaIndex's instrumentation module: one ``Trace`` per workflow run.

``instrument(memory)`` adds one event handler and one span handler to the root dispatcher. They
group what a run does by its instrument tags, which the workflow runtime copies into every step:

- our tag ``behavior_memory.run`` when a run was started by ``wrap`` (or inside
  ``instrument_tags({RUN_TAG: key})`` after ``start_run``), else
- LlamaIndex's own ``llamaindex.run_id``, for agent runs nobody tagged (``record_untagged``).

Model calls come from ``LLMChatStartEvent``/``LLMChatEndEvent`` (messages, text, reasoning, usage),
tool calls from the spans of ``BaseTool.acall``/``call`` (arguments, result or error). When the
run's span closes, the trace is saved and queued for reflection. Handlers never raise into the
agent: the dispatcher swallows errors, so ours are logged here instead of vanishing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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
from ...types import Outcome
from ._handlers import (
    LLAMAINDEX_RUN_TAG,
    NAMESPACE_TAG,
    RUN_TAG,
    TOPIC_TAG,
    BehaviorMemoryEventHandler,
    BehaviorMemorySpanHandler,
    run_key,
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
    "LlamaIndexInstrumentation",
    "instrument",
    "instrumentation_for",
    "run_key",
    "uninstrument",
]

log = logging.getLogger(__name__)

_INSTRUMENTS: dict[int, LlamaIndexInstrumentation] = {}
_INSTRUMENTS_LOCK = threading.Lock()


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)[:2000]


def _answer(result: Any) -> str | None:
    if isinstance(result, StopEvent):
        result = result.result
    if result is None:
        return None
    response = getattr(result, "response", None)  # AgentOutput
    text = message_text(response) if response is not None else str(result)
    return text[:20_000]


@dataclass
class _Run:
    key: str
    recorder: TraceRecorder
    started: float = field(default_factory=time.perf_counter)
    run_span: str | None = None
    llm_starts: dict[str, float] = field(default_factory=dict)  # model-call span id -> perf_counter at start
    llm_spans: set[str] = field(default_factory=set)  # open spans of LLM methods
    nested_llm: set[str] = field(default_factory=set)  # LLM spans inside a started call (wrapper LLM, chat->complete)
    tools: dict[str, tuple[str, dict[str, Any], float]] = field(default_factory=dict)  # span id -> call
    on_finish: list[Callable[[TraceRecorder], None]] = field(default_factory=list)


class LlamaIndexInstrumentation:
    """The handlers ``instrument(memory)`` registered, and the runs they are recording."""

    def __init__(self, memory: Any, *, record_untagged: bool = True) -> None:
        self.memory = memory
        self.record_untagged = record_untagged
        self._runs: dict[str, _Run] = {}
        self._spans: dict[str, _Run] = {}  # open LLM/tool/run span id -> its run
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
    ) -> TraceRecorder:
        """Begin recording the run whose events carry ``{RUN_TAG: key}``; it is saved when it ends."""
        recorder: TraceRecorder = self.memory.trace(
            task=task, namespace=namespace, topic=topic, metadata={"framework": "llamaindex", **(metadata or {})}
        )
        with self._lock:
            self._runs[key] = _Run(key, recorder)
        return recorder

    def discard_run(self, key: str) -> None:
        """Forget a run that never started (nothing is saved)."""
        with self._lock:
            run = self._runs.pop(key, None)
            if run is not None:
                self._forget_spans(run)

    def on_finish(self, key: str, callback: Callable[[TraceRecorder], None]) -> None:
        """Call ``callback(recorder)`` after the run's trace is saved."""
        with self._lock:
            self._runs[key].on_finish.append(callback)

    @property
    def open_runs(self) -> int:
        return len(self._runs)

    def current_run(self) -> TraceRecorder | None:
        """The recorder of the run the calling code belongs to (by the active instrument tags)."""
        key = run_key(active_instrument_tags.get())
        run = self._runs.get(key) if key else None
        return run.recorder if run is not None else None

    def _forget_spans(self, run: _Run) -> None:
        for span_id in [s for s, r in self._spans.items() if r is run]:
            del self._spans[span_id]

    def _finish(self, run: _Run, result: Any, err: BaseException | None) -> None:
        with self._lock:
            if self._runs.get(run.key) is not run:
                return
            del self._runs[run.key]
            self._forget_spans(run)
        recorder = run.recorder
        recorder.trace.metadata.setdefault("duration_s", round(time.perf_counter() - run.started, 6))
        if err is not None:
            recorder.finish(answer=None, outcome=Outcome.FAILURE)
            recorder.trace.metadata.setdefault("error", f"{type(err).__name__}: {err}"[:2000])
        else:
            recorder.finish(answer=_answer(result), outcome=recorder.trace.outcome)
        if not recorder.trace.steps and not recorder.trace.task.strip():
            # Nothing asked and nothing done (an empty message the agent refused): nothing to learn.
            log.debug("LlamaIndex run %s had no task and no calls; no trace saved", run.key)
        else:
            try:
                recorder.save()
            except Exception:  # a full disk or a locked database must not fail the user's agent
                log.exception("could not save the trace of LlamaIndex run %s", run.key)
        for callback in run.on_finish:
            try:
                callback(recorder)
            except Exception:
                log.exception("on_finish callback failed for run %s", run.key)

    # --- spans --------------------------------------------------------------------------------
    def on_span_enter(
        self, id_: str, bound_args: Any, instance: Any, parent_id: str | None, tags: dict[str, Any] | None
    ) -> SimpleSpan | None:
        """Open a span worth keeping: a run span, a tool call, or an LLM call inside a recorded run."""
        if isinstance(instance, Workflow):
            if not id_.startswith(f"{type(instance).__name__}.run-"):
                return None
            # The runtime opens the run span without passing tags; the context holds them.
            active = tags or active_instrument_tags.get()
            run = self._run_for_run_span(id_, bound_args, instance, active)
        elif isinstance(instance, BaseLLM):
            key = run_key(tags or active_instrument_tags.get())
            run = self._runs.get(key) if key else None
            if run is None:
                return None
            with self._lock:
                if parent_id is not None and (parent_id in run.llm_starts or parent_id in run.nested_llm):
                    run.nested_llm.add(id_)  # its events repeat the outer call's; record the outer only
                else:
                    run.llm_spans.add(id_)
                self._spans[id_] = run
        elif isinstance(instance, BaseTool):
            if not (
                id_.startswith(f"{type(instance).__name__}.acall-")
                or id_.startswith(f"{type(instance).__name__}.call-")
            ):
                return None
            key = run_key(tags or active_instrument_tags.get())
            run = self._runs.get(key) if key else None
            if run is None or (parent_id is not None and parent_id in run.tools):
                return None  # not ours, or a tool called by a tool we already record
            arguments = dict(getattr(bound_args, "arguments", {}) or {})
            args = dict(arguments.get("kwargs") or {})
            if arguments.get("args"):
                args["args"] = list(arguments["args"])
            name = instance.metadata.get_name()
            with self._lock:
                run.tools[id_] = (name, _json_safe(args), time.perf_counter())
                self._spans[id_] = run
        else:
            return None
        return SimpleSpan(id_=id_, parent_id=parent_id, tags=dict(tags or {})) if run is not None else None

    def _run_for_run_span(self, id_: str, bound_args: Any, workflow: Any, tags: dict[str, Any]) -> _Run | None:
        ours = tags.get(RUN_TAG)
        llama_run = str(tags.get(LLAMAINDEX_RUN_TAG) or "")
        run: _Run | None = None
        with self._lock:
            if ours:
                run = self._runs.get(str(ours))
                if run is None or run.run_span is not None:
                    return None  # another memory's run, or a workflow nested in one we record
            elif (
                not (self.record_untagged and isinstance(workflow, BaseWorkflowAgent | AgentWorkflow))
                or not llama_run
                or llama_run in self._runs
            ):
                return None
        if run is None:  # an untagged agent run: record it under LlamaIndex's run id
            start = dict(getattr(bound_args, "arguments", {}) or {}).get("start_event")
            task = user_input_text(_field(start, "user_msg"), _field(start, "chat_history"))
            self.start_run(
                llama_run,
                task,
                namespace=tags.get(NAMESPACE_TAG),
                topic=tags.get(TOPIC_TAG),
                metadata={"workflow": type(workflow).__name__},
            )
            run = self._runs[llama_run]
        with self._lock:
            run.run_span = id_
            self._spans[id_] = run
            if tags.get(LLAMAINDEX_RUN_TAG):
                run.recorder.trace.metadata.setdefault("llamaindex_run_id", str(tags[LLAMAINDEX_RUN_TAG]))
        return run

    def on_span_exit(self, id_: str, result: Any, err: BaseException | None) -> None:
        """Close a kept span: save the run, record the tool call, or record a model call that raised."""
        run = self._spans.get(id_)
        if run is None:
            return
        if id_ == run.run_span:
            self._finish(run, result, err)
        elif id_ in run.llm_spans or id_ in run.nested_llm:
            with self._lock:
                run.llm_spans.discard(id_)
                run.nested_llm.discard(id_)
                if id_ not in run.llm_starts:  # a streaming call's events come after its span closed
                    self._spans.pop(id_, None)
            if err is not None and id_ in run.llm_starts:  # a non-streaming model call raised
                self._model_call(run, id_, [], None, err)
        elif id_ in run.tools:
            with self._lock:
                name, args, started = run.tools.pop(id_)
                self._spans.pop(id_, None)
            output = getattr(result, "content", result)
            error = f"{type(err).__name__}: {err}" if err is not None else None
            if error is None and getattr(result, "is_error", False):
                error = str(output)
            run.recorder.tool_call(
                name=name,
                args=args,
                result=None if error else output,
                error=error,
                latency_s=round(time.perf_counter() - started, 6),
            )

    # --- events -------------------------------------------------------------------------------
    def on_event(self, event: BaseEvent) -> None:
        """Record model calls from the LLM start/end/exception events of a recorded run."""
        key = run_key(event.tags)
        run = self._runs.get(key) if key else None
        if run is None:
            return
        span_id = event.span_id or event.id_
        if isinstance(event, LLMChatStartEvent | LLMCompletionStartEvent):
            if span_id in run.nested_llm:
                return
            with self._lock:
                run.llm_starts[span_id] = time.perf_counter()
                self._spans[span_id] = run
        elif isinstance(event, LLMChatEndEvent):
            self._model_call(run, span_id, event.messages, event.response, None)
        elif isinstance(event, LLMCompletionEndEvent):
            if span_id in run.llm_starts:
                self._model_call(
                    run,
                    span_id,
                    [{"role": "user", "content": event.prompt}],
                    event.response,
                    None,
                    text=event.response.text,
                )
        elif isinstance(event, ExceptionEvent) and span_id in run.llm_starts:  # a streaming call raised
            self._model_call(run, span_id, [], None, event.exception)

    def _model_call(
        self, run: _Run, span_id: str, messages: Any, response: Any, err: BaseException | None, text: str | None = None
    ) -> None:
        with self._lock:
            start = run.llm_starts.pop(span_id, None)
            self._spans.pop(span_id, None)
        if start is None:
            return  # already recorded (an error reported twice, or a completion inside a chat call)
        chat = response if hasattr(response, "message") else None
        run.recorder.model_call(
            messages=[message_dict(m) for m in messages or ()],
            output=text if text is not None else (response_output(chat) if chat is not None else None),
            usage=response_usage(response) if response is not None else None,
            reasoning=response_reasoning(chat),
            model=response_model(response),
            latency_s=round(time.perf_counter() - start, 6),
            error=f"{type(err).__name__}: {err}"[:2000] if err is not None else None,
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


def instrument(memory: Any, *, record_untagged: bool = True) -> LlamaIndexInstrumentation:
    """Record every LlamaIndex agent run as a trace of ``memory`` (idempotent per memory).

    Runs started through ``wrap`` are always recorded; other agent runs (``FunctionAgent``,
    ``ReActAgent``, ``AgentWorkflow``) are too unless ``record_untagged=False``. Put
    ``{NAMESPACE_TAG: ..., TOPIC_TAG: ...}`` in ``instrument_tags`` around ``agent.run`` to file an
    untagged run under another namespace or topic.
    """
    with _INSTRUMENTS_LOCK:
        existing = _INSTRUMENTS.get(id(memory))
        if existing is not None and existing.memory is memory:
            existing.record_untagged = record_untagged
            return existing
        instrumentation = LlamaIndexInstrumentation(memory, record_untagged=record_untagged)
        dispatcher = get_dispatcher()
        dispatcher.add_event_handler(instrumentation.event_handler)
        dispatcher.add_span_handler(instrumentation.span_handler)
        _INSTRUMENTS[id(memory)] = instrumentation
        return instrumentation


def uninstrument(memory: Any) -> None:
    """Remove ``memory``'s handlers from the root dispatcher; runs still open are not saved."""
    with _INSTRUMENTS_LOCK:
        instrumentation = _INSTRUMENTS.pop(id(memory), None)
    if instrumentation is None:
        return
    dispatcher = get_dispatcher()
    dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not instrumentation.event_handler]
    dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not instrumentation.span_handler]


def instrumentation_for(memory: Any) -> LlamaIndexInstrumentation | None:
    """The instrumentation ``instrument(memory)`` registered, if any."""
    found = _INSTRUMENTS.get(id(memory))
    return found if found is not None and found.memory is memory else None
