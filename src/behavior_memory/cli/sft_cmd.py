"""``bmem sft export``: BC-SFT chat records (teacher answered with behaviors, block stripped) and the plain twin."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..eval.bci import SolveSettings, jobs_for, load_rows, run_bci
from ..eval.datasets import load_dataset
from ..eval.sft_export import write_corpora
from ..memory import BehaviorMemory
from .context import CliContext, pass_ctx
from .eval_cmd import eval_config, progress, server_options

__all__ = ["sft"]


@click.group()
def sft() -> None:
    """Fine-tuning data from behavior-conditioned answers (the paper's BC-SFT)."""


@sft.command()
@click.option("--dataset", "-d", required=True, help="Questions: math500, gsm8k, aime24, hotpotqa, or a PATH.jsonl.")
@click.option("--data-dir", help="Folder of the named datasets (default: $BMEM_DATA_DIR, else ../shared/data).")
@click.option("--limit", "-n", type=int, help="Only the first N questions.")
@click.option(
    "--handbook",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Curated HANDBOOK.db (e.g. the one `bmem eval bci` wrote); curate it from items other than these.",
)
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("bc_sft.jsonl"), show_default=True)
@click.option("--plain-out", type=click.Path(path_type=Path), help="The plain-SFT twin [OUT.plain.jsonl].")
@click.option("--max-tokens", type=int, default=2048, show_default=True, help="Teacher budget per answer.")
@click.option("--retrieval", type=click.Choice(["topic", "embedding"]), default="topic", show_default=True)
@click.option("-k", "--k", "k", type=int, default=40, show_default=True, help="Behaviors per question.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--temperature", type=float, help="Sampling temperature (default: the server's).")
@click.option("--only-correct", is_flag=True, help="Keep only answers that check as correct.")
@click.option("--concurrency", "-j", type=int, default=8, show_default=True)
@server_options
@pass_ctx
def export(
    obj: CliContext,
    dataset: str,
    data_dir: str | None,
    limit: int | None,
    handbook: Path,
    out: Path,
    plain_out: Path | None,
    max_tokens: int,
    retrieval: str,
    k: int,
    seed: int,
    temperature: float | None,
    only_correct: bool,
    concurrency: int,
    base_url: str | None,
    model: str | None,
) -> None:
    """Have the teacher answer with and without behaviors; write both corpora and report their correctness."""
    data = load_dataset(dataset, data_dir=data_dir)
    items = data.items[:limit] if limit else data.items
    cfg = eval_config(obj.config(), store=handbook, base_url=base_url, model=model, strategy=retrieval, k=k)
    settings = SolveSettings(dataset=data.name, checker=data.checker, retrieval=retrieval, k=k, temperature=temperature)
    answers = out.with_suffix(".answers.jsonl")
    plain = plain_out or out.with_suffix(".plain.jsonl")
    obj.console.print(f"teacher {cfg.llm.model} at {cfg.llm.base_url}; handbook {handbook}; {len(items)} questions")
    with BehaviorMemory(cfg) as memory:
        if not memory.llm.health():
            raise click.ClickException(f"the model server at {cfg.llm.base_url} does not answer")
        jobs = list(jobs_for(items, [max_tokens], [seed]))
        with progress(obj.err, "teacher answers") as bar:
            task = bar.add_task("", total=len(jobs))
            run_bci(memory, settings, jobs, answers, concurrency=concurrency, on_done=lambda _: bar.advance(task))
    bc, twin = write_corpora(
        load_rows(answers), items, bc_out=out, plain_out=plain, budget=max_tokens, seed=seed, only_correct=only_correct
    )
    table = Table(title=f"SFT corpora from {data.name} (answers kept in {answers})")
    for name in ("corpus", "file", "records", "correct", "skipped"):
        table.add_column(name, justify="left" if name in {"corpus", "file"} else "right")
    for label, report in (("BC-SFT (with behaviors)", bc), ("plain SFT", twin)):
        table.add_row(
            label,
            str(report.path),
            str(report.records),
            f"{report.correct} ({report.accuracy:.0%})",
            str(report.skipped),
        )
    obj.console.print(table)
