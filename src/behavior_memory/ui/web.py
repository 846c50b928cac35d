"""What every page of the UI shares: the templates (autoescaped), the app's state, query parameters, error pages.

Stored text reaches a page only through Jinja2's autoescape; nothing stored is ever marked safe.
The only markup built in Python is the SVG of ``charts``, which escapes every label it draws.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response

from ..errors import BehaviorMemoryError, NotFoundError
from ..types import validate_namespace
from .queries import ContractBrowser, SQLiteBrowser

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..memory import BehaviorMemory

__all__ = ["UIState", "error_page", "int_param", "namespace_param", "page_url", "render", "state"]

log = logging.getLogger(__name__)

_NAMESPACES_TTL_S = 5.0
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("behavior_memory.ui", "templates"),
    autoescape=True,  # every template, whatever its name: stored text is always escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class UIState:
    """What the routes share: the memory, how to page it, and the app's switches."""

    memory: BehaviorMemory
    browser: SQLiteBrowser | ContractBrowser
    read_only: bool = False
    results: list[Path] = field(default_factory=list)  # `bmem eval` result files for the plots
    namespaces: tuple[float, list[str]] | None = None  # (when read, the store's namespaces)


def state(request: Request) -> UIState:
    ui: UIState = request.app.state.ui
    return ui


def page_url(request: Request, **changes: Any) -> str:
    """This page's address with some query parameters changed (``None`` removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return request.url.path + (f"?{query}" if query else "")


_TEMPLATES.globals["page_url"] = page_url


def _namespaces(ui: UIState) -> list[str]:
    """The store's namespaces for the header's menu, read at most every few seconds (a query over every row)."""
    now = time.monotonic()
    if ui.namespaces is None or now - ui.namespaces[0] > _NAMESPACES_TTL_S:
        ui.namespaces = (now, ui.memory.store.namespaces() or [ui.memory.namespace])
    return ui.namespaces[1]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    ui = state(request)
    context.setdefault("namespace", ui.memory.namespace)
    html = _TEMPLATES.get_template(template).render(
        request=request,
        csrf=getattr(request.state, "csrf", ""),
        read_only=ui.read_only,
        namespaces=_namespaces(ui),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def int_param(request: Request, name: str, default: int, *, low: int = 1, high: int | None = None) -> int:
    """An integer query parameter; not a number, or out of bounds, is a 400 page saying which."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number, got {raw[:40]!r}") from None
    if value < low:
        raise HTTPException(400, f"{name} must be at least {low}")
    if high is not None and value > high:
        raise HTTPException(400, f"{name} must be at most {high}")
    return value


def namespace_param(request: Request) -> str:
    raw = request.query_params.get("ns")
    if not raw:
        return state(request).memory.namespace
    try:
        return validate_namespace(raw)
    except BehaviorMemoryError as exc:
        raise HTTPException(400, str(exc)) from None


def choice_param(request: Request, name: str, choices: Any) -> Any:
    """An enum's member (or a dict's value) named by the query; empty means no filter."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return choices(raw) if callable(choices) else choices[raw]
    except (ValueError, KeyError):
        raise HTTPException(400, f"unknown {name} {raw[:40]!r}") from None


def error_page(request: Request, status: int, message: str) -> Response:
    """A page that says what went wrong, in the UI's frame; never a traceback."""
    try:
        return render(request, "error.html", status_code=status, status=status, message=message)
    except Exception:  # the frame itself failed (the store is gone): plain text still tells
        log.exception("the error page failed")
        return Response(f"{status}: {message}\n", status_code=status, media_type="text/plain")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "not found", 405: "not allowed here"}
    return error_page(request, exc.status_code, exc.detail or titles.get(exc.status_code, "error"))


async def library_error(request: Request, exc: Exception) -> Response:
    status = 404 if isinstance(exc, NotFoundError) else 400
    return error_page(request, status, str(exc))


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("the UI failed on %s", request.url.path, exc_info=exc)
    return error_page(request, 500, "something went wrong on our side; the server's log has the details")
