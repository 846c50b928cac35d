"""The review queue and a person's decisions on a behavior: approve, reject, edit, quarantine, pin, archive.

Every decision goes through the ``Handbook`` methods ``bmem review`` and ``bmem behaviors approve|
reject|quarantine|edit|set-status`` call: the same guard, the same history records. Who decided is
``review.person()`` (the user running ``bmem ui``), marked ``via ui``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse
from starlette.routing import Route

from ..errors import BehaviorMemoryError
from ..review import person, with_note
from ..types import Behavior, BehaviorStatus
from .queries import MAX_PAGE_SIZE, BehaviorFilter
from .security import checked_form
from .web import error_page, int_param, namespace_param, render, state

if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request
    from starlette.responses import Response

    from ..handbook import Handbook

__all__ = ["ACTIONS", "read_routes", "write_routes"]

ACTIONS = ("approve", "reject", "edit", "quarantine", "pin", "unpin", "archive")
_QUEUE = (BehaviorStatus.QUARANTINED, BehaviorStatus.CANDIDATE)


def who() -> str:
    return f"{person()} via ui"


def _reason(b: Behavior) -> str:
    guard = b.metadata.get("guard")
    if isinstance(guard, dict) and guard.get("rule"):
        return f"guard rule {guard.get('rule')}: {guard.get('evidence')}"
    history = b.metadata.get("history") or []
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    return f"{last.get('reason', '-')} (by {last.get('by', '-')})"


def _review(request: Request) -> Response:
    ui = state(request)
    namespace = namespace_param(request)
    size = int_param(request, "size", 50, high=MAX_PAGE_SIZE)
    sections = []
    for status in _QUEUE:
        page = ui.browser.behaviors(
            BehaviorFilter(namespace=namespace, status=status, sort="created"),
            page=int_param(request, f"{status.value}_page", 1),
            size=size,
        )
        sections.append((status.value, page, [(b, _reason(b)) for b in page.rows]))
    return render(request, "review.html", namespace=namespace, sections=sections)


def _field(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _pin(handbook: Handbook, key: str, pinned: bool, namespace: str) -> Behavior:
    """Pinning as a recorded decision (``Handbook.update`` would change it without a record)."""

    def change(b: Behavior) -> Behavior:
        moved = b.model_copy(update={"pinned": pinned})
        return with_note(moved, by=who(), reason="pinned" if pinned else "unpinned")

    return handbook.modify(key, change, namespace=namespace)


def decide(handbook: Handbook, key: str, action: str, form: FormData, namespace: str) -> Behavior:
    """Apply one decision from a form; the handbook raises on what the guard or the rules refuse."""
    reason = _field(form, "reason", 500)
    force = _field(form, "force") == "yes"
    if action == "approve":
        return handbook.approve(key, by=who(), reason=reason or "approved", force=force, namespace=namespace)
    if action == "reject":
        return handbook.reject(key, by=who(), reason=reason or "rejected", namespace=namespace)
    if action == "quarantine":
        return handbook.quarantine(key, by=who(), reason=reason or "quarantined by a person", namespace=namespace)
    if action == "archive":
        return handbook.set_status(key, BehaviorStatus.ARCHIVED, by=who(), reason=reason or None, namespace=namespace)
    if action in ("pin", "unpin"):
        return _pin(handbook, key, action == "pin", namespace)
    if action == "edit":
        instruction = _field(form, "instruction") or None
        topic = form.get("topic")
        topic_text = topic.strip()[:200] if isinstance(topic, str) else None
        return handbook.edit(key, instruction=instruction, topic=topic_text, by=who(), force=force, namespace=namespace)
    raise HTTPException(400, f"unknown action {action[:40]!r}; one of {', '.join(ACTIONS)}")


def _safe_next(value: str, fallback: str) -> str:
    """Where to go after a decision: a path of this site only (never ``//elsewhere`` or a full URL)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value and len(value) < 2000:
        return value
    return fallback


async def decide_route(request: Request) -> Response:
    form = await checked_form(request)
    ui = state(request)
    namespace = _field(form, "ns", 200) or ui.memory.namespace
    key = str(request.path_params["key"])[:200]
    action = _field(form, "action", 40)
    try:
        b = await run_in_threadpool(decide, ui.memory.handbook, key, action, form, namespace)
    except BehaviorMemoryError as exc:
        status = 404 if exc.__class__.__name__ == "NotFoundError" else 409
        return error_page(request, status, f"{action} refused: {exc}")
    fallback = request.url_for("behavior", key=b.id).path + f"?ns={b.namespace}"
    return RedirectResponse(_safe_next(_field(form, "next"), fallback), status_code=303)


async def review(request: Request) -> Any:
    return await run_in_threadpool(_review, request)


read_routes = [Route("/review", review, name="review")]
write_routes = [Route("/behaviors/{key:str}/decide", decide_route, methods=["POST"], name="decide")]
