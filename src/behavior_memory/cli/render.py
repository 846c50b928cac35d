"""Tables and detail views shared by the commands, and the two rules for printing stored text.

Behaviors and traces hold text that came from models, tools and imported files. Printed as it is,
``[/bold]`` would crash rich's markup parser, ``[link=...]`` would become a live link, and an
escape sequence or a ``\\r`` could repaint the terminal. So every stored or typed text goes out
through ``plain`` (control characters shown as escapes) and, where it meets markup, ``safe``
(markup escaped too); table cells are ``Text`` objects, which rich never parses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..retrieval.base import ScoredBehavior
from ..types import Behavior, Trace

__all__ = ["behavior_table", "cell", "plain", "safe", "trace_table"]

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the bidirectional
# overrides that make text read differently from what it is ("Trojan Source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: object) -> str:
    """``str(text)`` with every terminal control character written as its escape (``\\x1b``, ``\\r``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def safe(text: object) -> str:
    """``plain(text)`` with rich markup escaped: for stored text inside a markup string."""
    return escape(plain(text))


def cell(text: object) -> Text:
    """A table cell or title that shows ``text`` literally (no markup, no emoji codes, no controls)."""
    return Text(plain(text))


def behavior_table(items: Sequence[Behavior | ScoredBehavior], *, title: str | None = None) -> Table:
    scored = bool(items) and isinstance(items[0], ScoredBehavior)
    table = Table(title=None if title is None else cell(title), show_lines=False, expand=False)
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
        table.add_row(*map(cell, row))
    return table


def trace_table(traces: Sequence[Trace]) -> Table:
    table = Table(show_lines=False)
    for name in ("id", "created", "namespace", "task", "outcome", "reflection", "minted"):
        table.add_column(name, overflow="fold")
    for t in traces:
        task = t.task if len(t.task) <= 60 else t.task[:57] + "..."
        table.add_row(
            *map(
                cell,
                (
                    t.id,
                    t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    t.namespace,
                    task,
                    str(t.outcome),
                    str(t.reflection_status),
                    str(len(t.minted)),
                ),
            )
        )
    return table
