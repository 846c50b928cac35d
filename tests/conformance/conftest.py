"""Every store the package ships, for the contract suite: add a factory here and it runs every check.

``postgres`` runs each test in a fresh schema of one PostgreSQL server per session
(``tests/postgres/pg_harness.py``: ``BMEM_TEST_PG_DSN``, else a bundled server started on first use).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from behavior_memory.store.base import HandbookStore
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.store.sqlite import SQLiteStore

#: name -> a function that opens an empty store (it may keep its files under the given directory).
STORE_FACTORIES: dict[str, Callable[[Path], HandbookStore]] = {
    "sqlite": lambda tmp: SQLiteStore(tmp / "handbook.db"),
    "memory": lambda tmp: InMemoryStore(),
    "postgres": lambda tmp: _postgres_store(),
}


def _postgres_store() -> HandbookStore:
    from postgres.pg_harness import scratch_store  # tests/postgres; psycopg loads only when this runs

    return scratch_store()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HandbookStore]:
    opened = STORE_FACTORIES[request.param](tmp_path)
    yield opened
    opened.close()
