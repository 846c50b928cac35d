"""Tables and detail views shared by the commands."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from ..retrieval.base import ScoredBehavior
from ..types import Behavior, Trace

__all__ = ["behavior_table", "trace_table"]


def behavior_table(items: Sequence[Behavior | ScoredBehavior], *, title: str | None = None) -> Table:
    scored = bool(items) and isinstance(items[0], ScoredBehavior)
    table = Table(title=title, show_lines=False, expand=False)
    if scored:
        table.add_column("score", justify="right")
    for name in ("name", "instruction", "topic", "status", "shown", "cited"):
        table.add_column(name, overflow="fold", justify="right" if name in ("shown", "cited") else "left")
    for item in items:
        b = item.behavior if isinstance(item, ScoredBehavior) else item
        row = [
            b.name,
            b.instruction,
            b.topic or "",
            str(b.status) + (" (pinned)" if b.pinned else ""),
            str(b.shown),
            str(b.cited),
        ]
        if isinstance(item, ScoredBehavior):
            row.insert(0, f"{item.score:.3f}")
        table.add_row(*row)
    return table


def trace_table(traces: Sequence[Trace]) -> Table:
    table = Table(show_lines=False)
    for name in ("id", "created", "namespace", "task", "outcome", "reflection", "minted"):
        table.add_column(name, overflow="fold")
    for t in traces:
        task = t.task if len(t.task) <= 60 else t.task[:57] + "..."
        table.add_row(
            t.id,
            t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            t.namespace,
            task,
            str(t.outcome),
            str(t.reflection_status),
            str(len(t.minted)),
        )
    return table
