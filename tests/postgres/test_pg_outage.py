"""PostgreSQL stopped and started mid-run: the agent goes on without behaviors, its traces wait in the
spool, and everything reconnects and is written once the server is back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from behavior_memory import BehaviorMemory
from behavior_memory.config.settings import BehaviorMemoryConfig
from behavior_memory.errors import StoreUnavailableError
from behavior_memory.injection.fetch import BlockFetcher
from behavior_memory.store.postgres import PostgresStore
from behavior_memory.types import Trace
from postgres.pg_harness import PgServer


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except StoreUnavailableError:
            pass
        time.sleep(0.1)
    return False


def test_a_restarted_server_breaks_no_task_and_loses_no_trace(pg: PgServer, pg_dsn: str, tmp_path: Path) -> None:
    if not pg.restartable:
        pytest.skip("BMEM_TEST_PG_DSN names a server these tests cannot stop")
    config = BehaviorMemoryConfig.model_validate(
        {
            "store": {
                "backend": "postgres",
                "dsn": pg_dsn,
                "connect_timeout_s": 1.0,
                "spool_path": str(tmp_path / "spool"),
            },
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
            "retrieval": {"strategy": "hybrid", "floor": -1.0},
        }
    )
    memory = BehaviorMemory(config)
    memory.handbook.add("behavior_check_units", "Check the units of every quantity before combining them.")
    fetcher = BlockFetcher(memory, timeout_s=5.0)
    assert "behavior_check_units" in fetcher.fetch("what units?", "default").block
    memory.traces.save(Trace(task="before", shown=["behavior_check_units"]))
    other = PostgresStore(pg_dsn)  # another process's store, its pool and listener warm

    pg.stop()
    try:
        started = time.monotonic()
        fetched = fetcher.fetch("what units?", "default")
        assert fetched.status == "error" and str(fetched.block) == ""  # no behaviors, no failure
        for i in range(3):
            memory.traces.save(Trace(task=f"during {i}", shown=["behavior_check_units"]))  # spooled, not raised
        assert memory.traces.spooled() == 3
        assert time.monotonic() - started < 10
        with pytest.raises(StoreUnavailableError):
            other.count_traces()
    finally:
        pg.start()

    assert _wait(lambda: memory.traces.spooled() == 0, 30)  # the drainer wrote them
    assert _wait(lambda: other.count_traces() == 4, 10)  # the other client reconnected by itself
    assert other.get_behavior("default", "behavior_check_units").shown == 4  # each trace counted once
    assert "behavior_check_units" in fetcher.fetch("what units?", "default").block
    memory.traces.save(Trace(task="after"))
    assert other.count_traces() == 5 and memory.traces.spooled() == 0
    assert _wait(lambda: other.listening, 10)
    other.close()
    memory.close()
