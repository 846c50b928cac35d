"""``bmem eval``: reproduce the paper's measurements against any OpenAI-compatible (vLLM) server.

``bmem eval bci`` curates a handbook from a training pool and answers a test set with and without
behaviors at each token budget; ``bmem eval sft`` compares base, plain-SFT and BC-SFT models on the
same items; ``bmem eval summary`` and ``bmem eval plot`` read their results files.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ..config.settings import BehaviorMemoryConfig
from ..eval.bci import SolveSettings, curate, jobs_for, load_rows, run_bci
from ..eval.datasets import Dataset, Item, disjoint_or_raise, load_dataset
from ..eval.plot import plot_summaries
from ..eval.results import summarize_rows, summary_table
from ..eval.self_improve import run_self_improve
from ..memory import BehaviorMemory
from .context import CliContext, pass_ctx

__all__ = ["eval_group", "progress", "server_options"]


def progress(console: Any, label: str) -> Progress:
    """A progress bar on stderr."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def _int_list(_: click.Context, __: click.Parameter, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter("a comma-separated list of integers, e.g. 256,512") from exc


def server_options(fn: Any) -> Any:
    """--base-url and --model: point the run at another server without editing the YAML."""
    fn = click.option("--model", help="Model name on the server (default: the configuration's llm.model).")(fn)
    return click.option("--base-url", help="OpenAI-compatible /v1 URL (default: the configuration's llm.base_url).")(fn)


def eval_config(
    cfg: BehaviorMemoryConfig, *, store: Path, base_url: str | None, model: str | None, **retrieval: Any
) -> BehaviorMemoryConfig:
    """A copy of the configuration with its own handbook file and manual reflection."""
    out = cfg.model_copy(deep=True)
    out.store.path = str(store.resolve())
    out.reflection.mode = "manual"
    # The paper's protocol uses what reflection mints at once; the guard still quarantines what it flags.
    out.curation.approval = "auto"
    if base_url:
        out.llm.base_url = base_url
    if model:
        out.llm.model = model
    if retrieval.get("strategy"):
        out.retrieval.strategy = retrieval["strategy"]
    if retrieval.get("k"):
        out.retrieval.k = retrieval["k"]
    if retrieval.get("floor") is not None:
        out.retrieval.floor = retrieval["floor"]
    return out


def split_pool(spec: str, test: Dataset, limit: int | None, data_dir: str | None) -> tuple[list[Item], list[Item], str]:
    """(training pool, test items, a sentence saying where the pool came from)."""
    if spec.startswith("holdout:"):
        n = int(spec.split(":", 1)[1])
        if n <= 0 or n >= len(test.items):
            raise click.BadParameter(f"holdout:N needs 0 < N < {len(test.items)}", param_hint="--handbook-from")
        pool, rest = test.items[-n:], test.items[:-n]
        items = rest[:limit] if limit else rest
        where = f"held-out slice: the last {n} items of {test.name} (test: the first {len(items)} of the rest)"
        return pool, items, where
    train = load_dataset(spec, data_dir=data_dir, checker=test.checker, topic=test.name)
    items = test.items[:limit] if limit else test.items
    disjoint_or_raise(train.items, items)
    return train.items, items, f"{train.path} ({len(train.items)} items, disjoint from the test set)"


@click.group(name="eval")
def eval_group() -> None:
    """Measure behavior-conditioned inference the way the paper did (bci, summary, plot)."""


@eval_group.command()
@click.option("--dataset", "-d", required=True, help="math500, gsm8k, aime24, hotpotqa, or a PATH.jsonl.")
@click.option("--data-dir", help="Folder of the named datasets (default: $BMEM_DATA_DIR, else ../shared/data).")
@click.option("--checker", type=click.Choice(["gsm8k", "math", "aime", "hotpotqa"]), help="Override the checker.")
@click.option("--limit", "-n", type=int, help="Test items (the first N).")
@click.option("--budgets", default="2048,4096,8192", show_default=True, callback=_int_list, help="max_tokens values.")
@click.option(
    "--handbook-from",
    required=True,
    help="Training pool to curate from (dataset name or PATH.jsonl), 'holdout:N' (the last N test items, "
    "kept out of the test set), or an existing HANDBOOK.db to use as is.",
)
@click.option("--train-limit", type=int, help="Use only the first N items of the training pool.")
@click.option("--train-max-tokens", type=int, help="Budget of the curation answers (default: the largest budget).")
@click.option(
    "--handbook-db", type=click.Path(path_type=Path), help="Where the curated handbook goes [OUT.handbook.db]."
)
@click.option("--retrieval", type=click.Choice(["topic", "embedding"]), default="topic", show_default=True)
@click.option("-k", "--k", "k", type=int, default=40, show_default=True, help="Behaviors retrieved per question.")
@click.option("--floor", type=float, help="Embedding retrieval: minimum cosine (default: the configuration's).")
@click.option("--seeds", default="0", show_default=True, callback=_int_list, help="Sampling seeds, e.g. 0,1,2.")
@click.option("--temperature", type=float, help="Sampling temperature (default: the server's).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("results.jsonl"), show_default=True)
@click.option("--concurrency", "-j", type=int, default=8, show_default=True, help="Requests at once.")
@server_options
@pass_ctx
def bci(
    obj: CliContext,
    dataset: str,
    data_dir: str | None,
    checker: str | None,
    limit: int | None,
    budgets: list[int],
    handbook_from: str,
    train_limit: int | None,
    train_max_tokens: int | None,
    handbook_db: Path | None,
    retrieval: str,
    k: int,
    floor: float | None,
    seeds: list[int],
    temperature: float | None,
    out: Path,
    concurrency: int,
    base_url: str | None,
    model: str | None,
) -> None:
    """Curate a handbook, then answer the test set with and without behaviors at each budget."""
    console = obj.console
    if not budgets or not seeds:
        raise click.BadParameter("give at least one budget and one seed")
    test = load_dataset(dataset, data_dir=data_dir, checker=checker)
    existing = handbook_from.endswith(".db")
    if existing:
        if not Path(handbook_from).is_file():
            raise click.BadParameter(f"{handbook_from} does not exist", param_hint="--handbook-from")
        pool: list[Item] = []
        items = test.items[:limit] if limit else test.items
        db, where = Path(handbook_from), f"existing handbook {handbook_from}"
    else:
        pool, items, where = split_pool(handbook_from, test, limit, data_dir)
        pool = pool[:train_limit] if train_limit else pool
        db = handbook_db or out.with_suffix(".handbook.db")
    cfg = eval_config(obj.config(), store=db, base_url=base_url, model=model, strategy=retrieval, k=k, floor=floor)
    settings = SolveSettings(dataset=test.name, checker=test.checker, retrieval=retrieval, k=k, temperature=temperature)
    console.print(f"[bold]test[/bold]: {len(items)} items of {test.path} (checker {test.checker})")
    console.print(f"[bold]training pool[/bold]: {where}")
    console.print(f"[bold]model[/bold]: {cfg.llm.model} at {cfg.llm.base_url}; handbook {db}")

    with BehaviorMemory(cfg) as memory:
        if not memory.llm.health():
            raise click.ClickException(f"the model server at {cfg.llm.base_url} does not answer")
        if not existing:
            have = len(memory.handbook.list())
            if have:
                console.print(f"   the handbook already holds {have} behaviors: curation skipped (resumed run)")
            else:
                budget = train_max_tokens or max(budgets)
                with progress(obj.err, "curating: solving") as bar:
                    task = bar.add_task("", total=len(pool))
                    stats = curate(
                        memory,
                        settings,
                        pool,
                        max_tokens=budget,
                        concurrency=concurrency,
                        on_solved=lambda: bar.advance(task),
                    )
                console.print(
                    f"   curated: {stats['pool_correct']}/{stats['pool']} training answers correct; "
                    f"reflection {stats['reflection']}; {stats['behaviors']} behaviors"
                )
        jobs = list(jobs_for(items, budgets, seeds))
        with progress(obj.err, "answering") as bar:
            task = bar.add_task("", total=len(jobs))
            answered, skipped = run_bci(
                memory, settings, jobs, out, concurrency=concurrency, on_done=lambda _: bar.advance(task)
            )
    console.print(f"{answered} answers now, {skipped} already in {out}")
    _print_summary(obj, out, test.name)


@eval_group.command(name="self-improve")
@click.option("--dataset", "-d", required=True, help="math500, gsm8k, aime24, hotpotqa, or a PATH.jsonl.")
@click.option("--data-dir", help="Folder of the named datasets (default: $BMEM_DATA_DIR, else ../shared/data).")
@click.option("--checker", type=click.Choice(["gsm8k", "math", "aime", "hotpotqa"]), help="Override the checker.")
@click.option("--limit", "-n", type=int, help="Questions (the first N).")
@click.option("--traces", type=int, default=16, show_default=True, help="Plain answers sampled per question.")
@click.option("--max-tokens", type=int, default=2048, show_default=True, help="Budget of every answer.")
@click.option("-k", "--k", "k", type=int, default=40, show_default=True, help="Self-minted behaviors shown at most.")
@click.option("--temperature", type=float, default=0.7, show_default=True, help="Sampling temperature.")
@click.option(
    "--handbook-db", type=click.Path(path_type=Path), help="Where the per-question behaviors go [OUT.handbook.db]."
)
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("self_improve.jsonl"), show_default=True)
@click.option("--concurrency", "-j", type=int, default=4, show_default=True, help="Questions at once.")
@server_options
@pass_ctx
def self_improve(
    obj: CliContext,
    dataset: str,
    data_dir: str | None,
    checker: str | None,
    limit: int | None,
    traces: int,
    max_tokens: int,
    k: int,
    temperature: float,
    handbook_db: Path | None,
    out: Path,
    concurrency: int,
    base_url: str | None,
    model: str | None,
) -> None:
    """Per question: sample traces, mint behaviors from them, re-solve; beside critique-and-revise and plain."""
    if traces < 1:
        raise click.BadParameter("at least one trace", param_hint="--traces")
    test = load_dataset(dataset, data_dir=data_dir, checker=checker)
    items = test.items[:limit] if limit else test.items
    db = handbook_db or out.with_suffix(".handbook.db")
    cfg = eval_config(obj.config(), store=db, base_url=base_url, model=model, strategy="topic", k=k)
    settings = SolveSettings(dataset=test.name, checker=test.checker, retrieval="topic", k=k, temperature=temperature)
    obj.console.print(
        f"[bold]self-improvement[/bold]: {len(items)} items of {test.path}, {traces} traces each, budget {max_tokens}; "
        f"model {cfg.llm.model} at {cfg.llm.base_url}; handbook {db}"
    )
    with BehaviorMemory(cfg) as memory:
        if not memory.llm.health():
            raise click.ClickException(f"the model server at {cfg.llm.base_url} does not answer")
        with progress(obj.err, "questions") as bar:
            task = bar.add_task("", total=len(items))
            run, skipped = run_self_improve(
                memory,
                settings,
                items,
                out,
                traces=traces,
                budget=max_tokens,
                concurrency=concurrency,
                on_done=lambda _: bar.advance(task),
            )
    obj.console.print(f"{run} questions now, {skipped} already in {out}")
    _print_summary(obj, out, f"{test.name} self-improvement")


@eval_group.command(name="sft")
@click.option("--dataset", "-d", required=True, help="math500, gsm8k, aime24, hotpotqa, or a PATH.jsonl.")
@click.option("--data-dir", help="Folder of the named datasets (default: $BMEM_DATA_DIR, else ../shared/data).")
@click.option("--checker", type=click.Choice(["gsm8k", "math", "aime", "hotpotqa"]), help="Override the checker.")
@click.option("--limit", "-n", type=int, help="Test items (the first N).")
@click.option(
    "--contender",
    "contenders",
    multiple=True,
    required=True,
    help="LABEL=URL[#MODEL] (a running server) or LABEL=FOLDER (served for the run); repeat, base first.",
)
@click.option("--max-tokens", type=int, default=2048, show_default=True, help="Budget of every answer.")
@click.option("--seeds", default="0", show_default=True, callback=_int_list, help="Sampling seeds, e.g. 0,1,2.")
@click.option("--temperature", type=float, help="Sampling temperature (default: the server's).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("sft_eval.jsonl"), show_default=True)
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), help="Also draw the comparison (PNG).")
@click.option("--concurrency", "-j", type=int, default=8, show_default=True, help="Requests at once.")
@pass_ctx
def sft_eval(
    obj: CliContext,
    dataset: str,
    data_dir: str | None,
    checker: str | None,
    limit: int | None,
    contenders: tuple[str, ...],
    max_tokens: int,
    seeds: list[int],
    temperature: float | None,
    out: Path,
    plot_out: Path | None,
    concurrency: int,
) -> None:
    """Base vs plain-SFT vs BC-SFT on the same items: accuracy with intervals and output tokens."""
    from ..eval.sft_compare import compare_summaries, jobs_for_contender, parse_contender, run_contender

    chosen = [parse_contender(spec) for spec in contenders]
    if len({c.label for c in chosen}) != len(chosen):
        raise click.BadParameter("labels must differ", param_hint="--contender")
    test = load_dataset(dataset, data_dir=data_dir, checker=checker)
    items = test.items[:limit] if limit else test.items
    settings = SolveSettings(dataset=test.name, checker=test.checker, retrieval="-", k=0, temperature=temperature)
    scratch = out.with_suffix(".handbook.db")  # empty: every contender answers without behaviors

    def memory_for(url: str, model: str) -> BehaviorMemory:
        return BehaviorMemory(eval_config(obj.config(), store=scratch, base_url=url, model=model))

    obj.console.print(f"[bold]test[/bold]: {len(items)} items of {test.path}; budget {max_tokens}; results {out}")
    for contender in chosen:
        jobs = jobs_for_contender(items, contender.label, max_tokens, seeds)
        with progress(obj.err, f"{contender.label} ({contender.target})") as bar:
            task = bar.add_task("", total=len(jobs))
            answered, skipped = run_contender(
                memory_for,
                contender,
                settings,
                jobs,
                out,
                concurrency=concurrency,
                on_done=functools.partial(_advance, bar, task),
            )
        obj.console.print(f"   {contender.label}: {answered} answers now, {skipped} already")
    rows = load_rows(out)
    summaries = compare_summaries(rows, [c.label for c in chosen])
    obj.console.print(summary_table(summaries, title=f"{test.name}: {', '.join(c.label for c in chosen)} ({out})"))
    if plot_out:
        plot_summaries(summaries, plot_out, title=f"{test.name}, {len(items)} items: base vs SFT students")
        obj.console.print(f"wrote {plot_out}")


def _advance(bar: Progress, task: TaskID, _row: object) -> None:
    bar.advance(task)


def _print_summary(obj: CliContext, results: Path, title: str) -> None:
    rows = load_rows(results)
    summaries = summarize_rows(rows)
    obj.console.print(summary_table(summaries, title=f"{title}: {results}"))
    failed = sum(1 for r in rows if r.get("error"))
    if failed:
        obj.console.print(f"[yellow]{failed} requests failed; run the same command again to retry them[/yellow]")


@eval_group.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def summary(obj: CliContext, results: Path) -> None:
    """Print the per-configuration table of a results file."""
    _print_summary(obj, results, results.stem)


@eval_group.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("plot.png"), show_default=True)
@click.option("--title", help="Figure title (default: the results file's name and model).")
@pass_ctx
def plot(obj: CliContext, results: Path, out: Path, title: str | None) -> None:
    """Accuracy against mean output tokens per budget, baseline and behaviors side by side (PNG)."""
    rows = load_rows(results)
    models = sorted({str(r["model"]) for r in rows if r.get("model")})
    plot_summaries(summarize_rows(rows), out, title=title or f"{results.name} ({', '.join(models)})")
    obj.console.print(f"wrote {out}")
