"""``bmem``: the command line of behavior-memory.

Every command reads ./behavior-memory.yaml unless ``--config PATH`` says otherwise. Errors print
one clean line (exit status 1); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import BehaviorMemoryError
from .behaviors import behaviors
from .config_cmd import config
from .context import CliContext
from .demo import demo
from .eval_cmd import eval_group
from .init_cmd import init
from .reflect import reflect
from .serve import serve
from .sft_cmd import sft
from .traces import traces

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Turns our errors into one red line instead of a traceback (unless --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BehaviorMemoryError as exc:
            obj = ctx.find_object(CliContext)
            if obj is not None and obj.debug:
                raise
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(1)
        finally:
            obj = ctx.find_object(CliContext)
            if obj is not None:
                obj.close()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML configuration (default: ./behavior-memory.yaml).",
)
@click.option("--namespace", "-n", help="Namespace to work in (default: the configuration's).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="behavior-memory")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, namespace: str | None, debug: bool) -> None:
    """Procedural memory for LLM agents: behaviors, traces and the handbook."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = CliContext(config_path=config_path, namespace=namespace, debug=debug)


cli.add_command(init)
cli.add_command(config)
cli.add_command(behaviors)
cli.add_command(traces)
cli.add_command(reflect)
cli.add_command(serve)
cli.add_command(demo)
cli.add_command(eval_group)
cli.add_command(sft)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="bmem")
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.secho("interrupted", fg="yellow", err=True)
        sys.exit(130)
