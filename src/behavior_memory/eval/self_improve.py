"""Self-improvement (the paper's third setting): a question's own traces become its behaviors.

Per question: sample K plain answers (each recorded as a trace under a topic of that question
alone), reflect on them to mint behaviors, and answer again with those behaviors in the prompt.
Two baselines answer the same question: ``baseline`` (the first plain sample, unchanged) and
``critique_revise`` (the model critiques its first sample and writes a revised solution). No gold
answer is used on the way: the traces are recorded with an unknown outcome.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..injection.render import append_block
from ..memory import BehaviorMemory
from .bci import PROMPTS, Job, Row, SolveSettings, answer_row, failed_row, load_rows, row_key
from .datasets import Item

__all__ = ["CRITIQUE_PROMPT", "SELF_IMPROVE_CONDITIONS", "run_self_improve", "self_improve_item"]

SELF_IMPROVE_CONDITIONS = ("baseline", "critique_revise", "self_behaviors")
CRITIQUE_PROMPT = (
    "Here is your earlier solution to the problem.\n\n{solution}\n\nCritique it briefly: find any mistake. "
    "Then write a corrected solution, ending in the same final-answer format."
)


def _chat(memory: BehaviorMemory, messages: list[dict[str, str]], budget: int, seed: int, temp: float | None) -> Any:
    return memory.llm.chat(messages, max_tokens=budget, temperature=temp, extra_body={"seed": seed})


def self_improve_item(
    memory: BehaviorMemory, settings: SolveSettings, item: Item, *, traces: int, budget: int
) -> list[Row]:
    """The three rows of one question: plain, critique-and-revise, and re-solved with self-minted behaviors."""
    topic = f"self:{settings.dataset}:{item.id}"
    system = PROMPTS[settings.checker]
    plain_messages = [{"role": "system", "content": system}, {"role": "user", "content": item.question}]
    samples = []
    for seed in range(traces):
        with memory.trace(task=item.question, topic=topic, metadata={"problem_id": item.id, "sample": seed}) as rec:
            result = _chat(memory, plain_messages, budget, seed, settings.temperature)
            rec.model_call(
                messages=plain_messages,
                output=result.content,
                usage=result.usage,
                reasoning=result.reasoning,
                model=result.model,
                latency_s=result.latency_s,
            )
            rec.finish(answer=None)
        samples.append((rec.id, result))
    for trace_id, _ in samples:
        memory.reflect_trace(trace_id)

    first = samples[0][1]
    rows = [answer_row(memory, settings, Job(item, "baseline", budget, 0), first, [])]

    critique = [
        *plain_messages,
        {"role": "assistant", "content": first.content or ""},
        {"role": "user", "content": CRITIQUE_PROMPT.format(solution=first.content or "")},
    ]
    revised = _chat(memory, critique, budget, 0, settings.temperature)
    rows.append(answer_row(memory, settings, Job(item, "critique_revise", budget, 0), revised, []))

    hits = memory.retrieve(item.question, k=settings.k, topic=topic)
    block = memory.render(hits)
    with_block = [
        {"role": "system", "content": append_block(system, block)},
        {"role": "user", "content": item.question},
    ]
    again = _chat(memory, with_block, budget, 0, settings.temperature)
    rows.append(answer_row(memory, settings, Job(item, "self_behaviors", budget, 0), again, list(block.names)))
    return rows


def run_self_improve(
    memory: BehaviorMemory,
    settings: SolveSettings,
    items: Sequence[Item],
    out: Path,
    *,
    traces: int,
    budget: int,
    concurrency: int,
    on_done: Callable[[Item], None] | None = None,
) -> tuple[int, int]:
    """Run the questions not yet complete in ``out`` (all three rows present); returns (run now, skipped)."""
    done = {r["key"] for r in load_rows(out) if not r.get("error")}

    def complete(item: Item) -> bool:
        return all(row_key(settings, Job(item, c, budget, 0)) in done for c in SELF_IMPROVE_CONDITIONS)

    todo = [i for i in items if not complete(i)]
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    with out.open("a", encoding="utf-8") as sink:

        def one(item: Item) -> None:
            try:
                rows = self_improve_item(memory, settings, item, traces=traces, budget=budget)
            except Exception as exc:  # recorded as failed rows; the next run retries the question
                rows = [failed_row(settings, Job(item, c, budget, 0), exc) for c in SELF_IMPROVE_CONDITIONS]
            with lock:
                for row in rows:
                    sink.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
                sink.flush()
            if on_done:
                on_done(item)

        with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
            list(pool.map(one, todo))
    return len(todo), len(items) - len(todo)
