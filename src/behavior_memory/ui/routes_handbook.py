"""The handbook's table (filters, sorting, paging, and "what would my agent see?") and a behavior's page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Route

from ..errors import NotFoundError
from ..lifecycle.scores import score
from ..types import Behavior, BehaviorStatus
from .queries import BEHAVIOR_SORTS, MAX_PAGE_SIZE, BehaviorFilter
from .web import choice_param, int_param, namespace_param, render, state

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["routes"]

_PINNED = {"yes": True, "no": False}
_SORTS = {key: key for key in BEHAVIOR_SORTS}


def _bad_sort(request: Request) -> str:
    raise HTTPException(400, f"unknown sort {request.query_params['sort'][:40]!r}; one of {', '.join(_SORTS)}")


_UTILITY_TRACES = 1000  # the latest traces looked at to measure a behavior's utility
_UTILITY_READ = 300  # of those that chose it, the latest read with their steps (the token effect needs them)


def _row(b: Behavior) -> dict[str, Any]:
    s = score(b)
    return {"b": b, "rate": s.citation_rate, "helpfulness": s.helpfulness, "harm": s.harm}


def _handbook(request: Request) -> Response:
    ui = state(request)
    namespace = namespace_param(request)
    topic = request.query_params.get("topic") or None
    f = BehaviorFilter(
        namespace=namespace,
        status=choice_param(request, "status", BehaviorStatus),
        topic=topic[:200] if topic else None,
        pinned=choice_param(request, "pinned", _PINNED),
        text=(request.query_params.get("text") or "")[:200] or None,
        sort=_SORTS.get(request.query_params.get("sort") or "name") or _bad_sort(request),
    )
    size = int_param(request, "size", 50, high=MAX_PAGE_SIZE)
    page = ui.browser.behaviors(f, page=int_param(request, "page", 1), size=size)
    query = (request.query_params.get("q") or "").strip()[:2000]
    hits: list[Any] = []
    block = None
    if query:
        hits = ui.memory.retrieve(query, namespace=namespace, topic=f.topic)
        block = ui.memory.render(hits)
    return render(
        request,
        "handbook.html",
        namespace=namespace,
        f=f,
        page=page,
        rows=[_row(b) for b in page.rows],
        topics=ui.browser.topics(namespace),
        statuses=[s.value for s in BehaviorStatus],
        sorts=list(BEHAVIOR_SORTS),
        query=query,
        hits=hits,
        block=block,
    )


def _utility(request: Request, b: Behavior) -> Any:
    """The behavior's measured effect (exposure experiment), or None when no trace of the experiment chose it."""
    from ..lifecycle.utility import WITHHELD_KEY, estimate_utility

    memory = state(request).memory
    listed = memory.store.list_traces(b.namespace, limit=_UTILITY_TRACES)
    chose = [
        t
        for t in listed
        if isinstance(held := t.metadata.get(WITHHELD_KEY), list) and (b.name in t.shown or b.name in held)
    ]
    if not chose:
        return None
    traces = [memory.store.get_trace(t.id) for t in chose[:_UTILITY_READ]]
    samples = memory.config.curation.lifecycle.utility_min_samples
    return estimate_utility(traces, min_samples=samples).get(b.name)


def _behavior(request: Request) -> Response:
    ui = state(request)
    namespace = namespace_param(request)
    b = ui.memory.handbook.get(request.path_params["key"][:200], namespace=namespace)
    history = [h for h in b.metadata.get("history", []) if isinstance(h, dict)]
    guard = b.metadata.get("guard") if isinstance(b.metadata.get("guard"), dict) else None
    known = set()
    for trace_id in b.sources[:50]:
        try:
            ui.memory.store.get_trace(trace_id)
            known.add(trace_id)
        except NotFoundError:  # a source trace may be gone (pruned, another store): no link then
            continue
    return render(
        request,
        "behavior.html",
        namespace=namespace,
        b=b,
        s=score(b),
        history=list(reversed(history)),
        guard=guard,
        overrides=[o for o in b.metadata.get("overrides", []) if isinstance(o, dict)],
        sources=b.sources[:50],
        known_sources=known,
        utility=_utility(request, b),
    )


async def handbook(request: Request) -> Response:
    return await run_in_threadpool(_handbook, request)


async def behavior(request: Request) -> Response:
    if len(request.path_params["key"]) > 200:
        raise HTTPException(404, "no such behavior")
    return await run_in_threadpool(_behavior, request)


routes = [
    Route("/", handbook, name="handbook"),
    Route("/behaviors/{key:str}", behavior, name="behavior"),
]
