"""``bmem reflect``: reflect pending traces now, with a progress bar."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..reflection.worker import TraceResult
from ..types import ReflectionStatus, Trace
from .context import CliContext, pass_ctx

__all__ = ["reflect"]


@click.command()
@click.option("--all-pending", is_flag=True, help="Reflect every pending trace (the default).")
@click.option("--trace", "trace_ids", multiple=True, help="Reflect this trace (repeatable), whatever its status.")
@click.option("--concurrency", "-j", type=int, help="Traces at once (default: reflection.concurrency).")
@click.option("--limit", type=int, help="Stop after this many traces.")
@pass_ctx
def reflect(
    obj: CliContext, all_pending: bool, trace_ids: tuple[str, ...], concurrency: int | None, limit: int | None
) -> None:
    """Reflect traces to mint behaviors (the model server must answer)."""
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
    pending = memory.traces.count(all_namespaces=True, status=ReflectionStatus.PENDING)  # reflection claims from all
    total = pending if limit is None else min(pending, limit)
    if total == 0:
        obj.console.print("no pending traces")
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
    if outcomes.get(str(TraceResult.SERVER_DOWN)):
        raise click.ClickException(
            f"the model server at {memory.config.llm.base_url} did not answer; the remaining traces stay pending "
            "(start it with `bmem serve`, then run `bmem reflect` again)"
        )
