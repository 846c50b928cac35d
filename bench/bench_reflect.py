"""Reflection throughput and vLLM prefix-cache reuse, on one running server.

    python bench/bench_reflect.py [--base-url URL] [--model NAME] [--traces 8] [--tasks 20]

1. Throughput: the same number of fresh traces reflected at concurrency 1, 4 and 8 (traces/minute).
2. Prefix cache: 20 tasks that share one behavior block, sent (a) with the block in the system
   message (a stable prefix) and (b) with the block after the user's question. The hit rate is read
   from the server's /metrics (vllm:prefix_cache_hits / vllm:prefix_cache_queries) before and after
   each condition, and the cached prompt tokens from each answer's usage.

With no --base-url it starts (or reuses) the embedded CPU server of `bmem serve`.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from behavior_memory import Behavior, BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.injection.render import render_block
from behavior_memory.llm.client import LLMClient
from behavior_memory.llm.config import LLMConfig

TASKS = [
    f"A farmer has {n} rows of {n + 3} plants and sells {n * 2} plants. How many plants are left?" for n in range(3, 40)
]


def metrics(base_url: str) -> dict[str, float]:
    root = base_url.rstrip("/").removesuffix("/v1")
    text = urllib.request.urlopen(f"{root}/metrics", timeout=10).read().decode()
    found: dict[str, float] = {}
    for name in ("prefix_cache_hits", "prefix_cache_queries"):
        values = re.findall(rf"^vllm:{name}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
        found[name] = sum(float(v) for v in values)
    return found


def throughput(base_url: str, model: str, n_traces: int, concurrency: int) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BehaviorMemoryConfig.model_validate(
            {
                "llm": {"base_url": base_url, "model": model, "timeout_s": 300, "output_retries": 1},
                "embeddings": {"provider": "hashing"},
                "store": {"path": str(Path(tmp) / "h.db")},
                "reflection": {
                    "mode": "manual",
                    "max_behaviors_per_trace": 2,
                    "reflection_max_tokens": 128,
                    "extraction_max_tokens": 160,
                    "extra_body": {"repetition_penalty": 1.15},
                },
            }
        )
        with BehaviorMemory(cfg) as memory:
            for i in range(n_traces):
                with memory.trace(task=TASKS[i % len(TASKS)]) as t:
                    t.model_call(messages=[{"role": "user", "content": TASKS[i]}], output=f"The answer is {i * 7}.")
                    t.finish(answer=str(i * 7))
            started = time.perf_counter()
            outcomes = memory.reflect_pending(concurrency=concurrency)
            elapsed = time.perf_counter() - started
    return n_traces / elapsed * 60, dict(outcomes)


def prefix_cache(base_url: str, model: str, n_tasks: int, placement: str) -> dict[str, float]:
    behaviors = [
        Behavior(
            name=f"behavior_rule_{i:02d}",
            instruction=f"When a quantity repeats, multiply instead of "
            f"adding it {i + 2} times; check the units of rule {i}.",
        )
        for i in range(20)
    ]
    block = str(render_block(behaviors))
    nonce = uuid.uuid4().hex  # each condition starts cold: nothing cached from an earlier run
    base = f"[run {nonce}] You are a careful math tutor. Answer briefly."
    client = LLMClient(LLMConfig(base_url=base_url, model=model, timeout_s=300))

    def ask(task: str) -> int:
        if placement == "system":
            messages = [{"role": "system", "content": f"{base}\n\n{block}"}, {"role": "user", "content": task}]
        else:
            messages = [{"role": "system", "content": base}, {"role": "user", "content": f"{task}\n\n{block}"}]
        result = client.chat(messages, max_tokens=8)
        return (result.usage.cached_tokens or 0) if result.usage else 0

    before = metrics(base_url)
    ask(TASKS[0])  # the first request fills the cache, as the first step of any task would
    with ThreadPoolExecutor(4) as pool:
        cached = list(pool.map(ask, TASKS[1:n_tasks]))
    after = metrics(base_url)
    queries = after["prefix_cache_queries"] - before["prefix_cache_queries"]
    hits = after["prefix_cache_hits"] - before["prefix_cache_hits"]
    client.close()
    return {
        "hit_rate": hits / queries if queries else float("nan"),
        "queries": queries,
        "hits": hits,
        "cached_tokens_per_task": sum(cached) / len(cached),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    parser.add_argument("--traces", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--concurrency", default="1,4,8")
    args = parser.parse_args()
    base_url, model = args.base_url, args.model
    if base_url is None:
        from behavior_memory.serving import server

        info = server.start(BehaviorMemoryConfig().serve)
        base_url, model = info.base_url, info.model
    model = model or "smollm2-135m-instruct"
    print(f"server {base_url}, model {model}\n")

    print("reflection throughput (same server, fresh traces each row)")
    print(f"{'concurrency':>11} {'traces':>6} {'traces/min':>10}  outcomes")
    rows = []
    for width in (int(c) for c in args.concurrency.split(",")):
        rate, outcomes = throughput(base_url, model, args.traces, width)
        rows.append(rate)
        print(f"{width:>11} {args.traces:>6} {rate:>10.1f}  {outcomes}")
    if rows:
        print(f"speed-up of the last row over the first: {rows[-1] / rows[0]:.2f}x\n")

    print(f"prefix cache, {args.tasks} tasks sharing one behavior block")
    print(f"{'block placed':>22} {'hit rate':>8} {'hits/queries (tokens)':>24} {'cached tokens/task':>19}")
    for placement, label in (("system", "in the system prefix"), ("user", "after the user message")):
        r = prefix_cache(base_url, model, args.tasks, placement)
        print(
            f"{label:>22} {r['hit_rate']:>8.1%} {r['hits']:>11.0f}/{r['queries']:<12.0f} "
            f"{r['cached_tokens_per_task']:>19.0f}"
        )


if __name__ == "__main__":
    main()
