"""The whole loop on a handful of GSM8K problems: solve, reflect, mint, solve again with behaviors.

Used by ``bmem demo``. The first handful is solved plainly and each answer becomes a trace; the
traces are reflected on to mint behaviors; then a second handful is solved twice, without and
with the retrieved behaviors in the system prompt, so the two conditions see the same problems.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from statistics import mean

from ..injection.render import append_block
from ..memory import BehaviorMemory
from ..types import Outcome
from .checking import check_answer

__all__ = [
    "SOLVER_PROMPT",
    "ConditionSummary",
    "Problem",
    "Solved",
    "load_gsm8k_sample",
    "solve",
    "solve_all",
    "summarize",
]

TOPIC = "gsm8k"  # every trace and minted behavior carries it; topic retrieval is the paper's MATH mode
SOLVER_PROMPT = (
    "You are a careful math tutor. Solve the problem step by step in a few short sentences. "
    "End with a last line of the form 'Answer: <number>'."
)


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str


@dataclass
class Solved:
    """One answered problem and what it cost."""

    problem: Problem
    with_behaviors: bool
    output: str
    correct: bool
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    trace_id: str
    shown: list[str] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)


@dataclass
class ConditionSummary:
    label: str
    problems: int
    accuracy: float
    prompt_tokens: float
    completion_tokens: float
    shown: float
    cited: int


def load_gsm8k_sample() -> list[Problem]:
    """The GSM8K items shipped with the package (copied from the public test split)."""
    text = files("behavior_memory.data").joinpath("gsm8k_sample.jsonl").read_text(encoding="utf-8")
    return [Problem(**json.loads(line)) for line in text.splitlines() if line.strip()]


def solve(memory: BehaviorMemory, problem: Problem, *, with_behaviors: bool, max_tokens: int, k: int) -> Solved:
    """Answer one problem through the model, recording it as a trace."""
    hits = memory.retrieve(problem.question, k=k, topic=TOPIC) if with_behaviors else []
    block = memory.render(hits)
    system = append_block(SOLVER_PROMPT, block)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": problem.question}]
    shown_hits = [h for h in hits if h.behavior.name in block.names]
    with memory.trace(
        task=problem.question,
        hits=shown_hits,
        topic="gsm8k",
        metadata={"problem_id": problem.id, "with_behaviors": with_behaviors},
    ) as recorder:
        result = memory.llm.chat(messages, max_tokens=max_tokens)
        recorder.model_call(
            messages=messages,
            output=result.content,
            usage=result.usage,
            reasoning=result.reasoning,
            model=result.model,
            latency_s=result.latency_s,
        )
        checked = check_answer("gsm8k", result.content, problem.answer)
        correct = checked.correct
        recorder.finish(
            answer=checked.predicted,
            outcome=Outcome.SUCCESS if correct else Outcome.FAILURE,
            feedback=None if correct else f"the correct answer is {problem.answer}",
        )
    usage = result.usage
    return Solved(
        problem=problem,
        with_behaviors=with_behaviors,
        output=result.content,
        correct=correct,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        latency_s=result.latency_s,
        trace_id=recorder.id,
        shown=list(block.names),
        cited=list(recorder.trace.cited),
    )


def solve_all(
    memory: BehaviorMemory,
    problems: Sequence[Problem],
    *,
    with_behaviors: bool,
    max_tokens: int,
    k: int,
    concurrency: int,
    on_done: Callable[[Solved], None] | None = None,
) -> list[Solved]:
    """Solve problems concurrently (vLLM batches the requests); results keep the problems' order."""

    def one(problem: Problem) -> Solved:
        solved = solve(memory, problem, with_behaviors=with_behaviors, max_tokens=max_tokens, k=k)
        if on_done:
            on_done(solved)
        return solved

    with ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="bmem-demo") as pool:
        return list(pool.map(one, problems))


def summarize(label: str, solved: Sequence[Solved]) -> ConditionSummary:
    """Accuracy and mean tokens of one condition."""
    return ConditionSummary(
        label=label,
        problems=len(solved),
        accuracy=mean(s.correct for s in solved) if solved else 0.0,
        prompt_tokens=mean(s.prompt_tokens for s in solved) if solved else 0.0,
        completion_tokens=mean(s.completion_tokens for s in solved) if solved else 0.0,
        shown=mean(len(s.shown) for s in solved) if solved else 0.0,
        cited=sum(len(s.cited) for s in solved),
    )
