"""OpenTelemetry spans for the loop: retrieve, render, record, reflect, curate, and each model call.

Optional (``pip install "behavior-memory[otel]"``): without ``opentelemetry-api`` every span is a
no-op object and nothing is imported. With it, spans go to whatever ``TracerProvider`` the
application installed; the library installs none (the OpenTelemetry rule for libraries), so
without an SDK they cost almost nothing. Span names::

    bmem.retrieve   bmem.render   bmem.record   bmem.reflect   bmem.curate
    chat {model}    (one per model call, with the GenAI semantic-convention attributes:
                     gen_ai.operation.name, gen_ai.provider.name, gen_ai.request.model,
                     gen_ai.response.model, gen_ai.usage.input_tokens / output_tokens,
                     gen_ai.response.finish_reasons, server.address / server.port)

so a fleet sees what the memory costs, in tokens and time, in its own tracing backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "TRACER_NAME",
    "SpanLike",
    "model_call_attributes",
    "model_result_attributes",
    "model_span",
    "set_attributes",
    "span",
]

TRACER_NAME = "behavior_memory"


class SpanLike(Protocol):
    """What our code calls on a span (an OpenTelemetry ``Span``, or the no-op)."""

    def set_attribute(self, key: str, value: Any) -> Any: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None


_NO_SPAN = _NoSpan()
_state: dict[str, Any] = {}
_lock = threading.Lock()


def _tracer() -> Any:
    """The library's tracer, or ``None`` when opentelemetry-api is not installed (looked up once)."""
    if "tracer" not in _state:
        with _lock:
            if "tracer" not in _state:
                try:
                    from opentelemetry import trace
                except ImportError:
                    _state["tracer"] = None
                else:  # a ProxyTracer: follows a provider the application installs later
                    _state["tracer"] = trace.get_tracer(TRACER_NAME)
    return _state["tracer"]


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int, float and sequences of them; ``None`` is left out."""
    clean: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            clean[key] = [v if isinstance(v, str | bool | int | float) else str(v) for v in value if v is not None]
        else:
            clean[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return clean


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[SpanLike]:
    """A span named ``name`` around the block (current, so model calls inside nest under it).

    An exception leaving the block is recorded on the span (status ERROR, ``error.type``) and
    propagates unchanged. A no-op when opentelemetry-api is absent.
    """
    tracer = _tracer()
    if tracer is None:
        yield _NO_SPAN
        return
    with tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__qualname__)
            raise


def set_attributes(target: SpanLike, attributes: Mapping[str, Any]) -> None:
    """Set several attributes at once (``None`` values skipped), on a real or a no-op span."""
    for key, value in _clean(attributes).items():
        target.set_attribute(key, value)


@contextmanager
def model_span(
    model: str, base_url: str | None, params: Mapping[str, Any] | None = None, *, operation: str = "chat"
) -> Iterator[SpanLike]:
    """The span of one model call, ``"{operation} {model}"``, with the GenAI request attributes."""
    attributes = model_call_attributes(model, base_url, operation=operation)
    params = params or {}
    attributes["gen_ai.request.max_tokens"] = params.get("max_tokens") or params.get("max_completion_tokens")
    attributes["gen_ai.request.temperature"] = params.get("temperature")
    with span(f"{operation} {model}", attributes) as current:
        yield current


def model_call_attributes(model: str, base_url: str | None, *, operation: str = "chat") -> dict[str, Any]:
    """The GenAI request attributes of one call to an OpenAI-compatible server."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "openai",  # the API spoken: vLLM serves the OpenAI one
        "gen_ai.request.model": model,
    }
    if base_url:
        parts = urlsplit(base_url)
        attributes["server.address"] = parts.hostname
        attributes["server.port"] = parts.port
    return attributes


def model_result_attributes(
    *, model: str | None, input_tokens: int | None, output_tokens: int | None, finish_reason: str | None
) -> dict[str, Any]:
    """The GenAI response attributes of one call: the answering model, token usage, why it stopped."""
    return {
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.response.finish_reasons": [finish_reason] if finish_reason else None,
    }
