#!/usr/bin/env python3
r"""Latency that ``BehaviorMiddleware`` adds to a LangChain ``create_agent`` agent, model call excluded.

For each size N (default 10k) it fills a SQLite handbook with N synthetic behaviors (the retrieval
bench's data: random unit 384-d vectors, queries near stored ones, served by a lookup embedder so no
model runs), then runs the same agent with and without the middleware, interleaved, on the same
questions. The chat model is LangChain's ``GenericFakeChatModel`` (a tool call, then an answer), so
each task is 2 model calls and 1 tool call, and what remains is LangChain/LangGraph plus us.

Rows (per task, µs, p50 and mean over the timed tasks):

- ``agent without``, ``agent with``: ``agent.invoke`` wall time; ``added`` is their difference and
  ``ratio`` = with / without;
- inside the middleware, each hook's own time (the wrapped model or tool call subtracted):
  ``before_agent`` (retrieve at N behaviors + render + open the trace), ``wrap_model_call`` (inject +
  record, summed over the task's 2 calls), ``wrap_tool_call`` (record), ``after_agent`` (save the trace
  to SQLite, counters). ``per step`` = added / 2 (a step is one model call with its tool calls).

Target: under 2 ms added per step at 10k behaviors. ``--citations both`` (the default) also runs
with ``BehaviorMemory.citations`` replaced by an indexed lookup per cited name: as it is, it lists
the whole namespace on every save of a trace that cites a behavior, which dominates at 10k.

    python bench/bench_langchain.py                          # 10k behaviors, 300 tasks
    python bench/bench_langchain.py --sizes 1000 10000 --tasks 500 --out bench-langchain.json
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_retrieval import NAMESPACE, LookupEmbedder, make_behaviors, make_queries
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.langchain import BehaviorMiddleware
from behavior_memory.errors import NotFoundError
from behavior_memory.injection.render import parse_citations
from behavior_memory.store.sqlite import SQLiteStore

SYSTEM = "You are a careful assistant. Use the tools when they help."
STEPS_PER_TASK = 2  # model calls per task (tool call, then answer)


class FakeToolModel(GenericFakeChatModel):
    """``GenericFakeChatModel`` that accepts tools (it ignores them: its replies are scripted)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeToolModel:
        return self


def scripted_model() -> FakeToolModel:
    usage = {"input_tokens": 400, "output_tokens": 20, "total_tokens": 420}
    call = AIMessage(
        content="", usage_metadata=usage, tool_calls=[{"name": "lookup", "args": {"key": "residues"}, "id": "c1"}]
    )
    answer = AIMessage(content="Using behavior_counting_1: the answer is 42.", usage_metadata=usage)
    return FakeToolModel(messages=itertools.cycle([call, answer]))


@tool
def lookup(key: str) -> str:
    """Look a key up in a small table."""
    return {"residues": "mod arithmetic"}.get(key, "unknown")


class TimedMiddleware(BehaviorMiddleware):
    """The middleware with each hook's own time kept (the model or tool call it wraps subtracted)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spent: dict[str, float] = defaultdict(float)

    def _time(self, key: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter_ns()
        out = fn()
        self.spent[key] += time.perf_counter_ns() - t0
        return out

    def before_agent(self, state: Any, runtime: Any) -> Any:
        return self._time("before_agent", lambda: super(TimedMiddleware, self).before_agent(state, runtime))

    def after_agent(self, state: Any, runtime: Any) -> Any:
        return self._time("after_agent", lambda: super(TimedMiddleware, self).after_agent(state, runtime))

    def _wrapped(self, key: str, parent: Callable[..., Any], request: Any, handler: Callable[[Any], Any]) -> Any:
        inner = [0]

        def timed_handler(req: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return handler(req)
            finally:
                inner[0] += time.perf_counter_ns() - t0

        t0 = time.perf_counter_ns()
        out = parent(request, timed_handler)
        self.spent[key] += time.perf_counter_ns() - t0 - inner[0]
        return out

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        return self._wrapped("wrap_model_call", super().wrap_model_call, request, handler)

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        return self._wrapped("wrap_tool_call", super().wrap_tool_call, request, handler)


def stats(ns: list[float]) -> dict[str, float]:
    us = np.asarray(ns) / 1e3
    return {"p50_us": float(np.percentile(us, 50)), "mean_us": float(us.mean()), "p99_us": float(np.percentile(us, 99))}


def indexed_citations_of(memory: BehaviorMemory) -> Callable[..., list[str]]:
    """``memory.citations`` with one indexed lookup per cited name instead of listing the namespace.

    ``BehaviorMemory.citations`` reads every behavior of the namespace to know which cited names
    exist: O(N) per saved trace that cites anything. This is the suggested fix, measured here.
    """

    def citations(text: str | None, *, namespace: str | None = None) -> list[str]:
        known = []
        for name in parse_citations(text):
            try:
                memory.handbook.get(name, namespace=namespace)
            except NotFoundError:
                continue
            known.append(name)
        return known

    return citations


def run_size(n: int, tasks: int, warmup: int, workdir: str, indexed_citations: bool = False) -> dict[str, Any]:
    behaviors, vectors = make_behaviors(n)
    questions, qvectors = make_queries(vectors, tasks + warmup)
    store = SQLiteStore(Path(workdir) / f"bench-langchain-{n}-{int(indexed_citations)}.db")
    for s in range(0, n, 5000):
        store.put_behaviors(list(zip(behaviors[s : s + 5000], vectors[s : s + 5000], strict=True)))
    cfg = BehaviorMemoryConfig.model_validate({"namespace": NAMESPACE, "reflection": {"mode": "manual"}})
    # The lookup embedder also knows the behaviors' own vectors, so the handbook's embedder check
    # (it re-embeds a store filled by another embedder) leaves them as they are.
    texts = [*questions, *(b.text for b in behaviors)]
    embedder = LookupEmbedder(texts, np.vstack([qvectors, vectors]))
    memory = BehaviorMemory(cfg, store=store, embedder=embedder)
    if indexed_citations:
        memory.citations = indexed_citations_of(memory)  # type: ignore[method-assign]
    middleware = TimedMiddleware(memory)
    plain = create_agent(scripted_model(), [lookup], system_prompt=SYSTEM)
    with_memory = create_agent(scripted_model(), [lookup], system_prompt=SYSTEM, middleware=[middleware])

    without: list[float] = []
    with_: list[float] = []
    hooks: dict[str, list[float]] = defaultdict(list)
    shown = []
    for i, question in enumerate(questions):
        payload = {"messages": [("user", question)]}
        t0 = time.perf_counter_ns()
        plain.invoke(payload)
        t_plain = time.perf_counter_ns()
        middleware.spent.clear()
        with memory.capture() as run:  # the one way to a run's trace id; entered outside the timing
            t1 = time.perf_counter_ns()
            with_memory.invoke(payload)
            t2 = time.perf_counter_ns()
        if i < warmup:
            continue
        without.append(t_plain - t0)
        with_.append(t2 - t1)
        for key in ("before_agent", "wrap_model_call", "wrap_tool_call", "after_agent"):
            hooks[key].append(middleware.spent[key])
        if i == warmup:
            shown = memory.traces.get(run.trace_id).shown
        if i % 50 == 0:
            gc.collect()
    memory.close()
    added = [w - o for w, o in zip(with_, without, strict=True)]
    return {
        "behaviors": n,
        "citations": "indexed lookup (suggested fix)" if indexed_citations else "BehaviorMemory.citations as is",
        "tasks": len(with_),
        "shown_per_task": len(shown),
        "agent_without": stats(without),
        "agent_with": stats(with_),
        "added": stats(added),
        "ratio_p50": float(np.median(with_) / np.median(without)),
        "ratio_mean": float(np.mean(with_) / np.mean(without)),
        "added_per_step_p50_us": float(np.median(added) / 1e3 / STEPS_PER_TASK),
        "hooks": {key: stats(values) for key, values in hooks.items()},
        "hooks_total": stats([sum(v) for v in zip(*hooks.values(), strict=True)]),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| behaviors | row | p50 µs | mean µs | p99 µs |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        n = f"{r['behaviors']:,}" + (" (indexed citations)" if r["citations"].startswith("indexed") else "")
        entries = [
            ("agent without middleware (per task)", r["agent_without"]),
            ("agent with middleware (per task)", r["agent_with"]),
            ("added by the middleware (per task)", r["added"]),
            *((f"  {key}", value) for key, value in r["hooks"].items()),
            ("  all hooks (per task)", r["hooks_total"]),
        ]
        for label, s in entries:
            lines.append(f"| {n} | {label} | {s['p50_us']:,.0f} | {s['mean_us']:,.0f} | {s['p99_us']:,.0f} |")
        lines.append(f"| {n} | **ratio with/without** (p50, mean) | {r['ratio_p50']:.2f}x | {r['ratio_mean']:.2f}x | |")
        lines.append(
            f"| {n} | **added per step** (p50, step = 1 model call + its tools) | "
            f"{r['added_per_step_p50_us']:,.0f} | | |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000])
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument(
        "--citations",
        choices=["as-is", "indexed", "both"],
        default="both",
        help="measure with BehaviorMemory.citations as it is, with the suggested indexed lookup, or both",
    )
    ap.add_argument("--out", help="also write the rows and settings as JSON here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for n in args.sizes:
            print(f"{n:,} behaviors: filling the handbook, then {args.tasks} tasks each way ...", file=sys.stderr)
            modes = {"as-is": [False], "indexed": [True], "both": [False, True]}[args.citations]
            rows.extend(run_size(n, args.tasks, args.warmup, workdir, indexed) for indexed in modes)
    print(
        f"# BehaviorMiddleware overhead ({platform.python_version()}, {platform.machine()}, "
        f"{STEPS_PER_TASK} model calls + 1 tool call per task, fake chat model)\n"
    )
    print(table(rows))
    for r in rows:
        print(
            f"\n{r['behaviors']:,} behaviors, citations {r['citations']}: {r['shown_per_task']} shown per task; "
            f"{r['added_per_step_p50_us'] / 1000:.2f} ms added per step (target < 2 ms)"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "settings": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
