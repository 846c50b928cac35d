"""``bmem behaviors list|show|search|add|rm|export|import``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from ..types import BehaviorStatus
from . import reembed_cmd, review_cmd, utility_cmd
from .context import CliContext, pass_ctx
from .output_file import check_output, write_whole
from .render import behavior_table, plain, safe

__all__ = ["behaviors"]

_STATUSES = click.Choice([s.value for s in BehaviorStatus])


@click.group()
def behaviors() -> None:
    """Manage the behaviors of the handbook."""


@behaviors.command("list")
@click.option("--status", type=_STATUSES, help="Only behaviors with this status.")
@click.option("--topic", help="Only behaviors of this topic.")
@click.option("--limit", type=int, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_ctx
def list_(obj: CliContext, status: str | None, topic: str | None, limit: int | None, as_json: bool) -> None:
    """List behaviors, ordered by name."""
    memory = obj.memory()
    items = memory.handbook.list(status=status, topic=topic, limit=limit)
    if as_json:
        for b in items:
            click.echo(b.model_dump_json())
        return
    obj.console.print(behavior_table(items, title=f"{len(items)} behaviors in '{memory.namespace}'"))


@behaviors.command("show")
@click.argument("key")
@pass_ctx
def show(obj: CliContext, key: str) -> None:
    """Show one behavior (by name or id) with its counters, lifecycle scores and provenance."""
    from dataclasses import asdict

    from ..lifecycle import score

    behavior = obj.memory().handbook.get(key)
    scores = score(behavior)  # the rates the lifecycle decides on, with their 95% lower bounds
    rates = {"evidence": scores.evidence, "helped_rate": scores.helped_rate, "hurt_rate": scores.hurt_rate}
    record = {**behavior.model_dump(mode="json"), "scores": {**asdict(scores), **rates}}
    click.echo(json.dumps(record, indent=2))


@behaviors.command("search")
@click.argument("query")
@click.option("-k", type=int, help="How many (default: retrieval.k).")
@click.option("--topic", help="Topic of the query (topic retrieval).")
@click.option("--render", "show_block", is_flag=True, help="Print the block an agent would get.")
@pass_ctx
def search(obj: CliContext, query: str, k: int | None, topic: str | None, show_block: bool) -> None:
    """Retrieve the behaviors an agent would get for QUERY."""
    memory = obj.memory()
    hits = memory.retrieve(query, k=k, topic=topic)
    if show_block:
        block = memory.render(hits)
        click.echo(plain(block) if block else "(no behaviors: the prompt is left unchanged)")
        obj.err.print(
            f"[dim]{block.tokens} tokens, {len(block.names)} behaviors, {len(block.dropped)} over budget[/dim]"
        )
        return
    obj.console.print(behavior_table(hits, title=f"{len(hits)} behaviors for: {query}"))


@behaviors.command("add")
@click.argument("name")
@click.argument("instruction")
@click.option("--topic", help="Topic (the paper's MATH mode retrieves by topic).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeatable.")
@click.option("--status", type=_STATUSES, default="active", show_default=True)
@click.option("--pinned", is_flag=True, help="Always injected first (stable prompt prefix).")
@click.option("--force", is_flag=True, help="Add it even if the guard flags it (the override is recorded).")
@pass_ctx
def add(
    obj: CliContext,
    name: str,
    instruction: str,
    topic: str | None,
    tags: tuple[str, ...],
    status: str,
    pinned: bool,
    force: bool,
) -> None:
    """Add a behavior: NAME (behavior_snake_case) and a one-line INSTRUCTION."""
    b = obj.memory().handbook.add(name, instruction, topic=topic, tags=tags, status=status, pinned=pinned, force=force)
    obj.console.print(f"[green]added[/green] {safe(b.name)} ({b.id}) to '{b.namespace}'")


@behaviors.command("rm")
@click.argument("keys", nargs=-1, required=True)
@pass_ctx
def rm(obj: CliContext, keys: tuple[str, ...]) -> None:
    """Remove behaviors by name or id."""
    memory = obj.memory()
    for key in keys:
        memory.handbook.remove(key)
        obj.console.print(f"[green]removed[/green] {safe(key)}")


@behaviors.command("set-status")
@click.argument("keys", nargs=-1, required=True)
@click.option("--status", type=_STATUSES, required=True)
@click.option("--reason", help="Why (kept in the behavior's history).")
@click.option("--force", is_flag=True, help="Activate a quarantined behavior too (the override is recorded).")
@pass_ctx
def set_status(obj: CliContext, keys: tuple[str, ...], status: str, reason: str | None, force: bool) -> None:
    """Change the status of behaviors, recorded (approve, reject and quarantine say it shorter)."""
    memory = obj.memory()
    for key in keys:
        b = memory.handbook.set_status(key, status, reason=reason, force=force)
        obj.console.print(f"{escape(b.name)}: {b.status}")


@behaviors.command("export")
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write (default: stdout); never the handbook itself or another SQLite database.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "skills"]),
    default="jsonl",
    show_default=True,
    help="skills: one Agent Skills folder per topic under DIRECTORY (active behaviors only).",
)
@click.option("--force", is_flag=True, help="Replace the --out file if it exists (a database is never replaced).")
@pass_ctx
def export(obj: CliContext, directory: Path | None, out: Path | None, fmt: str, force: bool) -> None:
    """Export the namespace's behaviors as JSONL, or as Agent Skills into DIRECTORY (--format skills)."""
    if fmt == "skills" or directory is not None:
        _export_skills(obj, directory, fmt, force)
        return
    if out is None:
        memory = obj.memory()
        count = memory.handbook.export_jsonl(sys.stdout)
        obj.err.print(f"[dim]exported {count} behaviors from '{memory.namespace}'[/dim]")
        return
    # Checked before the store is opened: opening it creates the file when it is missing.
    target = check_output(out, store=obj.config().store_path(), force=force)
    memory = obj.memory()
    count = write_whole(target, memory.handbook.export_jsonl)
    obj.err.print(f"[dim]exported {count} behaviors from '{memory.namespace}' to {safe(target)}[/dim]")


def _export_skills(obj: CliContext, directory: Path | None, fmt: str, force: bool) -> None:
    from ..handbook_skills import export_skills

    if fmt != "skills" or directory is None:
        raise click.UsageError("a DIRECTORY goes with --format skills (JSONL goes to --out or stdout)")
    memory = obj.memory()
    report = export_skills(memory.handbook, directory, force=force)
    obj.err.print(
        f"[dim]exported {report.behaviors} active behaviors from '{memory.namespace}' as "
        f"{len(report.skills)} skills in {safe(directory)}[/dim]"
    )


@behaviors.command("import")
@click.argument("source", type=click.Path(path_type=Path, exists=True, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "skills"]),
    default="jsonl",
    show_default=True,
    help="skills: SOURCE is a skill folder, or a folder of them (always as candidates).",
)
@click.option("--replace", is_flag=True, help="Replace behaviors that already exist (default: skip them).")
@click.option(
    "--trust",
    is_flag=True,
    help="Take the records as they are: status, counters, pin, sources and model "
    "(default: candidates with zeroed counters, for a person to approve).",
)
@pass_ctx
def import_(obj: CliContext, source: Path, fmt: str, replace: bool, trust: bool) -> None:
    """Import behaviors from a JSONL file ('-' for stdin); bad lines are reported, good ones kept.

    Unless --trust, every behavior arrives as a candidate, unpinned, with zeroed counters and no
    sources, its provenance noted as "imported from SOURCE": approve the ones you want.
    --format skills reads Agent Skills folders instead (never trusted).
    """
    if fmt == "skills":
        _import_skills(obj, source, replace, trust)
        return
    if source.is_dir():
        raise click.UsageError(f"{source} is a folder: pass --format skills to import Agent Skills")
    memory = obj.memory()
    src = sys.stdin.buffer if str(source) == "-" else source
    report = memory.handbook.import_jsonl(src, replace=replace, trust=trust)
    obj.console.print(
        f"imported {report.imported}, replaced {report.replaced}, skipped {len(report.skipped)}, "
        f"rejected {len(report.errors)} into '{memory.namespace}'"
        + (
            ""
            if trust or not (report.imported or report.replaced)
            else " as candidates: `bmem review` or `bmem behaviors approve NAME` makes them active"
        )
    )
    for number, reason in report.skipped:
        obj.err.print(f"[yellow]line {number}: skipped: {safe(reason)}[/yellow]")
    for number, reason in report.errors:
        obj.err.print(f"[red]line {number}: {safe(reason)}[/red]")
    for number, reason in report.quarantined:
        obj.err.print(f"[red]line {number}: quarantined by the guard: {safe(reason)}[/red]")
    if report.quarantined:
        obj.err.print("[dim]see them with `bmem review`[/dim]")
    if report.errors:
        sys.exit(2)  # partial import: the good lines are stored, the caller should look at the rest


def _import_skills(obj: CliContext, source: Path, replace: bool, trust: bool) -> None:
    from ..handbook_skills import import_skills

    if trust:
        raise click.UsageError("--trust does not apply to skills: they arrive as candidates")
    memory = obj.memory()
    report, problems = import_skills(memory.handbook, source, replace=replace)
    obj.console.print(
        f"imported {report.imported}, replaced {report.replaced} into '{memory.namespace}' as candidates"
        + (": `bmem review` makes them active" if report.imported or report.replaced else "")
    )
    for where, reason in problems:
        obj.err.print(f"[yellow]{safe(where)}: {safe(reason)}[/yellow]")
    if any(not reason.startswith(("skipped:", "quarantined:")) for _, reason in problems):
        sys.exit(2)  # a malformed skill or a rejected line: the good ones are stored, look at the rest


# A person's decisions live in review_cmd (shared with ``bmem review``); they are behaviors commands too.
for _command in (review_cmd.approve, review_cmd.reject, review_cmd.quarantine, review_cmd.edit):
    behaviors.add_command(_command)
behaviors.add_command(utility_cmd.utility)
behaviors.add_command(reembed_cmd.reembed)
