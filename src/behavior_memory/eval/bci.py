"""Behavior-conditioned inference (the paper's BCI): curate a handbook, then answer with and without it.

1. :func:`curate` solves a training pool plainly, records each answer as a trace (with the gold
   answer as feedback on failures), and runs the three-stage reflection (``reflect_pending``) into
   the handbook, a SQLite file of its own.
2. :func:`run_bci` answers every test item under every (condition, budget, seed): ``baseline``
   without behaviors, ``behaviors`` with the retrieved block in the system prompt. Test answers are
   not recorded as traces, so the handbook stays as curated. Each answer becomes one row of the
   results JSONL; rows already there (same key) are skipped, so an interrupted run continues.

Model calls run in a bounded thread pool (vLLM batches them); checking and writing stay in the
calling thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..injection.render import append_block
from ..memory import BehaviorMemory
from ..types import Outcome
from .checking import check_answer
from .datasets import Item

__all__ = [
    "CONDITIONS",
    "PROMPTS",
    "Job",
    "Row",
    "SolveSettings",
    "answer_row",
    "curate",
    "failed_row",
    "jobs_for",
    "load_rows",
    "row_key",
    "run_bci",
    "solve_item",
]

CONDITIONS = ("baseline", "behaviors")

PROMPTS: dict[str, str] = {
    "gsm8k": "Solve the problem step by step, briefly. End with a last line of the form 'Answer: <number>'.",
    "math": "Solve the problem step by step, briefly. Put the final answer in \\boxed{}.",
    "aime": "Solve the problem step by step. The answer is an integer from 0 to 999; put it in \\boxed{}.",
    "hotpotqa": "Answer the question, thinking briefly. End with a last line of the form 'Answer: <short answer>'.",
}


@dataclass(frozen=True)
class SolveSettings:
    """What stays fixed across one run."""

    dataset: str
    checker: str
    retrieval: str
    k: int
    temperature: float | None = None


@dataclass(frozen=True)
class Job:
    item: Item
    condition: str
    budget: int
    seed: int


@dataclass
class Row:
    """One answer: what the model said, whether it was right, and what it cost."""

    key: str
    dataset: str
    item_id: str
    condition: str
    budget: int
    seed: int
    retrieval: str
    k: int
    model: str
    answer: str | None
    gold: str
    correct: bool
    score: float
    finish_reason: str | None
    prompt_tokens: int
    output_tokens: int
    reasoning_tokens: int | None
    cached_tokens: int | None
    latency_s: float
    shown: list[str] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    output: str = ""
    error: str | None = None


def row_key(settings: SolveSettings, job: Job) -> str:
    """Identifies one answer across runs: configuration + item + seed."""
    retrieval = f"{settings.retrieval}@{settings.k}" if job.condition == "behaviors" else "-"
    return f"{settings.dataset}|{job.condition}|{retrieval}|{job.budget}|{job.seed}|{job.item.id}"


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results file (a torn last line from a killed run is ignored)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _messages(memory: BehaviorMemory, settings: SolveSettings, item: Item, with_behaviors: bool) -> tuple[Any, Any]:
    hits = []
    if with_behaviors:
        topic = item.topic if settings.retrieval == "topic" else None
        hits = memory.retrieve(item.question, k=settings.k, topic=topic)
    block = memory.render(hits)
    system = append_block(PROMPTS[settings.checker], block)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": item.question}]
    return messages, block


def solve_item(memory: BehaviorMemory, settings: SolveSettings, job: Job) -> tuple[Any, list[str]]:
    """Ask the model once; returns the ChatResult and the names of the behaviors shown."""
    messages, block = _messages(memory, settings, job.item, job.condition == "behaviors")
    result = memory.llm.chat(
        messages, max_tokens=job.budget, temperature=settings.temperature, extra_body={"seed": job.seed}
    )
    return result, list(block.names)


def answer_row(memory: BehaviorMemory, settings: SolveSettings, job: Job, result: Any, shown: list[str]) -> Row:
    """Check one answer and turn it into a results row."""
    usage = result.usage
    text = result.content or ""
    checked = check_answer(settings.checker, text, job.item.answer)
    cited = memory.citations((result.reasoning or "") + "\n" + text) if shown else []
    return Row(
        key=row_key(settings, job),
        dataset=settings.dataset,
        item_id=job.item.id,
        condition=job.condition,
        budget=job.budget,
        seed=job.seed,
        retrieval=settings.retrieval if job.condition == "behaviors" else "-",
        k=settings.k,
        model=result.model,
        answer=checked.predicted,
        gold=job.item.answer,
        correct=checked.correct,
        score=checked.score,
        finish_reason=result.finish_reason,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        cached_tokens=usage.cached_tokens if usage else None,
        latency_s=round(result.latency_s, 4),
        shown=shown,
        cited=cited,
        output=text if not result.reasoning else f"<think>{result.reasoning}</think>{text}",
    )


def failed_row(settings: SolveSettings, job: Job, exc: BaseException) -> Row:
    """The row of a request that failed (``error`` set); the next run retries it."""
    return Row(
        key=row_key(settings, job),
        dataset=settings.dataset,
        item_id=job.item.id,
        condition=job.condition,
        budget=job.budget,
        seed=job.seed,
        retrieval=settings.retrieval if job.condition == "behaviors" else "-",
        k=settings.k,
        model="",
        answer=None,
        gold=job.item.answer,
        correct=False,
        score=0.0,
        finish_reason=None,
        prompt_tokens=0,
        output_tokens=0,
        reasoning_tokens=None,
        cached_tokens=None,
        latency_s=0.0,
        error=f"{type(exc).__name__}: {exc}",
    )


def jobs_for(items: Sequence[Item], budgets: Sequence[int], seeds: Sequence[int]) -> Iterator[Job]:
    """Every (item, condition, budget, seed), baseline and behaviors interleaved per item."""
    for budget in budgets:
        for seed in seeds:
            for item in items:
                for condition in CONDITIONS:
                    yield Job(item=item, condition=condition, budget=budget, seed=seed)


def run_bci(
    memory: BehaviorMemory,
    settings: SolveSettings,
    jobs: Sequence[Job],
    out: Path,
    *,
    concurrency: int,
    on_done: Callable[[Row], None] | None = None,
) -> tuple[int, int]:
    """Answer the jobs not yet in ``out``; appends one row each. Returns (answered now, skipped).

    A failed request is written as a row with ``error`` set and not counted as done, so the next
    run retries it.
    """
    done = {r["key"] for r in load_rows(out) if not r.get("error")}
    todo = [j for j in jobs if row_key(settings, j) not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    with out.open("a", encoding="utf-8") as sink, ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
        futures: dict[Future[tuple[Any, list[str]]], Job] = {
            pool.submit(solve_item, memory, settings, job): job for job in todo
        }
        for future in as_completed(futures):
            job = futures[future]
            try:
                result, shown = future.result()
                row = answer_row(memory, settings, job, result, shown)
            except Exception as exc:  # one failed request must not lose the others' answers
                row = failed_row(settings, job, exc)
            with lock:
                sink.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
                sink.flush()
            if on_done:
                on_done(row)
    return len(todo), len(jobs) - len(todo)


def _record_training_answer(
    memory: BehaviorMemory, settings: SolveSettings, item: Item, max_tokens: int
) -> tuple[str, bool]:
    messages, _ = _messages(memory, settings, item, with_behaviors=False)
    with memory.trace(
        task=item.question, topic=item.topic, metadata={"problem_id": item.id, "stage": "curation"}
    ) as recorder:
        result = memory.llm.chat(messages, max_tokens=max_tokens, temperature=settings.temperature)
        recorder.model_call(
            messages=messages,
            output=result.content,
            usage=result.usage,
            reasoning=result.reasoning,
            model=result.model,
            latency_s=result.latency_s,
        )
        checked = check_answer(settings.checker, result.content, item.answer)
        recorder.finish(
            answer=checked.predicted,
            outcome=Outcome.SUCCESS if checked.correct else Outcome.FAILURE,
            feedback=None if checked.correct else f"the correct answer is {item.answer}",
        )
    return item.id, checked.correct


def curate(
    memory: BehaviorMemory,
    settings: SolveSettings,
    pool: Sequence[Item],
    *,
    max_tokens: int,
    concurrency: int,
    on_solved: Callable[[], None] | None = None,
    on_reflected: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Solve the pool (each answer a trace), then reflect on the traces to mint behaviors."""

    def one(item: Item) -> tuple[str, bool]:
        solved = _record_training_answer(memory, settings, item, max_tokens)
        if on_solved:
            on_solved()
        return solved

    with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as workers:
        solved = list(workers.map(one, pool))
    outcomes = memory.reflect_pending(concurrency=concurrency, on_done=on_reflected)
    return {
        "pool": len(pool),
        "pool_correct": sum(ok for _, ok in solved),
        "reflection": dict(outcomes),
        "behaviors": len(memory.handbook.list()),
    }
