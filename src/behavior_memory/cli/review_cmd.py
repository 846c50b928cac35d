"""``bmem review`` and ``bmem behaviors approve|reject|quarantine|edit``: a person's decisions.

Every decision goes through the handbook (the same guard, the same history records as the API),
and stored text is printed as text, never as markup: a behavior cannot style or link the terminal.
"""

from __future__ import annotations

import click
from rich.markup import escape

from ..errors import QuarantinedError
from ..types import Behavior, BehaviorStatus
from .context import CliContext, pass_ctx

__all__ = ["approve", "edit", "quarantine", "reject", "review"]

_QUEUE = (BehaviorStatus.QUARANTINED, BehaviorStatus.CANDIDATE)
_CHOICES = {"a": "approve", "r": "reject", "e": "edit", "q": "quarantine", "s": "skip", "x": "exit"}


def _card(obj: CliContext, b: Behavior, position: str) -> None:
    c = obj.console
    c.print(f"\n[bold]{position}[/bold]  {escape(b.name)}  [yellow]{b.status}[/yellow]  topic {escape(b.topic or '-')}")
    c.print(f"  {escape(b.instruction)}")
    guard = b.metadata.get("guard") or {}
    if guard.get("rule"):
        c.print(f"  [red]guard: rule {escape(str(guard['rule']))}[/red] matched {escape(repr(guard.get('evidence')))}")
    history = b.metadata.get("history") or []
    if history:
        last = history[-1]
        c.print(f"  [dim]last: {escape(str(last.get('reason')))} (by {escape(str(last.get('by')))})[/dim]")
    counts = f"sources {len(set(b.sources))}, shown {b.shown}, cited {b.cited}"
    c.print(f"  [dim]{counts}, model {escape(b.model or '-')}[/dim]")


@click.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in _QUEUE]),
    help="Only this status (repeatable; default: quarantined, then candidates).",
)
@click.option("--limit", type=int, help="At most this many.")
@pass_ctx
def review(obj: CliContext, statuses: tuple[str, ...], limit: int | None) -> None:
    """Walk the review queue: approve, reject, edit or quarantine what waits."""
    memory = obj.memory()
    handbook = memory.handbook
    wanted = [BehaviorStatus(s) for s in statuses] or list(_QUEUE)
    queue = [b for status in wanted for b in handbook.list(status=status)]
    if limit is not None:
        queue = queue[:limit]
    if not queue:
        obj.console.print(f"nothing to review in '{escape(memory.namespace)}'")
        return
    done: dict[str, int] = {}
    for i, b in enumerate(queue, 1):
        _card(obj, b, f"{i}/{len(queue)}")
        answer = click.prompt(
            "  [a]pprove [r]eject [e]dit [q]uarantine [s]kip e[x]it",
            type=click.Choice(list(_CHOICES)),
            default="s",
            show_choices=False,
        )
        action = _CHOICES[answer]
        if action == "exit":
            break
        if action == "skip":
            done["skipped"] = done.get("skipped", 0) + 1
            continue
        if action == "approve":
            force = b.status == BehaviorStatus.QUARANTINED and click.confirm(
                "  it is quarantined; approve it anyway (the override is recorded)?", default=False
            )
            if b.status == BehaviorStatus.QUARANTINED and not force:
                continue
            handbook.approve(b.id, force=force)
        elif action == "reject":
            handbook.reject(b.id, reason=click.prompt("  reason", default="rejected"))
        elif action == "quarantine":
            handbook.quarantine(b.id, reason=click.prompt("  reason"))
        elif action == "edit":
            text = click.prompt("  new instruction", default=b.instruction)
            try:
                handbook.edit(b.id, instruction=text)
            except QuarantinedError as exc:
                obj.err.print(f"  [red]{escape(str(exc))}[/red]")
                continue
        done[action] = done.get(action, 0) + 1
    obj.console.print(", ".join(f"{n} {a}" for a, n in sorted(done.items())) or "no decisions")


@click.command()
@click.argument("keys", nargs=-1, required=True)
@click.option("--reason", default="approved", show_default=True)
@click.option("--force", is_flag=True, help="Approve a quarantined behavior too (the override is recorded).")
@pass_ctx
def approve(obj: CliContext, keys: tuple[str, ...], reason: str, force: bool) -> None:
    """Make behaviors active (a person's approval, recorded)."""
    handbook = obj.memory().handbook
    for key in keys:
        b = handbook.approve(key, reason=reason, force=force)
        obj.console.print(f"{escape(b.name)}: {b.status}")


@click.command()
@click.argument("keys", nargs=-1, required=True)
@click.option("--reason", default="rejected", show_default=True)
@pass_ctx
def reject(obj: CliContext, keys: tuple[str, ...], reason: str) -> None:
    """Archive behaviors: never injected again, kept with their provenance."""
    handbook = obj.memory().handbook
    for key in keys:
        b = handbook.reject(key, reason=reason)
        obj.console.print(f"{escape(b.name)}: {b.status}")


@click.command()
@click.argument("keys", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why (kept in the behavior's history).")
@pass_ctx
def quarantine(obj: CliContext, keys: tuple[str, ...], reason: str) -> None:
    """Quarantine behaviors: never injected until a person approves them with --force."""
    handbook = obj.memory().handbook
    for key in keys:
        b = handbook.quarantine(key, reason=reason)
        obj.console.print(f"{escape(b.name)}: {b.status}")


@click.command()
@click.argument("key")
@click.option("--instruction", help="The new one-line instruction.")
@click.option("--topic", help="The new topic ('' clears it).")
@click.option("--force", is_flag=True, help="Store it even if the guard flags it (the override is recorded).")
@pass_ctx
def edit(obj: CliContext, key: str, instruction: str | None, topic: str | None, force: bool) -> None:
    """Rewrite a behavior; the new text passes the guard."""
    if instruction is None and topic is None:
        raise click.UsageError("give --instruction and/or --topic")
    b = obj.memory().handbook.edit(key, instruction=instruction, topic=topic, force=force)
    obj.console.print(f"{escape(b.name)}: {escape(b.instruction)}")
