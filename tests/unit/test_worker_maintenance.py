"""The background worker runs the curation pass when idle, at most every curation.interval_s."""

from __future__ import annotations

import time

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.reflection.worker import ReflectionWorker
from behavior_memory.types import BehaviorStatus, ReflectionStatus, Trace


class Service:
    """Just enough of a ReflectionService for the loop: a store with nothing to claim."""

    class store:  # stands in for the attribute
        @staticmethod
        def claim_pending_traces(limit, lease_s):
            return []


def test_maintenance_runs_when_idle_and_not_more_often_than_asked():
    calls: list[float] = []
    worker = ReflectionWorker(
        Service(), idle_s=0.01, maintenance=lambda: calls.append(time.monotonic()), maintenance_every_s=0.2
    )
    worker.start()
    time.sleep(0.5)
    worker.stop()
    assert 2 <= len(calls) <= 4  # ~every 0.2 s while idle, not every 0.01 s round


def test_a_failing_maintenance_pass_never_stops_the_worker():
    def broken():
        raise RuntimeError("store gone")

    worker = ReflectionWorker(Service(), idle_s=0.01, maintenance=broken, maintenance_every_s=0.05)
    worker.start()
    time.sleep(0.2)
    assert worker._thread is not None and worker._thread.is_alive()
    worker.stop()


def test_the_memorys_worker_curates_the_handbook(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "background"},
            "curation": {"interval_s": 0.1, "lifecycle": {"stale_after_tasks": 2}},
        }
    )
    with BehaviorMemory(cfg) as memory:
        memory.handbook.add("behavior_check_units", "Check that both sides of an equation carry the same units.")
        for i in range(3):  # tasks that used nothing, already reflected: only the curation pass has work
            memory.store.put_trace(Trace(task=f"unrelated task {i}", reflection_status=ReflectionStatus.SKIPPED))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if memory.handbook.get("behavior_check_units").status == BehaviorStatus.STALE:
                break
            memory.worker.notify()
            time.sleep(0.1)
        assert memory.handbook.get("behavior_check_units").status == BehaviorStatus.STALE
