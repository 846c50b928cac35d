"""``bmem behaviors reembed``: embed every behavior again with the configured embedder, with a progress bar."""

from __future__ import annotations

import click

from .context import CliContext, pass_ctx

__all__ = ["reembed"]


@click.command("reembed")
@click.option("--batch", type=click.IntRange(1, 100_000), default=256, show_default=True, help="Behaviors per batch.")
@click.option("--force", is_flag=True, help="Re-embed even when the vectors are already the embedder's.")
@pass_ctx
def reembed(obj: CliContext, batch: int, force: bool) -> None:
    """Re-embed the handbook (every namespace) after the embedder changed.

    The memory does this by itself in a background thread when it notices the change; this runs it
    in the foreground, batch by batch. Retrieval stays lexical until it ends; a run that is stopped
    is simply run again.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..retrieval.reembed import Reembedding, embedder_id, needs_reembedding

    memory = obj.memory()
    if memory.embedder is None:
        raise click.UsageError("embeddings are off (embeddings.provider: none): there is nothing to re-embed with")
    target = embedder_id(memory.embedder)
    if not force and not needs_reembedding(memory.store, memory.embedder):
        obj.console.print(f"the vectors are already {target}'s: nothing to do (--force re-embeds anyway)")
        return
    columns = (TextColumn("re-embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=obj.err, transient=True) as bar:
        task = bar.add_task("reembed", total=None)
        run = Reembedding(
            memory.store,
            memory.embedder,
            batch=batch,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        count = run.run()
    obj.console.print(f"re-embedded {count} behaviors with {target}")
