"""``bmem init``: write a commented ./behavior-memory.yaml (and its JSON Schema beside it)."""

from __future__ import annotations

import importlib.util
import json
from importlib.resources import files
from pathlib import Path

import click

from ..config.settings import DEFAULT_CONFIG_NAME, config_schema, load_config
from .context import CliContext, pass_ctx

__all__ = ["init"]


@click.command()
@click.option(
    "--path",
    "target",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG_NAME,
    show_default=True,
    help="Where to write the configuration.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_ctx
def init(obj: CliContext, target: Path, force: bool) -> None:
    """Write a commented configuration whose handbook lives beside it."""
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    template = files("behavior_memory.data").joinpath("behavior-memory.template.yaml").read_text(encoding="utf-8")
    # Local embeddings when the [embeddings] extra is installed, else the dependency-free hashing embedder.
    provider = "sentence-transformers" if importlib.util.find_spec("sentence_transformers") else "hashing"
    target.write_text(template.replace("__EMBEDDINGS_PROVIDER__", provider), encoding="utf-8")
    schema_path = target.parent / "behavior-memory.schema.json"
    schema_path.write_text(json.dumps(config_schema(), indent=2) + "\n", encoding="utf-8")
    cfg = load_config(target)  # what we wrote must load
    obj.console.print(f"[green]wrote[/green] {target} (handbook: {cfg.store_path()}, embeddings: {provider})")
    obj.console.print(f"[dim]schema for editors: {schema_path}[/dim]")
