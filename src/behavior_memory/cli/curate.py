"""``bmem curate [--dry-run] [--all-namespaces]``: merge near-duplicates and move behaviors through their lifecycle."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from rich.table import Table

from .context import CliContext, pass_ctx
from .render import cell, safe

if TYPE_CHECKING:
    from ..reflection.curation import CurationReport

__all__ = ["curate"]


def change_table(reports: Sequence[CurationReport], *, title: str) -> Table:
    """One row per change: namespace (when several), behavior, what changed, and why."""
    several = len({r.namespace for r in reports}) > 1
    table = Table(title=cell(title), show_lines=False)
    if several:
        table.add_column("namespace", overflow="fold")
    for name in ("behavior", "change", "status", "reason"):
        table.add_column(name, overflow="fold")
    for report in reports:
        for c in report.changes:
            status = c.to_status if c.from_status == c.to_status else f"{c.from_status} -> {c.to_status}"
            row = [c.name, c.action, status, c.reason]
            table.add_row(*map(cell, [c.namespace, *row] if several else row))
    return table


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--all-namespaces", is_flag=True, help="Curate every namespace of the store, not only -n's.")
@pass_ctx
def curate(obj: CliContext, dry_run: bool, all_namespaces: bool) -> None:
    """Merge near-duplicates; make behaviors active, stale or archived, with reasons.

    Duplicates fold into one keeper (sources and counters kept, the others archived "merged into"
    it); candidates with enough support become active, unused ones stale, harmful ones archived.
    Every change is recorded in the behavior's history; nothing is deleted.
    """
    from ..reflection.curation import CurationPass

    memory = obj.memory()
    if not dry_run:
        memory.handbook.ensure_embedder()  # re-embeds first if the embedder changed: vectors must compare
    curation = CurationPass(memory.store, memory.embedder, memory.config.curation)
    reports = curation.run_all(dry_run=dry_run) if all_namespaces else [curation.run(memory.namespace, dry_run=dry_run)]
    where = "every namespace" if all_namespaces else f"'{memory.namespace}'"
    count = sum(len(r.changes) for r in reports)
    verb = "would change" if dry_run else "changed"
    if count:
        title = f"{count} {'change' if count == 1 else 'changes'} in {where}" + (
            " (dry run: nothing written)" if dry_run else ""
        )
        obj.console.print(change_table(reports, title=title))
    else:
        behaviors, traces = sum(r.behaviors for r in reports), sum(r.traces_read for r in reports)
        obj.console.print(f"curation {verb} nothing in {safe(where)} ({behaviors} behaviors, {traces} traces read)")
    for report in reports:
        for note in report.notes:
            obj.err.print(f"[dim]{safe(report.namespace)}: {safe(note)}[/dim]")
    failed = [r for r in reports if r.error]
    for report in failed:
        obj.err.print(f"[red]{safe(report.namespace)}: {safe(report.error)}[/red]")
    if failed:
        sys.exit(1)
