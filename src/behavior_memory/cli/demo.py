"""``bmem demo``: the whole loop on GSM8K problems against the local (or configured) vLLM server."""

from __future__ import annotations

import functools
import shutil

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..eval.demo import Solved, load_gsm8k_sample, solve_all, summarize
from ..memory import BehaviorMemory
from ..serving import embedded, server
from ..types import Behavior, BehaviorStatus
from .context import CliContext, pass_ctx
from .render import behavior_table, safe

__all__ = ["demo"]


def _explain_statuses(console: Console, minted: list[Behavior]) -> None:
    """Say why each minted behavior is where it is: the guard's rule, or the evidence it waits for."""
    for b in minted:
        guard = b.metadata.get("guard") or {}
        if b.status == BehaviorStatus.QUARANTINED and guard.get("rule"):
            console.print(
                f"   [red]quarantined[/red] {safe(b.name)}: rule {safe(str(guard['rule']))} matched "
                f"{safe(repr(guard.get('evidence')))}"
            )
        elif b.status == BehaviorStatus.CANDIDATE:
            console.print(f"   [yellow]candidate[/yellow] {safe(b.name)}: waits for evidence or a person")


def _advance(bar: Progress, task: TaskID, *_: object) -> None:
    bar.advance(task)


def _progress(console: Console, label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


@click.command()
@click.option("--train", "n_train", type=int, default=6, show_default=True, help="Problems solved to learn from.")
@click.option("--test", "n_test", type=int, default=6, show_default=True, help="Problems solved with and without.")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="Answer budget per problem.")
@click.option("-k", type=int, default=5, show_default=True, help="Behaviors retrieved per problem.")
@click.option("--concurrency", "-j", type=int, default=4, show_default=True, help="Requests at once.")
@click.option("--keep", is_flag=True, help="Keep the previous demo handbook instead of starting fresh.")
@pass_ctx
def demo(obj: CliContext, n_train: int, n_test: int, max_tokens: int, k: int, concurrency: int, keep: bool) -> None:
    """Solve GSM8K problems, reflect, mint behaviors, and solve again with them; print the figures."""
    console, cfg = obj.console, obj.config()
    problems = load_gsm8k_sample()
    if n_train + n_test > len(problems):
        raise click.BadParameter(f"the sample has {len(problems)} problems; ask for at most that many in all")
    train, test = problems[:n_train], problems[n_train : n_train + n_test]

    # The demo keeps its own handbook in the cache, so it never touches the user's.
    demo_dir = embedded.cache_dir() / "demo"
    if not keep:
        shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True, exist_ok=True)
    demo_cfg = cfg.model_copy(deep=True, update={"namespace": "demo"})
    demo_cfg.store.path = str(demo_dir / "handbook.db")
    demo_cfg.reflection.mode = "manual"
    demo_cfg.retrieval.strategy = "topic"  # the paper's MATH mode: all behaviors of the problem's topic, up to k
    demo_cfg.reflection.max_behaviors_per_trace = 3
    demo_cfg.llm.output_retries = 1
    demo_cfg.reflection.extra_body = {"repetition_penalty": 1.1}  # small models loop without it

    if cfg.llm.base_url.rstrip("/") == cfg.serve.base_url.rstrip("/"):
        console.print(
            f"[bold]1. model server[/bold] at {cfg.serve.base_url} (starting it if needed; the first "
            "run installs the CPU build of vLLM and converts SmolLM2, several minutes)"
        )
        info = server.start(cfg.serve)
        demo_cfg.llm.model = info.model
    else:
        console.print(f"[bold]1. model server[/bold]: using the configured {cfg.llm.model} at {cfg.llm.base_url}")

    with BehaviorMemory(demo_cfg) as memory:
        if not memory.llm.health():
            raise click.ClickException(f"the model server at {demo_cfg.llm.base_url} does not answer")
        console.print(f"   model {demo_cfg.llm.model}; handbook {demo_cfg.store_path()}")

        console.print(f"\n[bold]2. solving {len(train)} problems without behaviors[/bold] (each becomes a trace)")
        with _progress(obj.err, "solving") as bar:
            task = bar.add_task("", total=len(train))
            solve_all(
                memory,
                train,
                with_behaviors=False,
                max_tokens=max_tokens,
                k=k,
                concurrency=concurrency,
                on_done=lambda _: bar.advance(task),
            )

        console.print(f"\n[bold]3. reflecting on {len(train)} traces[/bold] (the paper's reflection and extraction)")
        with _progress(obj.err, "reflecting") as bar:
            task = bar.add_task("", total=len(train))
            outcomes = memory.reflect_pending(concurrency=concurrency, on_done=lambda *_: bar.advance(task))
        minted = memory.handbook.list()
        console.print(f"   traces: {dict(outcomes)}")
        console.print(behavior_table(minted, title=f"{len(minted)} behaviors minted"))
        _explain_statuses(console, minted)

        # A curation pass: candidates minted from traces whose answer checked out (or backed by
        # min_support traces) become active; the guard's quarantine stands until a person decides.
        from ..reflection.curation import CurationPass

        report = CurationPass(memory.store, memory.embedder, demo_cfg.curation).run(memory.namespace)
        for moved in report.changes:
            console.print(
                f"   curation: {safe(moved.name)} {moved.from_status} -> {moved.to_status}: {safe(moved.reason)}"
            )
        active = memory.handbook.list(status="active")
        console.print(f"   {len(active)} of {len(memory.handbook.list())} behaviors active after curation")
        candidates = memory.handbook.list(status="candidate")
        if candidates:  # a person would review them; the demo approves them, on the record, to show the effect
            for b in candidates:
                memory.handbook.approve(b.id, by="bmem demo", reason="approved by the demo to show its effect")
            console.print(
                f"   the demo approves the {len(candidates)} candidate(s) as a reviewer would "
                "(`bmem review`); quarantined ones stay out"
            )
        elif not active:
            console.print(
                "   [yellow]no behavior is active: the guard kept everything this model minted out, so both "
                "conditions below see the same prompt[/yellow]"
            )

        console.print(f"\n[bold]4. solving {len(test)} new problems, without and then with behaviors[/bold]")
        results: dict[str, list[Solved]] = {}
        for label, flag in (("without behaviors", False), ("with behaviors", True)):
            with _progress(obj.err, label) as bar:
                task = bar.add_task("", total=len(test))
                results[label] = solve_all(
                    memory,
                    test,
                    with_behaviors=flag,
                    max_tokens=max_tokens,
                    k=k,
                    concurrency=concurrency,
                    on_done=functools.partial(_advance, bar, task),
                )

        rows = [summarize(label, solved) for label, solved in results.items()]
        table = Table(title=f"GSM8K, {len(test)} problems, {demo_cfg.llm.model}")
        for name in (
            "condition",
            "accuracy",
            "prompt tokens / problem",
            "output tokens / problem",
            "behaviors shown / problem",
            "citations",
        ):
            table.add_column(name, justify="left" if name == "condition" else "right")
        for row in rows:
            table.add_row(
                row.label,
                f"{row.accuracy:.0%}",
                f"{row.prompt_tokens:.0f}",
                f"{row.completion_tokens:.0f}",
                f"{row.shown:.1f}",
                str(row.cited),
            )
        console.print()
        console.print(table)
        base, with_b = rows
        if base.completion_tokens:
            change = (with_b.completion_tokens - base.completion_tokens) / base.completion_tokens
            console.print(
                f"output tokens with behaviors: {change:+.0%} versus without; the behavior block adds "
                f"{with_b.prompt_tokens - base.prompt_tokens:.0f} prompt tokens (cacheable prefix)"
            )
        counts = memory.handbook.list()
        console.print(
            f"handbook: {len(counts)} behaviors, shown {sum(b.shown for b in counts)} times, "
            f"cited {sum(b.cited for b in counts)} times"
        )
        console.print(
            "[dim]A 135M-parameter model proves the plumbing, not the paper's numbers: point llm.base_url "
            "at a GPU vLLM server with a reasoning model for those.[/dim]"
        )
        waiting = [b for b in memory.handbook.list() if b.status in ("candidate", "quarantined")]
        if waiting:
            console.print(
                f"\nnext: {len(waiting)} behaviors wait for a person; look at them with\n"
                f"  BMEM_STORE__PATH={demo_cfg.store_path()} bmem -n {memory.namespace} review",
                markup=False,
            )
