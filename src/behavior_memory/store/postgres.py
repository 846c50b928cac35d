"""``PostgresStore``: one handbook shared by many agents on many machines (PostgreSQL + pgvector).

The same contract as ``SQLiteStore`` (``store.base``), over a psycopg 3 connection pool:

- every write is one transaction; counters move in SQL (``x = x + n``), rows locked in name order
  so concurrent increments never deadlock; edits are refused on a stale ``version``;
- reflection workers on any number of machines claim traces with ``FOR UPDATE SKIP LOCKED``
  under a lease (``claimed_at``, by the server's clock, and ``claimed_by``, this store's id);
- LISTEN/NOTIFY (``ChangeListener``) keeps ``change_token`` a local lookup and wakes idle workers;
- a connection found dead (the server restarted) is replaced and the transaction retried, unless
  it died while committing; a server that is down is ``StoreUnavailableError``, which the agent's
  hot path turns into "no behaviors" and a spooled trace, never a failed task.

Vectors live in a pgvector column with an HNSW (cosine) index per size; ``search_vectors`` and
``search_text`` answer on the server (``store.search``, ``postgres_search``: the recall settings).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .._optional import require
from ..errors import BehaviorMemoryError, StoreBusyError, StoreError, StoreUnavailableError
from .postgres_migrations import HNSW_MAX_DIMS, MIGRATION_LOCK, MIGRATIONS, hnsw_index_sql
from .postgres_rows import VectorBinaryDumper, VectorBinaryLoader, encode

require("psycopg", "postgres", what="the PostgreSQL store")
require("psycopg_pool", "postgres", what="the PostgreSQL store")

import psycopg  # noqa: E402
from psycopg import errors as pgerrors  # noqa: E402
from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402
from psycopg_pool import ConnectionPool, PoolTimeout  # noqa: E402

from .postgres_behaviors import BehaviorQueries  # noqa: E402
from .postgres_feed import FeedQueries, log_changes  # noqa: E402
from .postgres_listen import ChangeListener  # noqa: E402
from .postgres_search import HnswSettings, SearchQueries  # noqa: E402
from .postgres_traces import TraceQueries  # noqa: E402

__all__ = ["PostgresStore", "redact_dsn", "spool_name"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Conn = psycopg.Connection[Any]

_BUDGET_SQL = "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)"
_RETRIES = 8  # deadlocks, serialization failures, connections found dead before the commit


def redact_dsn(dsn: str) -> str:
    """``dsn`` without its password (for messages, logs and the spool's folder name)."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    params.pop("password", None)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def spool_name(dsn: str) -> str:
    """A folder name for the trace spool of the database ``dsn`` names (its password left out)."""
    return "pg-" + hashlib.sha256(redact_dsn(dsn).encode()).hexdigest()[:16]


class PostgresStore(BehaviorQueries, SearchQueries, TraceQueries, FeedQueries):
    """A handbook in a PostgreSQL database with pgvector (see the module docstring).

    ``dsn`` is a libpq connection string or ``postgresql://`` URL; tables go to the first schema
    of its ``search_path``. ``pool_size`` connections at most per process; ``connect_timeout_s``
    bounds a connection attempt and the wait for a free pooled connection. ``listen=False`` turns
    LISTEN/NOTIFY off (every ``change_token`` is then a query). ``hnsw`` tunes the vector indexes
    and their searches (``HnswSettings``: recall against speed).
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        connect_timeout_s: float = 5.0,
        listen: bool = True,
        application_name: str = "behavior-memory",
        hnsw: HnswSettings | None = None,
    ) -> None:
        self.dsn = dsn
        self.hnsw = hnsw or HnswSettings()
        self.client_id = uuid.uuid4().hex  # written on the traces this store claims
        self.connect_timeout_s = connect_timeout_s
        self._pool_size = max(int(pool_size), 1)
        self._kwargs: dict[str, Any] = {"application_name": application_name}
        if "connect_timeout" not in conninfo_to_dict(dsn):
            self._kwargs["connect_timeout"] = max(int(connect_timeout_s), 1)
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._vector_oid: int | None = None
        self._indexed: set[int] = set()
        self._deferred: set[int] | None = None  # sizes waiting for their index (bulk_load)
        self.channel = ""
        self.token_queries = 0  # how often change_token asked the server (tests, stats)
        self._listener: ChangeListener | None = None
        self._listen = listen
        self._closed = False
        try:
            self._ensure_ready()
        except StoreUnavailableError as exc:  # the agent starts anyway; every call tries again
            log.warning("PostgreSQL is not reachable yet (%s); the handbook will be opened on first use", exc)

    def __repr__(self) -> str:
        return f"PostgresStore({redact_dsn(self.dsn)!r})"

    # --- opening: migrations, pool, listener --------------------------------------------------------
    def _connect(self, **extra: Any) -> Conn:
        try:
            return psycopg.connect(self.dsn, **{**self._kwargs, **extra})
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"cannot connect to PostgreSQL at {redact_dsn(self.dsn)}: {str(exc).strip()}", dsn=redact_dsn(self.dsn)
            ) from exc

    def _ensure_ready(self) -> ConnectionPool[Conn]:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is not None:
                return self._pool
            if self._closed:
                raise StoreError("the PostgreSQL store was closed")
            schema = self.migrate()
            self.channel = "bmem_" + hashlib.sha1(schema.encode()).hexdigest()[:16]
            self._pool = ConnectionPool(
                self.dsn,
                min_size=1,
                max_size=self._pool_size,
                kwargs={**self._kwargs, "autocommit": True},
                configure=self._configure,
                timeout=self.connect_timeout_s,
                name="behavior-memory",
                open=True,
            )
            if self._listen:
                self._listener = ChangeListener(self.dsn, self.channel, **self._kwargs)
                self._listener.start(wait_s=self.connect_timeout_s)
            return self._pool

    def migrate(self) -> str:
        """Bring the schema up to date (idempotent, safe from many processes); returns the schema's name."""
        with self._connect(autocommit=True) as conn:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version "
                        "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
                    current = int(row[0]) if row else 0
                    if current > len(MIGRATIONS):
                        raise StoreError(
                            f"the handbook at {redact_dsn(self.dsn)} has schema version {current}, newer than "
                            f"this version of behavior-memory knows ({len(MIGRATIONS)}): upgrade behavior-memory"
                        )
                    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                        conn.execute(script)
                        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
                        log.info("handbook at %s migrated to schema version %d", redact_dsn(self.dsn), number)
                    schema = conn.execute("SELECT coalesce(current_schema(), 'public')").fetchone()
                    oid = conn.execute("SELECT 'vector'::regtype::oid").fetchone()
                    indexed = conn.execute(
                        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                        "AND indexname LIKE 'behaviors_hnsw_%%'"
                    ).fetchall()
            except BehaviorMemoryError:
                raise
            except pgerrors.InsufficientPrivilege as exc:
                raise StoreUnavailableError(
                    f"cannot prepare the handbook at {redact_dsn(self.dsn)}: {str(exc).strip()} (a superuser "
                    "must run CREATE EXTENSION vector once in this database, and this role needs CREATE on "
                    "the schema)"
                ) from exc
            except psycopg.Error as exc:
                raise self._wrap(exc, "migrate") from exc
        self._vector_oid = int(oid[0]) if oid else None
        self._indexed = {int(name[0].rsplit("_", 1)[1]) for name in indexed}
        return str(schema[0]) if schema else "public"

    def schema_version(self) -> int:
        """The number of migrations applied."""
        row = self._read(lambda conn: conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone())
        return int(row[0]) if row else 0

    def _configure(self, conn: Conn) -> None:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(self.hnsw.session_sql())
        assert self._vector_oid is not None
        dumper = type("PgVectorDumper", (VectorBinaryDumper,), {"oid": self._vector_oid})
        conn.adapters.register_dumper(np.ndarray, dumper)
        conn.adapters.register_loader(self._vector_oid, VectorBinaryLoader)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # --- running statements ---------------------------------------------------------------------------
    def _wrap(self, exc: BaseException, action: str, *, budget_s: float | None = None) -> StoreError:
        where = redact_dsn(self.dsn)
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, pgerrors.LockNotAvailable | pgerrors.QueryCanceled) and budget_s is not None:
            return StoreBusyError(
                f"the handbook at {where} was locked by another writer for more than {budget_s:g} s; "
                "nothing was written",
                dsn=where,
            )
        if isinstance(exc, PoolTimeout):
            return StoreUnavailableError(
                f"no connection to the handbook at {where} within "
                f"{self.connect_timeout_s if budget_s is None else budget_s:g} s (is PostgreSQL up?)",
                dsn=where,
            )
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailableError(f"cannot {action} the handbook at {where}: {text}", dsn=where)
        return StoreError(f"handbook at {where}: {action} failed: {text}", dsn=where)

    def _run(self, fn: Callable[[Conn], T], *, write: bool = True, budget_s: float | None = None) -> T:
        """Run ``fn`` on a pooled connection, in one transaction when ``write``.

        Retried on a deadlock or serialization failure, and on a connection that turns out dead
        (a restarted server) unless it died during the commit, when nobody can know whether the
        write landed. ``budget_s`` bounds the wait for a connection and for other writers' locks.
        """
        deadline = None if budget_s is None else time.monotonic() + budget_s
        for attempt in range(_RETRIES):
            committing = False
            try:
                pool = self._ensure_ready()
                wait = self.connect_timeout_s if deadline is None else max(deadline - time.monotonic(), 0.001)
                with pool.connection(timeout=wait) as conn:
                    if not write:
                        return fn(conn)
                    with conn.transaction():
                        if deadline is not None:
                            ms = f"{max(int((deadline - time.monotonic()) * 1000), 1)}ms"
                            conn.execute(_BUDGET_SQL, (ms, ms))
                        result = fn(conn)
                        committing = True
                    return result
            except BehaviorMemoryError:
                raise
            except (pgerrors.DeadlockDetected, pgerrors.SerializationFailure) as exc:
                if attempt == _RETRIES - 1:
                    raise self._wrap(exc, "write") from exc
                time.sleep(0.005 * (attempt + 1))
            except psycopg.OperationalError as exc:
                if committing or attempt >= 2 or (deadline is not None and time.monotonic() >= deadline):
                    raise self._wrap(exc, "write" if write else "read", budget_s=budget_s) from exc
                log.info("a PostgreSQL connection was lost (%s); retrying", str(exc).strip())
            except (psycopg.Error, PoolTimeout) as exc:
                raise self._wrap(exc, "write" if write else "read", budget_s=budget_s) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[Conn], T]) -> T:
        return self._run(fn, write=False)

    def _bump(self, conn: Conn, namespace: str, changed: Collection[str] = (), deleted: Collection[str] = ()) -> int:
        """Move the namespace's change token, log the ids that moved it (the change feed), and tell
        every listener once this transaction commits."""
        row = conn.execute(
            "WITH v AS (INSERT INTO namespace_versions (namespace, version) VALUES (%s, 1) "
            "ON CONFLICT (namespace) DO UPDATE SET version = namespace_versions.version + 1 RETURNING version) "
            "SELECT version, pg_notify(%s, version::text || chr(9) || %s) FROM v",
            (namespace, self.channel, namespace),
        ).fetchone()
        assert row is not None
        log_changes(conn, namespace, int(row[0]), changed, deleted)
        return int(row[0])

    def _after_bump(self, namespace: str, token: int) -> None:
        if self._listener is not None:
            self._listener.wrote(namespace, token)

    def _notify_traces(self, conn: Conn) -> None:
        conn.execute("SELECT pg_notify(%s, '')", (self.channel + "_traces",))

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Within this block behaviors are written with binary ``COPY``, and new vector sizes get their
        HNSW index at the end, built once over all rows (``bmem store copy``, benches) instead of
        growing with every insert."""
        self._deferred = set()
        try:
            yield
        finally:
            deferred, self._deferred = self._deferred, None
            self._ensure_index(deferred)
            # fresh statistics: without them the planner takes a bulk-loaded namespace for a few rows
            # and scans it exactly instead of using the HNSW index
            self._run(lambda conn: conn.execute("ANALYZE behaviors"))

    def _ensure_index(self, dims: Iterable[int]) -> None:
        """The HNSW index for vectors of each of ``dims`` sizes, created once (after the rows are in)."""
        if self._deferred is not None:
            self._deferred.update(dims)
            return
        for d in sorted(set(dims) - self._indexed):
            if d > HNSW_MAX_DIMS:  # pgvector cannot index them; searches scan exactly
                self._indexed.add(d)
                continue

            def create(conn: Conn, d: int = d) -> None:
                def spilled(diag: psycopg.errors.Diagnostic) -> None:  # pgvector: the graph outgrew the memory
                    log.warning(
                        "HNSW index for %d-dimensional vectors: %s; raise store.hnsw_build_memory_mb (now %d)",
                        d,
                        diag.message_primary,
                        self.hnsw.build_memory_mb,
                    )

                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(self.hnsw.build_sql())  # the graph in memory, parallel workers: a faster build
                log.info("building the HNSW index for %d-dimensional vectors (%s)", d, redact_dsn(self.dsn))
                conn.add_notice_handler(spilled)
                try:
                    conn.execute(hnsw_index_sql(d, m=self.hnsw.m, ef_construction=self.hnsw.ef_construction))
                finally:
                    conn.remove_notice_handler(spilled)

            try:
                self._run(create)
                self._indexed.add(d)
            except StoreError:  # a missing index costs speed, not answers: try again next time
                log.warning("could not create the HNSW index for %d-dimensional vectors", d, exc_info=True)

    # --- the change token and the events ---------------------------------------------------------------
    def change_token(self, namespace: str) -> int:
        listener = self._listener
        generation = -1
        if listener is not None:
            cached, generation = listener.token(namespace)
            if cached is not None:
                return cached
        self.token_queries += 1
        row = self._read(
            lambda conn: conn.execute(
                "SELECT version FROM namespace_versions WHERE namespace = %s", (namespace,)
            ).fetchone()
        )
        token = 0 if row is None else int(row[0])
        if listener is not None:
            listener.remember(namespace, token, generation)
        return token

    def on_pending_traces(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when a trace becomes pending in this handbook (from any process).

        Returns the function that unsubscribes. Without a listener (``listen=False``) it never fires.
        """
        self._ensure_ready()
        if self._listener is None:
            return lambda: None
        return self._listener.on_traces(callback)

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (``change_token`` is then served locally)."""
        return self._listener is not None and self._listener.connected

    # --- meta -------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._read(lambda conn: conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone())
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._run(
            lambda conn: conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, encode(value)),
            )
        )

    def meta_items(self) -> dict[str, str]:
        """Every meta key and its value (``bmem store copy``)."""
        rows = self._read(lambda conn: conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall())
        return {str(k): str(v) for k, v in rows}

    def namespaces(self) -> list[str]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT namespace FROM behaviors UNION SELECT namespace FROM traces ORDER BY 1"
            ).fetchall()
        )
        return [row[0] for row in rows]

    # --- hooks the query mixins use ------------------------------------------------------------------
    def _vectors_written(self, vectors: Iterable[npt.NDArray[np.float32] | None]) -> None:
        self._ensure_index(int(np.asarray(v).size) for v in vectors if v is not None)
