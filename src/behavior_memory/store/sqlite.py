"""``SQLiteStore``: the default handbook store, one file on disk.

Safe with many threads and many processes on one file: WAL mode, one connection per thread,
every write in a ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two writers
never deadlock on a lock upgrade), and a bounded retry when SQLite says the file is busy, so
"database is locked" never reaches the caller while other writers make progress.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..errors import (
    ConflictError,
    InvalidBehaviorError,
    NotFoundError,
    StoreBusyError,
    StoreCorruptedError,
    StoreError,
    StoreUnavailableError,
)
from ..types import Behavior, BehaviorStatus, ReflectionStatus, Step, Trace, utcnow
from .base import COUNTERS, TRACE_UPDATABLE_FIELDS, Changes, CounterName, RetrievalRows, Vectors
from .sqlite_migrations import MIGRATIONS
from .sqlite_rows import (
    BEHAVIOR_COLUMNS,
    BEHAVIOR_EDITABLE,
    TRACE_COLUMNS,
    behavior_edit,
    behavior_from_row,
    behavior_row,
    blob,
    bump,
    encode,
    read_changes,
    read_retrieval_rows,
    trace_from_row,
    trace_row,
)

__all__ = ["SQLiteStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_BUSY_BUDGET_S = 120.0  # how long a write keeps retrying a busy file before giving up


_BEHAVIOR_SLOTS = ", ".join("?" * (len(BEHAVIOR_COLUMNS.split(",")) + 1))  # + the vector
_TRACE_SLOTS = ", ".join("?" * len(TRACE_COLUMNS.split(",")))
_EDIT_ASSIGNMENTS = ", ".join(f"{column} = ?" for column in BEHAVIOR_EDITABLE)


def _trace_filter(
    namespace: str | None, status: ReflectionStatus | None, since: datetime | None = None
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) shared by listing and counting traces."""
    clauses, params = ["1 = 1"], []
    if namespace is not None:
        clauses.append("namespace = ?")
        params.append(namespace)
    if status is not None:
        clauses.append("reflection_status = ?")
        params.append(str(status))
    if since is not None:
        clauses.append("created_at > ?")
        params.append(since.isoformat())
    return " AND ".join(clauses), params


class SQLiteStore:
    """A handbook in one SQLite file (see the module docstring for the concurrency rules)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path).expanduser()
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._all_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not self.path.parent.is_dir():
            raise StoreUnavailableError(
                f"cannot open the handbook {self.path}: directory {self.path.parent} does not exist "
                "(create it, or fix store.path in the configuration)",
                path=str(self.path),
            )
        self._migrate()

    # --- connections and transactions -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._wrap(exc, "open") from exc
        if str(mode).lower() != "wal":
            log.warning("SQLite at %s runs in %s mode, not WAL; concurrent writers will wait", self.path, mode)
        self._local.conn = conn
        with self._lock:
            self._all_connections.append(conn)
        return conn

    def _wrap(self, exc: sqlite3.Error, action: str) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "file is encrypted" in text
        ):
            return StoreCorruptedError(
                f"the handbook file {self.path} is not a readable SQLite database ({text}); "
                "it was left untouched: restore it from a backup or point store.path elsewhere",
                path=str(self.path),
            )
        if "readonly" in text or "unable to open" in text or "permission" in text.lower():
            return StoreUnavailableError(
                f"cannot {action} the handbook {self.path}: {text} (check that the file and its "
                "directory exist and are writable)",
                path=str(self.path),
            )
        return StoreError(f"handbook {self.path}: {action} failed: {text}", path=str(self.path))

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._wrap(exc, "read") from exc

    def _write(self, fn: Callable[[sqlite3.Connection], T], *, budget_s: float | None = None) -> T:
        """Run ``fn`` in one IMMEDIATE transaction, retrying while another writer holds the file.

        With ``budget_s`` the wait for the lock ends after that long with ``StoreBusyError``
        (the agent's hot path must not wait on another process); without, after two minutes.
        """
        conn = self._connect()
        deadline = time.monotonic() + (_BUSY_BUDGET_S if budget_s is None else budget_s)
        if budget_s is not None:  # SQLite's own wait must not outlast the budget either
            conn.execute(f"PRAGMA busy_timeout = {max(int(budget_s * 1000), 1)}")
        delay = 0.01
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    result = fn(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    busy = isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))
                    left = deadline - time.monotonic()
                    if busy and left > 0:
                        time.sleep(min(delay * (1 + random.random()), left))
                        delay = min(delay * 2, 0.5)
                        continue
                    if busy and budget_s is not None:
                        raise StoreBusyError(
                            f"the handbook {self.path} was locked by another writer for more than "
                            f"{budget_s:g} s; nothing was written",
                            path=str(self.path),
                        ) from exc
                    if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                        raise self._wrap(exc, "write") from exc
                    raise
        finally:
            if budget_s is not None:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")

    def _migrate(self) -> None:
        with self._read() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise StoreError(
                f"the handbook {self.path} has schema version {current}, newer than this version of "
                f"behavior-memory knows ({len(MIGRATIONS)}): upgrade behavior-memory",
                path=str(self.path),
            )
        if current == len(MIGRATIONS):
            return

        def apply(conn: sqlite3.Connection) -> None:
            # Re-read inside the lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                log.info("handbook %s migrated to schema version %d", self.path, number)

        self._write(apply)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            for conn in self._all_connections:
                try:
                    conn.close()
                except sqlite3.Error:  # pragma: no cover - closing is best effort
                    pass
            self._all_connections.clear()
        self._local = threading.local()

    # --- behaviors ---------------------------------------------------------------------------
    def _insert(self, conn: sqlite3.Connection, b: Behavior, vector: npt.NDArray[np.float32] | None) -> None:
        try:
            conn.execute(
                f"INSERT INTO behaviors ({BEHAVIOR_COLUMNS}, vector) VALUES ({_BEHAVIOR_SLOTS})",
                (*behavior_row(b), blob(vector)),
            )
        except sqlite3.IntegrityError as exc:
            raise InvalidBehaviorError(
                f"a behavior named {b.name!r} already exists in namespace {b.namespace!r}"
            ) from exc

    def put_behavior(self, behavior: Behavior, vector: npt.NDArray[np.float32] | None = None) -> Behavior:
        return self.put_behaviors([(behavior, vector)])[0]

    def put_behaviors(self, items: Sequence[tuple[Behavior, npt.NDArray[np.float32] | None]]) -> list[Behavior]:
        def insert_all(conn: sqlite3.Connection) -> None:
            touched: dict[str, list[str]] = {}
            for behavior, vector in items:
                self._insert(conn, behavior, vector)
                touched.setdefault(behavior.namespace, []).append(behavior.id)
            for namespace, ids in touched.items():  # one token per namespace and transaction
                bump(conn, namespace, ids)

        self._write(insert_all)
        return [behavior for behavior, _ in items]

    def get_behavior(self, namespace: str, key: str) -> Behavior:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {BEHAVIOR_COLUMNS} FROM behaviors WHERE namespace = ? AND (id = ? OR name = ?)",
                (namespace, key, key),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no behavior {key!r} in namespace {namespace!r}")
        return behavior_from_row(row)

    def update_behavior(self, behavior: Behavior, vector: npt.NDArray[np.float32] | None = None) -> Behavior:
        updated = behavior.model_copy(update={"version": behavior.version + 1, "updated_at": utcnow()})

        def update(conn: sqlite3.Connection) -> Behavior:
            params: list[Any] = list(behavior_edit(updated))
            sql = f"UPDATE behaviors SET {_EDIT_ASSIGNMENTS}"
            if vector is not None:
                sql += ", vector = ?"
                params.append(blob(vector))
            cursor = conn.execute(
                sql + " WHERE id = ? AND namespace = ? AND version = ?",
                (*params, updated.id, updated.namespace, behavior.version),
            )
            if cursor.rowcount == 0:
                row = conn.execute(
                    "SELECT version FROM behaviors WHERE id = ? AND namespace = ?", (updated.id, updated.namespace)
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"no behavior {updated.id!r} in namespace {updated.namespace!r}")
                raise ConflictError(
                    f"behavior {updated.name!r} changed since it was read (version {behavior.version}, "
                    f"now {row[0]}); read it again and retry",
                    version=int(row[0]),
                )
            bump(conn, updated.namespace, [updated.id])
            stored = conn.execute(
                f"SELECT {BEHAVIOR_COLUMNS} FROM behaviors WHERE id = ?", (updated.id,)
            ).fetchone()  # the counters as they are now, not as they were read
            return behavior_from_row(stored)

        try:
            return self._write(update)
        except sqlite3.IntegrityError as exc:
            raise InvalidBehaviorError(
                f"a behavior named {updated.name!r} already exists in namespace {updated.namespace!r}"
            ) from exc

    def set_vectors(self, namespace: str, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        """Replace the vectors of the given behavior ids (used when the embedder changes)."""

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE behaviors SET vector = ? WHERE id = ? AND namespace = ?",
                [(blob(v), bid, namespace) for bid, v in vectors.items()],
            )
            bump(conn, namespace, list(vectors))

        self._write(write)

    def delete_behavior(self, namespace: str, key: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            found = conn.execute(
                "SELECT id FROM behaviors WHERE namespace = ? AND (id = ? OR name = ?)", (namespace, key, key)
            ).fetchall()
            if not found:
                raise NotFoundError(f"no behavior {key!r} in namespace {namespace!r}")
            ids = [row[0] for row in found]
            conn.executemany("DELETE FROM behaviors WHERE id = ?", [(i,) for i in ids])
            bump(conn, namespace, deleted=ids)

        self._write(delete)

    def list_behaviors(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
        limit: int | None = None,
    ) -> list[Behavior]:
        sql = f"SELECT {BEHAVIOR_COLUMNS} FROM behaviors WHERE namespace = ?"
        params: list[Any] = [namespace]
        if statuses is not None:
            wanted = [str(s) for s in statuses]
            sql += f" AND status IN ({', '.join('?' * len(wanted))})"
            params += wanted
        if topic is not None:
            sql += " AND topic = ?"
            params.append(topic)
        sql += " ORDER BY name"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as conn:
            return [behavior_from_row(row) for row in conn.execute(sql, params)]

    def count_behaviors(self, namespace: str | None = None) -> int:
        with self._read() as conn:
            if namespace is None:
                return int(conn.execute("SELECT COUNT(*) FROM behaviors").fetchone()[0])
            return int(conn.execute("SELECT COUNT(*) FROM behaviors WHERE namespace = ?", (namespace,)).fetchone()[0])

    def vectors(self, namespace: str) -> Vectors:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, vector FROM behaviors WHERE namespace = ? AND vector IS NOT NULL ORDER BY name",
                (namespace,),
            ).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        dims = {len(row[1]) for row in rows}
        if len(dims) > 1:  # mixed embedders: keep the most common size, the rest will be re-embedded
            common = max(dims, key=lambda d: sum(len(r[1]) == d for r in rows))
            rows = [row for row in rows if len(row[1]) == common]
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
        return [row[0] for row in rows], matrix

    def increment(self, namespace: str, names: Iterable[str], counter: CounterName, by: int = 1) -> None:
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r}; expected one of {sorted(COUNTERS)}")
        unique = sorted(set(names))
        if not unique:
            return
        self._write(lambda conn: _increment(conn, namespace, unique, counter, by))

    def change_token(self, namespace: str) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT version FROM namespace_versions WHERE namespace = ?", (namespace,)).fetchone()
        return 0 if row is None else int(row[0])

    def changes_since(self, namespace: str, token: int) -> Changes | None:
        with self._read() as conn:
            conn.execute("BEGIN")  # the token, the floor and the log from one view of the file
            try:
                return read_changes(conn, namespace, int(token))
            finally:
                conn.execute("COMMIT")

    def retrieval_rows(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        ids: Collection[str] | None = None,
        with_vectors: bool = False,
        records: bool = True,
    ) -> RetrievalRows:
        """Retrieval's columns in one scan in storage order (no sort, no pydantic object per row).

        With ``records=False`` (and no vectors) only the columns are read, from the covering index
        ``behaviors_retrieval`` instead of the table's pages: a third of the time at 100k rows.
        """
        with self._read() as conn:
            return read_retrieval_rows(
                conn, namespace, statuses=statuses, ids=ids, with_vectors=with_vectors, records=records
            )

    def namespaces(self) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT namespace FROM behaviors UNION SELECT namespace FROM traces ORDER BY 1"
            ).fetchall()
        return [row[0] for row in rows]

    def get_meta(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    # --- traces ------------------------------------------------------------------------------
    def _put_trace(self, conn: sqlite3.Connection, trace: Trace) -> bool:
        """Write the trace and its steps; True when the id was new."""
        fresh = conn.execute("SELECT 1 FROM traces WHERE id = ?", (trace.id,)).fetchone() is None
        conn.execute(
            f"INSERT OR REPLACE INTO traces ({TRACE_COLUMNS}, claimed_at) VALUES ({_TRACE_SLOTS}, NULL)",
            trace_row(trace),
        )
        conn.execute("DELETE FROM steps WHERE trace_id = ?", (trace.id,))
        conn.executemany(
            "INSERT INTO steps (trace_id, idx, data) VALUES (?, ?, ?)",
            [(trace.id, i, step.model_dump_json()) for i, step in enumerate(trace.steps)],
        )
        return fresh

    def put_trace(self, trace: Trace) -> Trace:
        self._write(lambda conn: self._put_trace(conn, trace))
        return trace

    def save_trace(self, trace: Trace, *, timeout_s: float | None = None) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            fresh = self._put_trace(conn, trace)
            if fresh:  # a replayed trace must not count twice
                _increment(conn, trace.namespace, sorted(set(trace.shown)), "shown", 1)
                _increment(conn, trace.namespace, sorted(set(trace.cited)), "cited", 1)
            return fresh

        return self._write(write, budget_s=timeout_s)

    def update_trace_fields(self, trace_id: str, **fields: Any) -> None:
        """Change a few top-level fields of a trace without rewriting its steps."""
        unknown = set(fields) - TRACE_UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"cannot update trace fields {sorted(unknown)}")
        encoded = {key: encode(value) for key, value in fields.items()}
        if "reflection_status" in fields and fields["reflection_status"] != ReflectionStatus.RUNNING:
            encoded["claimed_at"] = None
        assignments = ", ".join(f"{key} = ?" for key in encoded)

        def write(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(f"UPDATE traces SET {assignments} WHERE id = ?", (*encoded.values(), trace_id))
            if cursor.rowcount == 0:
                raise NotFoundError(f"no trace {trace_id!r}")

        self._write(write)

    def get_trace(self, trace_id: str) -> Trace:
        with self._read() as conn:
            row = conn.execute(f"SELECT {TRACE_COLUMNS} FROM traces WHERE id = ?", (trace_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no trace {trace_id!r}")
            steps = conn.execute("SELECT data FROM steps WHERE trace_id = ? ORDER BY idx", (trace_id,)).fetchall()
        return trace_from_row(row, [Step.model_validate_json(s[0]) for s in steps])

    def list_traces(
        self, namespace: str | None = None, *, status: ReflectionStatus | None = None, limit: int = 50
    ) -> list[Trace]:
        where, params = _trace_filter(namespace, status)
        sql = f"SELECT {TRACE_COLUMNS} FROM traces WHERE {where} ORDER BY created_at DESC, id LIMIT ?"
        with self._read() as conn:
            rows = conn.execute(sql, [*params, int(limit)]).fetchall()
        return [trace_from_row(row, []) for row in rows]  # steps are loaded by get_trace

    def count_traces(
        self,
        namespace: str | None = None,
        *,
        status: ReflectionStatus | None = None,
        since: datetime | None = None,
    ) -> int:
        where, params = _trace_filter(namespace, status, since)
        with self._read() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM traces WHERE {where}", params).fetchone()[0])

    def claim_pending_traces(self, limit: int, *, lease_s: float = 600.0) -> list[Trace]:
        now = time.time()

        def claim(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT id FROM traces WHERE reflection_status = 'pending' "
                "OR (reflection_status = 'running' AND claimed_at < ?) ORDER BY created_at LIMIT ?",
                (now - lease_s, int(limit)),
            ).fetchall()
            ids = [row[0] for row in rows]
            conn.executemany(
                "UPDATE traces SET reflection_status = 'running', claimed_at = ?, "
                "reflection_attempts = reflection_attempts + 1 WHERE id = ?",
                [(now, trace_id) for trace_id in ids],
            )
            return ids

        return [self.get_trace(trace_id) for trace_id in self._write(claim)]

    def count_claimable(self, *, lease_s: float = 600.0) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM traces WHERE reflection_status = 'pending' "
                "OR (reflection_status = 'running' AND claimed_at < ?)",
                (time.time() - lease_s,),
            ).fetchone()
        return int(row[0])

    def requeue_traces(
        self, namespace: str | None = None, *, error_contains: str | None = None, before: datetime | None = None
    ) -> int:
        where, params = _trace_filter(namespace, ReflectionStatus.FAILED)
        if error_contains:
            where += " AND instr(COALESCE(reflection_error, ''), ?) > 0"
            params.append(error_contains)
        if before is not None:
            where += " AND created_at < ?"
            params.append(before.isoformat())

        def requeue(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                f"UPDATE traces SET reflection_status = 'pending', reflection_attempts = 0, claimed_at = NULL "
                f"WHERE {where}",
                params,
            )
            return int(cursor.rowcount)

        return self._write(requeue)


def _increment(conn: sqlite3.Connection, namespace: str, names: list[str], counter: str, by: int) -> None:
    """Counters move in SQL (``x = x + by``), never from a value read earlier: no update is lost."""
    if counter in ("shown", "cited"):
        sql = f"UPDATE behaviors SET {counter} = {counter} + ?, last_used_at = ? WHERE namespace = ? AND name = ?"
        now = utcnow().isoformat()
        conn.executemany(sql, [(by, now, namespace, name) for name in names])
    else:
        sql = f"UPDATE behaviors SET {counter} = {counter} + ? WHERE namespace = ? AND name = ?"
        conn.executemany(sql, [(by, namespace, name) for name in names])
