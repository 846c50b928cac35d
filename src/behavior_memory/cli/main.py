"""``bmem``: the command line of behavior-memory.

Every command reads ./behavior-memory.yaml unless ``--config PATH`` says otherwise. Errors print
one clean line (exit status 1); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import BehaviorMemoryError
from .context import CliContext

__all__ = ["COMMANDS", "cli", "main"]

#: command -> (module under behavior_memory.cli, attribute, one-line help for ``bmem --help``).
#: A command's module (and what it needs: the store, numpy, the model server, the eval code) loads
#: only when that command runs, so ``bmem --help`` stays instant. A test checks the help lines.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "behaviors": ("behaviors", "behaviors", "Manage the behaviors of the handbook."),
    "config": ("config_cmd", "config", "Check the configuration, print its JSON Schema or its effective values."),
    "curate": ("curate", "curate", "Merge near-duplicates; make behaviors active, stale or archived, with reasons."),
    "demo": (
        "demo",
        "demo",
        "Solve GSM8K problems, reflect, mint behaviors, and solve again with them; print the figures.",
    ),
    "eval": (
        "eval_cmd",
        "eval_group",
        "Measure behavior-conditioned inference the way the paper did (bci, summary, plot).",
    ),
    "init": ("init_cmd", "init", "Write a commented configuration whose handbook lives beside it."),
    "mcp": ("mcp_cmd", "mcp", "Serve the handbook to MCP clients (stdio or streamable HTTP)."),
    "reflect": ("reflect", "reflect", "Reflect traces to mint behaviors (the model server must answer)."),
    "review": (
        "review_cmd",
        "review",
        "Walk the review queue: approve, reject, edit or quarantine what waits.",
    ),
    "serve": ("serve", "serve", "Serve the model: vLLM on a GPU, or the embedded CPU build with SmolLM2-135M."),
    "sft": (
        "sft_cmd",
        "sft",
        "Behavior-conditioned fine-tuning (the paper's BC-SFT): export the records, train a model and its twin.",
    ),
    "store": ("store_cmd", "store", "Migrate a handbook's schema, or copy a handbook between SQLite and PostgreSQL."),
    "traces": ("traces", "traces", "Inspect recorded traces."),
    "ui": ("ui_cmd", "ui", "A local web app: the handbook, the review queue, traces and plots."),
    "worker": ("worker_cmd", "worker", "Run a reflection worker in the foreground until SIGTERM or Ctrl-C."),
}


class _Group(click.Group):
    """Loads each command on first use, and turns our errors into one red line (unless --debug)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"{__package__}.{entry[0]}")
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The help lines come from the registry: listing the commands must not import them.
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        # A stand-in command shortens the line exactly the way click shortens a real one.
        rows = [
            (name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)) for name in sorted(COMMANDS)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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


def _namespace_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check ``-n`` where it is typed: ``-n ""`` once meant the default namespace, silently."""
    if value is None:
        return None
    from ..types import validate_namespace  # here, not at the top: `bmem --help` stays instant

    try:
        return validate_namespace(value)
    except BehaviorMemoryError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML configuration (default: ./behavior-memory.yaml).",
)
@click.option(
    "--namespace", "-n", callback=_namespace_option, help="Namespace to work in (default: the configuration's)."
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="behavior-memory")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, namespace: str | None, debug: bool) -> None:
    """Procedural memory for LLM agents: behaviors, traces and the handbook."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = CliContext(config_path=config_path, namespace=namespace, debug=debug)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="bmem")
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.secho("interrupted", fg="yellow", err=True)
        sys.exit(130)
