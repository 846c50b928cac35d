"""``bmem sft export``: BC-SFT chat records (teacher answered with behaviors, block stripped) and the plain twin;
``bmem sft train``: fine-tune a student on them (TRL; LoRA or full) into a folder vLLM serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
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
    """Behavior-conditioned fine-tuning (the paper's BC-SFT): export the records, train a model and its twin."""


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


def default_base() -> Path:
    """The embedded SmolLM2-135M-Instruct folder (prepared by ``bmem serve`` on first use)."""
    from ..serving import embedded

    path = embedded.model_dir(embedded.cache_dir())
    if not (path / "config.json").is_file():
        raise click.ClickException(
            f"the embedded SmolLM2 folder {path} is not prepared yet: run `bmem serve` once, or pass --base DIR"
        )
    return path


def _chat_template(path: str | Path | None, base: Path) -> str | None:
    """The template text to train and save with: the given file, else the tool-aware one for the embedded
    SmolLM2 (what `bmem serve` gives the base, so a trained folder takes tool calls too), else None."""
    from ..serving import embedded

    if path is None and base.resolve() == embedded.model_dir(embedded.cache_dir()).resolve():
        path = embedded.chat_template_path()
    if path is None:
        return None
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--chat-template") from exc


@sft.command()
@click.argument("records", type=click.Path(path_type=Path))
@click.option(
    "--base", type=click.Path(path_type=Path), help="Local HF causal-LM folder [sft.base, else embedded SmolLM2]."
)
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Folder for the merged model.")
@click.option("--twin", is_flag=True, help="Also train the plain-SFT twin (same questions, plain answers).")
@click.option("--plain-records", type=click.Path(path_type=Path), help="The twin's records [RECORDS.plain.jsonl].")
@click.option("--plain-out", type=click.Path(path_type=Path), help="The twin's folder [OUT-plain].")
@click.option(
    "--chat-template", type=click.Path(dir_okay=False), help="Jinja file to train and save with [sft.chat_template]."
)
@click.option("--method", type=click.Choice(["lora", "full"]), help="LoRA (PEFT) or full fine-tuning [sft.method].")
@click.option("--epochs", type=float, help="Passes over the records [sft.epochs].")
@click.option("--max-steps", type=int, help="Stop after N optimizer steps [sft.max_steps].")
@click.option("--learning-rate", "--lr", type=float, help="[sft.learning_rate]")
@click.option("--batch-size", type=int, help="[sft.batch_size]")
@click.option("--max-length", type=int, help="Tokens per record at most [sft.max_length].")
@click.option("--eval-fraction", type=float, help="Held-out share for eval loss [sft.eval_fraction].")
@click.option("--lora-r", type=int, help="[sft.lora_r]")
@click.option("--save-steps", type=int, help="Checkpoint every N steps [sft.save_steps].")
@click.option("--seed", type=int, help="[sft.seed]")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder (only once training succeeded).")
@click.option("--fresh", is_flag=True, help="Discard checkpoints of an earlier run instead of resuming.")
@click.option("--keep-checkpoints", is_flag=True, help="Keep OUT.checkpoints/ after saving.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@pass_ctx
def train(
    obj: CliContext,
    /,
    records: Path,
    base: Path | None,
    out: Path,
    twin: bool,
    plain_records: Path | None,
    plain_out: Path | None,
    overwrite: bool,
    fresh: bool,
    keep_checkpoints: bool,
    no_progress: bool,
    **overrides: Any,
) -> None:
    """Fine-tune a student on RECORDS (`bmem sft export` output) with TRL; save a folder `bmem serve --model` serves.

    Interrupted? Run the same command again: it resumes from OUT.checkpoints/.
    """
    from ..sft.checks import folder_size
    from ..sft.records import load_records
    from ..sft.train import train_records
    from ..sft.twin import train_pair

    cfg = obj.config()
    try:  # flags pass the section's checks too
        settings = type(cfg.sft).model_validate(
            {**cfg.sft.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
    except ValidationError as exc:
        raise click.BadParameter("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc
    base_dir = base or (Path(settings.base).expanduser() if settings.base else default_base())
    common: dict[str, Any] = {
        "base": base_dir,
        "chat_template": _chat_template(settings.chat_template, base_dir),
        "settings": settings,
        "overwrite": overwrite,
        "resume": not fresh,
        "keep_checkpoints": keep_checkpoints,
        "progress": not no_progress,
    }
    obj.err.print(f"base {base_dir}; {settings.method}; records {records}" + (" (+ plain twin)" if twin else ""))
    if twin or plain_records or plain_out:
        results = list(train_pair(records, out=out, plain_records=plain_records, plain_out=plain_out, **common))
        labels = ["BC-SFT", "plain SFT"]
    else:
        results = [train_records(load_records(records), out=out, source=str(records), **common)]
        labels = ["BC-SFT"]
    table = Table(title="bmem sft train")
    for name in ("model", "folder", "records (train/eval)", "steps", "s/step", "s/record", "eval loss", "size"):
        table.add_column(name, justify="left" if name in {"model", "folder"} else "right")
    for label, r in zip(labels, results, strict=True):
        table.add_row(
            label,
            str(r.out),
            f"{r.train_records}/{r.eval_records}",
            str(r.steps),
            f"{r.seconds_per_step:.2f}",
            f"{r.seconds_per_record:.2f}",
            "-" if r.eval_loss is None else f"{r.eval_loss:.3f}",
            f"{folder_size(r.out) / 2**20:.0f} MiB",
        )
    obj.console.print(table)
    obj.console.print(f"serve it: bmem serve --model {results[0].out} --served-model-name {results[0].out.name}")
