#!/usr/bin/env python3
r"""Per-step overhead of the LlamaIndex adapter: the behavior block and trace capture at 10k behaviors.

One ``FunctionAgent`` with one tool runs the same scripted task again and again; its LLM is a
function-calling mock (no model, no network), so what is timed is LlamaIndex's own machinery plus
ours. Each run makes ``--steps`` model calls (``--steps - 1`` tool calls, then an answer). Rows:

- ``bare``: the agent as users have it (LlamaIndex's default memory), the baseline;
- ``Memory.from_defaults()``: the same with LlamaIndex's ``Memory`` per run (blocks need one; it keeps
  history in an in-memory SQLite through SQLAlchemy and aiosqlite);
- ``+ block``: that Memory holding a ``BehaviorMemoryBlock`` over ``--behaviors`` behaviors (one
  retrieval per run, cached for the run's other steps);
- ``+ block + instrument``: also ``instrument(memory)``: every model and tool call recorded, the trace
  saved to SQLite at the end of the run (the issue's two-line set-up);
- ``... + fast template``: the same with ``memory_blocks_template=FAST_MEMORY_BLOCKS_TEMPLATE``, which
  renders the default template without compiling jinja on every step;
- ``wrap()``: ``wrap(agent, memory).run(...)``: block and traces per run, with the in-process
  ``Memory`` of ``behavior_chat_memory`` (no database, the template rendered without jinja).

Rows are measured in interleaved rounds so drift on a shared machine hits them alike. Reported per
row: milliseconds per run and per step (medians over runs), the overhead per step against ``bare``,
and the ratio. The memory uses the default hybrid retrieval (embedding + BM25, pinned first) with
the hashing embedder (no model download); a sentence-transformers embedder adds one query embedding
(about 20 ms on CPU) per run, not per step.

    python bench/bench_llamaindex.py                          # 10k behaviors, 4 steps per run
    python bench/bench_llamaindex.py --behaviors 1000 --runs 100 --steps 2 --out li.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import Memory

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.llamaindex import (
    FAST_MEMORY_BLOCKS_TEMPLATE,
    BehaviorMemoryBlock,
    instrument,
    uninstrument,
    wrap,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_retrieval import DIM, NAMESPACE, make_behaviors, make_queries

log = logging.getLogger("bench_llamaindex")


def scripted_llm(steps: int) -> MockFunctionCallingLLM:
    """A function-calling mock: ``steps - 1`` calls of the ``lookup`` tool, then an answer."""

    def respond(messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
        done = sum(1 for m in messages if m.role == MessageRole.TOOL)
        if done < steps - 1 and kwargs.get("tools"):
            call = ToolCallBlock(tool_call_id=f"call-{done}", tool_name="lookup", tool_kwargs={"key": f"k{done}"})
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"The answer after {done} lookups is 42.")

    return MockFunctionCallingLLM(response_generator=respond)


def lookup(key: str) -> str:
    """Look a value up by key."""
    return f"value of {key}"


def build_memory(workdir: str, n: int) -> BehaviorMemory:
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "namespace": NAMESPACE,
            "store": {"path": os.path.join(workdir, "handbook.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
        }
    )
    memory = BehaviorMemory(cfg)
    behaviors, _ = make_behaviors(n)
    batch = 1000
    for start in range(0, n, batch):
        memory.handbook.add_many(behaviors[start : start + batch])
    return memory


Row = Callable[[str], Awaitable[Any]]


def make_rows(memory: BehaviorMemory, steps: int) -> dict[str, Row]:
    agent = FunctionAgent(tools=[lookup], llm=scripted_llm(steps), system_prompt="You look things up.")
    block = BehaviorMemoryBlock(memory)
    wrapped = wrap(FunctionAgent(tools=[lookup], llm=scripted_llm(steps), system_prompt="You look things up."), memory)

    async def bare(q: str) -> Any:
        return await agent.run(q)

    async def with_memory(q: str) -> Any:
        return await agent.run(q, memory=Memory.from_defaults())

    async def with_block(q: str) -> Any:
        return await agent.run(q, memory=Memory.from_defaults(memory_blocks=[block]))

    async def with_block_and_instrument(q: str) -> Any:
        instrumentation = instrument(memory)
        try:
            return await agent.run(q, memory=Memory.from_defaults(memory_blocks=[block]))
        finally:
            instrumentation.record_untagged = False  # the other rows stay untraced

    async def with_fast_template(q: str) -> Any:
        instrumentation = instrument(memory)
        try:
            chat = Memory.from_defaults(memory_blocks=[block], memory_blocks_template=FAST_MEMORY_BLOCKS_TEMPLATE)
            return await agent.run(q, memory=chat)
        finally:
            instrumentation.record_untagged = False

    async def wrapped_run(q: str) -> Any:
        return await wrapped.run(q)

    instrument(memory, record_untagged=False)
    return {
        "bare": bare,
        "Memory.from_defaults()": with_memory,
        "+ block": with_block,
        "+ block + instrument": with_block_and_instrument,
        "... + fast template": with_fast_template,
        "wrap()": wrapped_run,
    }


async def measure(
    rows: dict[str, Row], queries: list[str], runs: int, warmup: int, rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in rows}
    for row in rows.values():
        for i in range(warmup):
            await row(queries[i % len(queries)])
    per_round = max(runs // rounds, 1)
    q = 0
    for _ in range(rounds):
        for name, row in rows.items():
            for _ in range(per_round):
                query = queries[q % len(queries)]
                q += 1
                started = time.perf_counter_ns()
                await row(query)
                times[name].append((time.perf_counter_ns() - started) / 1e6)
    return times


def summarize(times: dict[str, list[float]], steps: int) -> list[dict[str, Any]]:
    base = statistics.median(times["bare"])
    rows = []
    for name, samples in times.items():
        run_ms = statistics.median(samples)
        rows.append(
            {
                "row": name,
                "runs": len(samples),
                "ms_per_run": run_ms,
                "ms_per_step": run_ms / steps,
                "overhead_ms_per_step": (run_ms - base) / steps,
                "ratio": run_ms / base,
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], n: int, steps: int) -> str:
    lines = [
        f"| {n:,} behaviors, {steps} steps/run | ms/run (p50) | ms/step | overhead ms/step | ratio vs bare |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} | {r['ms_per_run']:.2f} | {r['ms_per_step']:.2f} | "
            f"{r['overhead_ms_per_step']:+.2f} | {r['ratio']:.2f}x |"
        )
    return "\n".join(lines)


def retrieval_p50(memory: BehaviorMemory, queries: list[str], n: int = 50) -> tuple[float, float]:
    """Median ms of one retrieve + render, and of one trace save (what a run adds once)."""
    rt, st = [], []
    for i in range(n):
        started = time.perf_counter_ns()
        memory.render(memory.retrieve(queries[i % len(queries)]))
        rt.append((time.perf_counter_ns() - started) / 1e6)
        started = time.perf_counter_ns()
        with memory.trace(task=queries[i % len(queries)]) as t:
            t.model_call(messages=[{"role": "user", "content": "q"}], output="a")
        st.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(rt), statistics.median(st)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--behaviors", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=150, help="timed runs per row")
    parser.add_argument("--steps", type=int, default=4, help="model calls per run (>= 1)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        memory = build_memory(workdir, args.behaviors)
        fill_s = time.perf_counter() - started
        texts, _ = make_queries(np.zeros((1, DIM), dtype=np.float32), 500)
        queries = [f"{q} (#{i})" for i, q in enumerate(texts)]  # every run a new task
        retrieve_ms, save_ms = retrieval_p50(memory, queries)
        rows = make_rows(memory, args.steps)
        times = asyncio.run(measure(rows, queries, args.runs, args.warmup, args.rounds))
        summary = summarize(times, args.steps)
        traces = memory.traces.count(namespace=NAMESPACE)
        uninstrument(memory)
        memory.close()

    print(
        f"# LlamaIndex adapter overhead ({platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs)"
    )
    print(
        f"handbook: {args.behaviors:,} behaviors filled in {fill_s:.1f} s; retrieve+render p50 "
        f"{retrieve_ms:.2f} ms; trace save p50 {save_ms:.2f} ms (each once per run); traces saved {traces}"
    )
    print()
    print(markdown(summary, args.behaviors, args.steps))
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "behaviors": args.behaviors,
                    "steps": args.steps,
                    "retrieve_ms": retrieve_ms,
                    "save_ms": save_ms,
                    "rows": summary,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
