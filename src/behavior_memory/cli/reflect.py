"""``bmem reflect``: reflect pending traces now, with a progress bar.

It takes what the background worker would: pending traces and traces whose claim expired (a
process died holding them). ``--retry-failed`` first puts failed traces back to pending, all of
them or those whose reason or age match.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..reflection.worker import TraceResult
from ..types import ReflectionStatus, Trace, utcnow
from .context import CliContext, pass_ctx

if TYPE_CHECKING:
    from ..memory import BehaviorMemory

__all__ = ["parse_age", "reflect"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """An age such as ``90s``, ``30m``, ``2h``, ``1.5d`` or ``1w`` (a bare number is seconds).

    >>> parse_age("2h")
    datetime.timedelta(seconds=7200)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if match is None:
        raise click.BadParameter(f"{text!r} is not an age such as 90s, 30m, 2h, 1d or 1w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])


def _age_option(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    return None if value is None else parse_age(value)


@click.command()
@click.option("--all-pending", is_flag=True, help="Reflect every pending trace (the default).")
@click.option("--trace", "trace_ids", multiple=True, help="Reflect this trace (repeatable), whatever its status.")
@click.option("--concurrency", "-j", type=int, help="Traces at once (default: reflection.concurrency).")
@click.option("--limit", type=int, help="Stop after this many traces.")
@click.option("--retry-failed", is_flag=True, help="First put failed traces back to pending (attempts reset).")
@click.option("--reason", help="With --retry-failed: only traces whose stored error contains this text.")
@click.option(
    "--older-than",
    metavar="AGE",
    callback=_age_option,
    help="With --retry-failed: only traces created more than AGE ago (90s, 30m, 2h, 1d).",
)
@pass_ctx
def reflect(
    obj: CliContext,
    all_pending: bool,
    trace_ids: tuple[str, ...],
    concurrency: int | None,
    limit: int | None,
    retry_failed: bool,
    reason: str | None,
    older_than: timedelta | None,
) -> None:
    """Reflect traces to mint behaviors (the model server must answer)."""
    if (reason is not None or older_than is not None) and not retry_failed:
        raise click.UsageError("--reason and --older-than choose which failed traces --retry-failed re-queues")
    memory = obj.memory()
    if trace_ids:
        for trace_id in trace_ids:
            result = memory.reflect_trace(trace_id)
            trace = memory.traces.get(trace_id)
            obj.console.print(
                f"{trace_id}: {result}; minted: {', '.join(trace.minted) or '-'}"
                + (f"; note: {trace.reflection_error}" if trace.reflection_error else "")
            )
        return
    if retry_failed:
        _requeue(obj, memory, reason, older_than)
    # Reflection claims from every namespace, pending traces and expired claims alike.
    claimable = memory.store.count_claimable(lease_s=memory.config.reflection.lease_s)
    total = claimable if limit is None else min(claimable, limit)
    if total == 0:
        obj.console.print("no traces to reflect" + _held_elsewhere(memory))
        return
    with Progress(
        TextColumn("reflecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=obj.err,
    ) as progress:
        bar = progress.add_task("", total=total)

        def done(trace: Trace, result: TraceResult) -> None:
            progress.update(bar, advance=1, description=f"last: {result}")

        outcomes = memory.reflect_pending(concurrency=concurrency, limit=limit, on_done=done)
    stats = memory.reflection.stats
    obj.console.print(
        f"reflected {sum(outcomes.values())} traces: "
        + ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
        + f"; behaviors added {stats['added']}, merged {stats['merged']}"
    )
    waiting = outcomes.get(str(TraceResult.SERVER_DOWN)) and memory.store.count_claimable(
        lease_s=memory.config.reflection.lease_s
    )
    if waiting:
        raise click.ClickException(
            f"the model server at {memory.config.llm.base_url} is unavailable{_last_fault(memory)}; "
            f"the remaining {waiting} trace(s) stay pending with their attempts intact "
            "(start it with `bmem serve`, then run `bmem reflect` again)"
        )


def _requeue(obj: CliContext, memory: BehaviorMemory, reason: str | None, older_than: timedelta | None) -> None:
    """Put the chosen failed traces back to pending and say how many."""
    before = utcnow() - older_than if older_than is not None else None
    count = memory.store.requeue_traces(obj.namespace, error_contains=reason, before=before)
    which = [f"namespace {obj.namespace!r}"] if obj.namespace else []
    if reason is not None:
        which.append(f"error contains {reason!r}")
    if older_than is not None:
        which.append(f"created more than {older_than} ago")
    obj.console.print(f"re-queued {count} failed trace(s)" + (f" ({'; '.join(which)})" if which else ""))


def _held_elsewhere(memory: BehaviorMemory) -> str:
    """A note on traces another process holds (or held when it died: they come back after the lease)."""
    running = memory.traces.count(all_namespaces=True, status=ReflectionStatus.RUNNING)
    if not running:
        return ""
    return (
        f" now; {running} trace(s) are claimed by another process, or by one that died "
        f"(claims expire after reflection.lease_s = {memory.config.reflection.lease_s:g} s)"
    )


def _last_fault(memory: BehaviorMemory) -> str:
    """The reason a waiting trace keeps: the fault that made it wait (a wrong model name reads as a 404)."""
    waiting = memory.traces.list(all_namespaces=True, status=ReflectionStatus.PENDING, limit=1)
    reason = waiting[0].reflection_error if waiting else None
    return f" ({reason})" if reason else ""
