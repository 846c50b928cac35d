"""``bmem ui``: serve the web UI over the configured handbook (see ``behavior_memory.ui``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

from ..errors import ConfigError
from .context import CliContext, pass_ctx

__all__ = ["ui"]

_TOKEN_ENV = "BMEM_UI_TOKEN"


def _results(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, and the ``*.jsonl`` of a folder named; ``./results/`` when nothing is named."""
    if not paths and Path("results").is_dir():
        paths = (Path("results"),)
    found: list[Path] = []
    for p in paths:
        found += sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    return found


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but localhost needs a token."
)
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--read-only", is_flag=True, help="Serve no write route: look, do not touch.")
@click.option(
    "--token",
    help=f"Access token every request must carry (default: ${_TOKEN_ENV}; made up when binding beyond localhost).",
)
@click.option(
    "--results",
    "results",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="`bmem eval` result files (or folders of them) to plot (default: ./results/ if present).",
)
@pass_ctx
def ui(obj: CliContext, host: str, port: int, read_only: bool, token: str | None, results: tuple[Path, ...]) -> None:
    """A local web app: the handbook, the review queue, traces and plots."""
    from .._optional import require

    uvicorn = require("uvicorn", "ui", what="bmem ui")
    from ..ui.app import create_app
    from ..ui.security import Guardrails, is_local

    token = token or os.environ.get(_TOKEN_ENV) or None
    local = is_local(host)
    if not local and token is None:
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise ConfigError("the UI's token must be at least 16 characters")
    app = create_app(
        obj.memory(),
        read_only=read_only,
        guardrails=Guardrails(token=token, local_only=local),
        results=_results(results),
    )
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/" + (f"?token={token}" if token else "")
    obj.console.print(f"bmem ui on {url}{' (read-only)' if read_only else ''}; Ctrl-C stops it", soft_wrap=True)
    if not local:
        obj.err.print(f"[yellow]bound to {host}: plain HTTP; every request needs the token above[/yellow]")
    uvicorn.run(app, host=host, port=port, log_level="warning")
