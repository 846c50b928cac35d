"""``create_app``: the Starlette application of ``bmem ui`` over one ``BehaviorMemory``.

Pages: ``/`` the handbook, ``/behaviors/{id}`` a behavior, ``/review`` the queue, ``/traces`` and
``/traces/{id}``, ``/plots``. Writes (``POST /behaviors/{id}/decide``, ``POST /traces/{id}/feedback``)
are not routed at all with ``read_only``. ``security`` says what guards them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._optional import require

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..memory import BehaviorMemory
    from .security import Guardrails

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(
    memory: BehaviorMemory,
    *,
    read_only: bool = False,
    guardrails: Guardrails | None = None,
    results: Sequence[Path] = (),
) -> Starlette:
    """The web app over ``memory``'s store; ``results`` are ``bmem eval`` result files for the plots.

    ``guardrails`` default: localhost only, no token. Raises ``MissingDependencyError`` without the
    ``ui`` extra.
    """
    for module in ("starlette", "jinja2", "python_multipart"):
        require(module, "ui", what="bmem ui")
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from ..errors import BehaviorMemoryError
    from . import routes_handbook, routes_plots, routes_review, routes_traces
    from .queries import browser_for
    from .security import Guardrails, GuardrailsMiddleware
    from .web import UIState, http_error, library_error, server_error

    g = guardrails or Guardrails()
    routes = [
        *routes_handbook.routes,
        *routes_review.read_routes,
        *routes_traces.read_routes,
        *routes_plots.routes,
        Mount("/static", app=StaticFiles(packages=[("behavior_memory.ui", "static")]), name="static"),
    ]
    if not read_only:
        routes += [*routes_review.write_routes, *routes_traces.write_routes]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(GuardrailsMiddleware, guardrails=g)],
        exception_handlers={
            HTTPException: http_error,
            BehaviorMemoryError: library_error,
            Exception: server_error,
        },
    )
    browser = browser_for(memory.store)
    app.state.ui = UIState(memory=memory, browser=browser, read_only=read_only, results=list(results))

    def warm() -> None:
        """Read the default namespace's columns and status changes now, not on the first page (seconds at 100k)."""
        try:
            browser.columns.get(memory.namespace)
            browser.growth.per_day(memory.namespace)
        except Exception:  # the first page reads them again, and reports what fails there
            log.debug("reading the columns ahead failed", exc_info=True)

    threading.Thread(target=warm, name="bmem-ui-warm", daemon=True).start()
    return app
