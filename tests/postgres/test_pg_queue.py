"""The reflection queue on PostgreSQL across processes: 8 claimers never share a trace; a killed
claimer's traces come back after the lease; a stopped worker gives its claims back."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from behavior_memory.store.claims import ClaimTracker
from behavior_memory.store.postgres import PostgresStore
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import ReflectionStatus, Trace

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _traces(n: int) -> list[Trace]:
    return [Trace(task=f"task {i}", created_at=T0 + timedelta(seconds=i)) for i in range(n)]


def _claimer(dsn: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = PostgresStore(dsn, listen=False, pool_size=2)
    got: list[str] = []
    while batch := store.claim_pending_traces(3, lease_s=600):
        got.extend(t.id for t in batch)
    store.close()
    out.put(got)


def test_eight_claimer_processes_never_share_a_trace(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn, listen=False)
    traces = _traces(240)
    ids = {t.id for t in traces}
    store.put_traces(traces)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(pg_dsn, out)) for _ in range(8)]
    for p in procs:
        p.start()
    claimed = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    flat = [i for part in claimed for i in part]
    assert len(flat) == len(set(flat)) == len(ids) and set(flat) == ids
    assert sum(1 for part in claimed if part) >= 2  # the work was shared, not done by one
    assert store.count_traces(status=ReflectionStatus.RUNNING) == 240
    store.close()


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from behavior_memory.store.postgres import PostgresStore
    store = PostgresStore(sys.argv[1], listen=False)
    held = store.claim_pending_traces(5, lease_s=600)
    print(" ".join(t.id for t in held), flush=True)
    time.sleep(600)
    """
)


def test_a_killed_claimer_s_traces_are_reclaimed_after_the_lease(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn, listen=False)
    store.put_traces(_traces(5))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, pg_dsn], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    held = set(holder.stdout.readline().split())
    assert len(held) == 5
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert store.claim_pending_traces(10, lease_s=2.0) == []  # the lease still runs
    time.sleep(2.2)
    again = store.claim_pending_traces(10, lease_s=2.0)
    assert {t.id for t in again} == held and all(t.reflection_attempts == 2 for t in again)
    store.close()


def test_release_gives_back_only_what_this_store_still_holds(pg_dsn: str) -> None:
    mine, other = PostgresStore(pg_dsn, listen=False), PostgresStore(pg_dsn, listen=False)
    mine.put_traces(_traces(4))
    tracker = ClaimTracker(mine)
    held = tracker.claim_pending_traces(3)
    tracker.update_trace_fields(held[0].id, reflection_status=ReflectionStatus.DONE)
    time.sleep(0.05)
    [taken] = other.claim_pending_traces(1, lease_s=0.01)  # held[1]'s lease "expired": another took it over
    assert taken.id == held[1].id
    assert tracker.held == {held[1].id, held[2].id}
    assert tracker.release() == 1  # held[2] only: held[1] belongs to the other store now
    back = mine.get_trace(held[2].id)
    assert (back.reflection_status, back.reflection_attempts) == (ReflectionStatus.PENDING, 0)
    assert mine.get_trace(held[1].id).reflection_status == ReflectionStatus.RUNNING
    mine.close()
    other.close()


def test_release_works_on_sqlite_too(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    for t in _traces(2):
        store.put_trace(t)
    tracker = ClaimTracker(store)
    tracker.claim_pending_traces(2)
    assert tracker.release() == 2
    assert store.count_claimable(lease_s=600) == 2
