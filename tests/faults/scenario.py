"""What the fault tests and ``bench/bench_faults.py`` share: the configuration and the outage scenario.

:func:`run_outage` saves traces into a memory whose background worker reflects them with the fake
server while the server fails for a while, then waits until every trace has an outcome, and
reports the counts.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI, Fault

from behavior_memory import BehaviorMemory, ReflectionStatus

__all__ = ["FAST_LLM", "OutageReport", "memory_config", "run_outage", "save_traces", "statuses"]

#: Timeouts and waits scaled down so that a fault costs tenths of a second, not minutes.
FAST_LLM: dict[str, Any] = {
    "model": "fake-model",
    "timeout_s": 1.0,
    "connect_timeout_s": 0.5,
    "max_retries": 2,
    "retry_budget_s": 1.0,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.2,
    "breaker_threshold": 5,
    "breaker_cooldown_s": 0.5,
}


def memory_config(fake_url: str, tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A whole configuration (as YAML would give it) for a memory that reflects with the fake server."""
    config: dict[str, Any] = {
        "store": {"path": str(tmp_path / "handbook.db")},
        "embeddings": {"provider": "hashing"},
        "llm": {"base_url": fake_url, **FAST_LLM},
        "reflection": {"mode": "manual", "max_attempts": 3, "concurrency": 4},
        # Every trace mints its own behavior: nothing merges, nothing waits for more support.
        "curation": {"dedup_threshold": 0.99, "approval": "auto"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def save_traces(memory: BehaviorMemory, count: int) -> list[str]:
    """Record ``count`` finished traces, each with its own task; return their ids."""
    ids = []
    for i in range(count):
        with memory.trace(task=f"Task {i}: what is {i} * 17?") as t:
            t.model_call(output=f"{i} * 17 = {i * 17}")
            t.finish(answer=str(i * 17), outcome="success")
        ids.append(t.id)
    return ids


def statuses(memory: BehaviorMemory) -> Counter[str]:
    """How many traces of the store are in each reflection status (every namespace)."""
    return Counter({str(s): memory.traces.count(all_namespaces=True, status=s) for s in ReflectionStatus})


@dataclass
class OutageReport:
    """What became of the traces saved during an outage."""

    name: str
    traces: int
    outage_s: float
    statuses: Counter[str]
    behaviors: int
    answered: Counter[str]  # how the fake answered each request: ok, status 500, html, ...
    drain_s: float  # from the end of the outage until every trace had an outcome
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def run_outage(
    fake: FakeOpenAI,
    memory: BehaviorMemory,
    *,
    name: str,
    traces: int,
    fault: Fault,
    outage_s: float,
    deadline_s: float,
) -> OutageReport:
    """Fail the fake for ``outage_s`` while ``traces`` traces are saved; wait until all are reflected.

    ``memory`` reflects in the background (``reflection.mode: background``). Gives up
    ``deadline_s`` after the outage ended.
    """
    fake.fail_for(outage_s, fault)
    started = time.monotonic()
    save_traces(memory, traces)
    recovered = started + outage_s
    done = False
    while time.monotonic() < recovered + deadline_s:
        counts = statuses(memory)
        if counts["done"] + counts["failed"] >= traces:
            done = True
            break
        time.sleep(0.05)
    finished = time.monotonic()
    return OutageReport(
        name=name,
        traces=traces,
        outage_s=outage_s,
        statuses=statuses(memory),
        behaviors=memory.handbook.count(),
        answered=fake.tally(),
        drain_s=max(finished - recovered, 0.0),
        timed_out=not done,
    )
