"""Fixtures of the PostgreSQL tests: the session's server (``pg_harness``) and a fresh schema per test."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from postgres.pg_harness import PgServer, ScratchPostgresStore, pg_server, scratch_dsn


@pytest.fixture(scope="session")
def pg() -> PgServer:
    return pg_server()


@pytest.fixture
def pg_dsn(pg: PgServer) -> Iterator[str]:
    """A DSN whose tables go to a fresh schema, dropped after the test."""
    dsn, schema = scratch_dsn(pg.dsn)
    yield dsn
    try:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    except psycopg.Error:
        pass


@pytest.fixture
def pg_store(pg: PgServer) -> Iterator[ScratchPostgresStore]:
    opened = ScratchPostgresStore(base_dsn=pg.dsn)
    yield opened
    opened.close()
