"""``bmem config check|schema|show``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config.settings import DEFAULT_CONFIG_NAME, config_schema, load_config, load_config_text
from .context import CliContext, pass_ctx

__all__ = ["config"]


@click.group()
def config() -> None:
    """Check the configuration, print its JSON Schema or its effective values."""


@config.command("check")
@click.argument("path", required=False)
@pass_ctx
def check(obj: CliContext, path: str | None) -> None:
    """Validate PATH (default: --config or ./behavior-memory.yaml; '-' reads stdin)."""
    if path == "-":
        load_config_text(sys.stdin.read(), source="<stdin>")
        where = "<stdin>"
    else:
        target = Path(path) if path else (obj.config_path or Path(DEFAULT_CONFIG_NAME))
        cfg = load_config(target)
        where = str(target)
        obj.console.print(f"[dim]handbook: {cfg.store_path()}   model: {cfg.llm.model} at {cfg.llm.base_url}[/dim]")
    obj.console.print(f"[green]ok[/green] {where} is valid")


@config.command("schema")
def schema() -> None:
    """Print the JSON Schema of the YAML configuration."""
    click.echo(json.dumps(config_schema(), indent=2))


@config.command("show")
@pass_ctx
def show(obj: CliContext) -> None:
    """Print the effective configuration (defaults filled in, API key hidden) as JSON."""
    data = obj.config().model_dump(mode="json")
    if data.get("llm", {}).get("api_key"):
        data["llm"]["api_key"] = "***"
    click.echo(json.dumps(data, indent=2))
