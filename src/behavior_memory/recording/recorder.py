"""``TraceRecorder``: collect one task's model and tool calls, then save them as one ``Trace``.

The trace is saved when the ``with`` block ends, before anything else happens to it (citation
counting, queueing reflection), so a crash afterwards loses nothing. Recording methods are
thread-safe: a tool running in a worker thread may record into its task's trace. Every text taken
is made encodable (``text.encodable``): a stray surrogate in a tool's output must not lose the trace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from ..injection.search import SEARCH_TOOL_NAME, search_result_names
from ..types import Outcome, Step, TokenUsage, Trace, utcnow
from .text import MAX_ERROR_CHARS, clip, encodable, encodable_data, json_safe

__all__ = ["TraceRecorder"]


#: Framework role names -> the chat API's, so reflection reads one convention whatever recorded it.
_ROLES = {"human": "user", "ai": "assistant"}


def _role(value: Any) -> str:
    role = str(getattr(value, "value", value))
    return _ROLES.get(role, role)


def _json_safe_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Keep messages as plain dicts; objects (LangChain, LlamaIndex) become role/content dicts."""
    safe: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, dict):
            record = {
                str(k): (v if isinstance(v, str | int | float | bool | type(None) | list | dict) else str(v))
                for k, v in message.items()
            }
            if "role" in record:
                record["role"] = _role(record["role"])
            safe.append(record)
        else:
            role = getattr(message, "role", None) or getattr(message, "type", None) or "unknown"
            content = getattr(message, "content", message)
            safe.append(
                {
                    "role": _role(role),
                    "content": content if isinstance(content, str | list) else str(content),
                }
            )
    fixed: list[dict[str, Any]] = encodable_data(safe)  # contents may be lists of parts: fix every string
    return fixed


class TraceRecorder:
    """Records steps into a ``Trace``; use it through ``BehaviorMemory.trace(...)``.

    ``on_save`` receives the finished trace; the memory uses it to save the trace durably and then
    count citations and queue reflection.
    """

    def __init__(self, trace: Trace, on_save: Callable[[Trace], Trace]) -> None:
        self.trace = trace
        self._on_save = on_save
        self._lock = threading.Lock()
        self._saved = False

    @property
    def id(self) -> str:
        return self.trace.id

    def show(self, hits: Iterable[Any]) -> None:
        """Note the behaviors put in this task's prompt (``Behavior``, ``ScoredBehavior`` or names)."""
        with self._lock:
            for item in hits:
                behavior = getattr(item, "behavior", item)
                name = encodable(behavior if isinstance(behavior, str) else behavior.name)
                if name not in self.trace.shown:
                    self.trace.shown.append(name)

    def model_call(
        self,
        *,
        messages: Sequence[Any] = (),
        output: str | None = None,
        usage: Any = None,
        reasoning: str | None = None,
        model: str | None = None,
        latency_s: float | None = None,
        error: str | None = None,
    ) -> Step:
        """Record one model call: the messages sent, the text returned and its token usage.

        Texts longer than ``text.MAX_RECORDED_CHARS`` are clipped here, the same for every integration.
        """
        step = Step(
            kind="model",
            messages=_json_safe_messages(messages),
            output=None if output is None else clip(output),
            reasoning=None if reasoning is None else clip(reasoning),
            usage=TokenUsage.from_any(usage),
            model=None if model is None else encodable(model),
            latency_s=latency_s,
            error=None if error is None else clip(error, MAX_ERROR_CHARS),
        )
        with self._lock:
            self.trace.steps.append(step)
        return step

    def tool_call(
        self,
        *,
        name: str,
        args: dict[str, Any] | None = None,
        result: Any = None,
        error: str | None = None,
        latency_s: float | None = None,
    ) -> Step:
        """Record one tool call with its arguments and its result (or error).

        What a ``search_behaviors`` call returned counts as shown, like the injected block.
        """
        if name == SEARCH_TOOL_NAME and error is None and result is not None:
            self.show(search_result_names(str(result)))
        step = Step(
            kind="tool",
            name=encodable(name),
            args=json_safe(dict(args or {})),
            result=None if result is None else clip(str(result)),
            error=None if error is None else clip(error, MAX_ERROR_CHARS),
            latency_s=latency_s,
        )
        with self._lock:
            self.trace.steps.append(step)
        return step

    def finish(
        self,
        *,
        answer: str | None = None,
        outcome: Outcome | str = Outcome.UNKNOWN,
        score: float | None = None,
        feedback: str | None = None,
    ) -> None:
        """Set the task's final answer (clipped like every recorded text) and, when known, its outcome."""
        with self._lock:
            self.trace.answer = None if answer is None else clip(answer)
            self.trace.outcome = Outcome(outcome)
            self.trace.score = score
            self.trace.feedback = None if feedback is None else encodable(feedback)

    def save(self) -> Trace:
        """Save the trace now (the ``with`` block does this on exit); saving twice is a no-op."""
        with self._lock:
            if self._saved:
                return self.trace
            self._saved = True
            self.trace.finished_at = utcnow()
        self.trace = self._on_save(self.trace)
        return self.trace

    def __enter__(self) -> TraceRecorder:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self.trace.outcome == Outcome.UNKNOWN:
            # The task raised: keep the trace (failures teach too) and let the error propagate.
            self.trace.outcome = Outcome.FAILURE
            self.trace.metadata.setdefault("error", encodable(f"{type(exc).__name__}: {exc}"))
        self.trace.metadata.setdefault("duration_s", round(time.perf_counter() - self._started, 6))
        self.save()
