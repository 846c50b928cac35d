"""Traces: a table by namespace, reflection status and outcome; a trace's page; feedback on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse
from starlette.routing import Route

from ..errors import BehaviorMemoryError, InvalidInputError
from ..lifecycle.utility import WITHHELD_KEY
from ..types import Outcome, ReflectionStatus, normalize_trace_id
from .queries import MAX_PAGE_SIZE, TraceFilter
from .security import checked_form
from .web import choice_param, error_page, int_param, render, state

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["read_routes", "write_routes"]


def _traces(request: Request) -> Response:
    ui = state(request)
    raw_ns = request.query_params.get("ns")
    if raw_ns == "*":
        namespace = None
    else:
        from .web import namespace_param

        namespace = namespace_param(request)
    f = TraceFilter(
        namespace=namespace,
        status=choice_param(request, "status", ReflectionStatus),
        outcome=choice_param(request, "outcome", Outcome),
    )
    size = int_param(request, "size", 50, high=MAX_PAGE_SIZE)
    page = ui.browser.traces(f, page=int_param(request, "page", 1), size=size)
    return render(
        request,
        "traces.html",
        namespace=namespace or ui.memory.namespace,
        all_namespaces=namespace is None,
        f=f,
        page=page,
        statuses=[s.value for s in ReflectionStatus],
        outcomes=[o.value for o in Outcome],
    )


def _trace_id(request: Request) -> str:
    try:
        return normalize_trace_id(str(request.path_params["trace_id"])[:100])
    except (BehaviorMemoryError, ValueError):
        raise HTTPException(404, "no such trace: a trace id is 32 hex characters") from None


def _trace(request: Request) -> Response:
    ui = state(request)
    trace = ui.memory.traces.get(_trace_id(request), all_namespaces=True)
    withheld = trace.metadata.get(WITHHELD_KEY)
    reflection = trace.metadata.get("reflection")  # what the reflection worker keeps (reflection/worker.py)
    return render(
        request,
        "trace.html",
        namespace=trace.namespace,
        t=trace,
        usage=trace.usage,
        withheld=withheld if isinstance(withheld, list) else None,
        reflection=reflection if isinstance(reflection, dict) else None,
        outcomes=[o.value for o in Outcome],
    )


def _feedback(request: Request, trace_id: str, form: Any) -> None:
    outcome = form.get("outcome") or None
    raw_score = (form.get("score") or "").strip()
    comment = (form.get("comment") or "").strip()[:4000] or None
    try:
        value = float(raw_score) if raw_score else None
    except ValueError:
        raise InvalidInputError(f"score must be a number, got {raw_score[:40]!r}") from None
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        raise InvalidInputError(f"unknown outcome {str(outcome)[:40]!r}")
    state(request).memory.traces.feedback(trace_id, outcome=outcome, score=value, comment=comment, all_namespaces=True)


async def traces(request: Request) -> Response:
    return await run_in_threadpool(_traces, request)


async def trace(request: Request) -> Response:
    return await run_in_threadpool(_trace, request)


async def feedback(request: Request) -> Response:
    form = await checked_form(request)
    trace_id = _trace_id(request)
    try:
        await run_in_threadpool(_feedback, request, trace_id, form)
    except BehaviorMemoryError as exc:
        status = 404 if exc.__class__.__name__ == "NotFoundError" else 400
        return error_page(request, status, f"feedback refused: {exc}")
    return RedirectResponse(request.url_for("trace", trace_id=trace_id).path, status_code=303)


read_routes = [
    Route("/traces", traces, name="traces"),
    Route("/traces/{trace_id:str}", trace, name="trace"),
]
write_routes = [Route("/traces/{trace_id:str}/feedback", feedback, methods=["POST"], name="feedback")]
