"""``bmem ui``: a local web app over the handbook (behaviors, the review queue, traces, plots).

Starlette with Jinja2 templates and server-rendered SVG; no script and nothing fetched from a CDN,
so it works offline. Nothing here is imported by ``import behavior_memory``: only ``bmem ui`` (or
``create_app``) loads Starlette. See ``app.create_app`` and ``security`` for the rules it keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
