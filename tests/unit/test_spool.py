"""The hot path's write budget: a held write lock never stalls the agent, and no trace is lost.

Another process really holds SQLite's write lock (a child Python process in BEGIN IMMEDIATE).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.recording.spool import TraceSpool
from behavior_memory.types import Trace

_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()  # hold until told to let go
conn.execute("ROLLBACK")
"""


class LockHolder:
    """Another process holding the handbook's write lock until ``release``."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
            self.proc.wait(10)


def make_memory(tmp_path: Path, **store: object) -> BehaviorMemory:
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db"), **store},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
        }
    )
    return BehaviorMemory(cfg)


@pytest.fixture
def memory(tmp_path: Path):
    m = make_memory(tmp_path, write_budget_s=0.2)
    m.handbook.add("behavior_check_units", "Check that both sides of an equation carry the same units.")
    yield m
    m.close()


def run_task(memory: BehaviorMemory, question: str) -> str:
    hits = memory.retrieve(question)
    with memory.trace(task=question, hits=hits) as t:
        t.model_call(messages=[{"role": "user", "content": question}], output="behavior_check_units says 4")
        t.finish(answer="4")
    return t.id


def test_a_held_lock_delays_a_run_at_most_the_budget_and_the_trace_is_spooled_then_written(memory, tmp_path):
    memory.retrieve("warm up")  # embedder check and retriever snapshot before the lock is taken
    holder = LockHolder(tmp_path / "h.db")
    try:
        delays, ids = [], []
        for i in range(5):
            started = time.monotonic()
            ids.append(run_task(memory, f"units question {i}"))
            delays.append(time.monotonic() - started)
        assert memory.traces.spooled() == 5
        assert max(delays) < 0.2 + 1.5  # the budget plus generous slack for a shared machine, never the lock's length
    finally:
        holder.release()
    deadline = time.monotonic() + 20
    while memory.traces.spooled() and time.monotonic() < deadline:
        time.sleep(0.1)  # the drainer thread writes them once the lock is free
    assert memory.traces.spooled() == 0
    for trace_id in ids:
        stored = memory.traces.get(trace_id)
        assert stored.answer == "4" and stored.cited == ["behavior_check_units"]
    behavior = memory.handbook.get("behavior_check_units")
    assert (behavior.shown, behavior.cited) == (5, 5)  # counted once each, no loss, no double count


def test_the_next_process_drains_a_spool_left_behind(tmp_path):
    first = make_memory(tmp_path)
    first.handbook.add("behavior_check_units", "Check that both sides of an equation carry the same units.")
    spool = first.traces.spool
    assert spool is not None and spool.path == Path(f"{tmp_path / 'h.db'}.spool")
    left = Trace(task="spooled by a process that then died", shown=["behavior_check_units"])
    spool.append(left)
    (spool.path / "junk.trace.json").write_text("{not json")
    first.close()

    second = make_memory(tmp_path)
    try:
        assert second.traces.drain_spool() in (0, 1)  # the drainer thread may have been first
        assert second.traces.get(left.id).task == left.task
        assert second.handbook.get("behavior_check_units").shown == 1
        assert (spool.path / "junk.trace.json.bad").exists()  # set aside, never deleted
        assert second.traces.spooled() == 0
    finally:
        second.close()


def test_a_drain_stops_at_the_first_trace_the_store_cannot_take(tmp_path):
    spool = TraceSpool(tmp_path / "spool")
    traces = [Trace(task=f"t{i}") for i in range(3)]
    for t in traces:
        spool.append(t)
    calls: list[str] = []

    def flaky(trace: Trace) -> None:
        calls.append(trace.id)
        if len(calls) == 2:
            raise OSError("disk full")

    assert spool.drain(flaky) == 1
    assert len(spool) == 2
    assert spool.drain(lambda trace: None) == 2 and len(spool) == 0


def test_a_file_store_given_directly_gets_its_spool_beside_it(tmp_path):
    from behavior_memory.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "x.db")
    cfg = BehaviorMemoryConfig.model_validate(
        {"embeddings": {"provider": "hashing"}, "reflection": {"mode": "manual"}, "store": {"write_budget_s": 0.1}}
    )
    m = BehaviorMemory(cfg, store=store)
    assert m.traces.spool is not None and m.traces.spool.path == Path(f"{tmp_path / 'x.db'}.spool")
    m.close()
