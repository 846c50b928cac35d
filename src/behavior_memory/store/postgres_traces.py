"""The trace half of ``PostgresStore``: saving traces, and the reflection queue many machines share.

A claim is one statement: ``FOR UPDATE SKIP LOCKED`` picks the oldest claimable traces that no
other transaction is claiming right now, and the same statement marks them running with the
server's clock and this store's ``client_id``. Claimable: pending, or running with a claim older
than the lease (its claimer died). So two workers never hold one trace, whatever machines they run on.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg

from ..errors import NotFoundError
from ..types import ReflectionStatus, Step, Trace
from .base import TRACE_UPDATABLE_FIELDS
from .postgres_behaviors import PostgresBase, increment_in
from .postgres_rows import TRACE_COLUMNS, encode, step_data, trace_from_row, trace_row

__all__ = ["TraceQueries"]

Conn = psycopg.Connection[Any]

_TRACE_NAMES = [column.strip() for column in TRACE_COLUMNS.split(",")]
_UPSERT = (
    f"INSERT INTO traces ({TRACE_COLUMNS}, claimed_at, claimed_by) "
    f"VALUES ({', '.join(['%s'] * len(_TRACE_NAMES))}, NULL, NULL) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in [*_TRACE_NAMES[1:], "claimed_at", "claimed_by"])
    + " RETURNING (xmax = 0)"  # true when the row was inserted, not replaced
)
_CLAIMABLE = "(reflection_status = 'pending' OR (reflection_status = 'running' AND claimed_at < %s))"
_LEASE_CUTOFF = "clock_timestamp() - make_interval(secs => %s)"


def _trace_filter(
    namespace: str | None, status: ReflectionStatus | None, since: datetime | None = None
) -> tuple[str, list[Any]]:
    clauses: list[str] = ["true"]
    params: list[Any] = []
    if namespace is not None:
        clauses.append("namespace = %s")
        params.append(namespace)
    if status is not None:
        clauses.append("reflection_status = %s")
        params.append(str(status))
    if since is not None:
        clauses.append("created_at > %s")
        params.append(since)
    return " AND ".join(clauses), params


def _steps_of(conn: Conn, ids: list[str]) -> dict[str, list[Step]]:
    steps: dict[str, list[Step]] = {trace_id: [] for trace_id in ids}
    rows = conn.execute(
        "SELECT trace_id, data FROM steps WHERE trace_id = ANY(%s) ORDER BY trace_id, idx", (ids,)
    ).fetchall()
    for trace_id, data in rows:
        steps[trace_id].append(Step.model_validate_json(data))
    return steps


class TraceQueries(PostgresBase):
    """``TraceStore`` on PostgreSQL."""

    def _put_trace(self, conn: Conn, trace: Trace) -> bool:
        row = conn.execute(_UPSERT, trace_row(trace)).fetchone()
        conn.execute("DELETE FROM steps WHERE trace_id = %s", (trace.id,))
        if trace.steps:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO steps (trace_id, idx, data) VALUES (%s, %s, %s)",
                    [(trace.id, i, step_data(step)) for i, step in enumerate(trace.steps)],
                )
        if trace.reflection_status == ReflectionStatus.PENDING:
            self._notify_traces(conn)
        return bool(row and row[0])

    def put_trace(self, trace: Trace) -> Trace:
        self._run(lambda conn: self._put_trace(conn, trace))
        return trace

    def put_traces(self, traces: Iterable[Trace]) -> int:
        """Insert or replace many traces in one transaction (``bmem store copy``); returns how many."""
        batch = list(traces)

        def write(conn: Conn) -> int:
            for trace in batch:
                self._put_trace(conn, trace)
            return len(batch)

        return self._run(write) if batch else 0

    def save_trace(self, trace: Trace, *, timeout_s: float | None = None) -> bool:
        def write(conn: Conn) -> bool:
            fresh = self._put_trace(conn, trace)
            if fresh:  # a replayed trace must not count twice
                for counter, names in (("shown", trace.shown), ("cited", trace.cited)):
                    unique = sorted(set(names))
                    if unique:
                        increment_in(conn, trace.namespace, unique, counter, 1)
            return fresh

        return self._run(write, budget_s=timeout_s)

    def get_trace(self, trace_id: str) -> Trace:
        def read(conn: Conn) -> Trace:
            row = conn.execute(f"SELECT {TRACE_COLUMNS} FROM traces WHERE id = %s", (trace_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no trace {trace_id!r}")
            return trace_from_row(row, _steps_of(conn, [trace_id])[trace_id])

        return self._run(read)  # one transaction: the steps of the row read, not of a later replace

    def update_trace_fields(self, trace_id: str, **fields: Any) -> None:
        unknown = set(fields) - TRACE_UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"cannot update trace fields {sorted(unknown)}")
        encoded = {key: encode(value) for key, value in fields.items()}
        status = fields.get("reflection_status")
        if status is not None and status != ReflectionStatus.RUNNING:
            encoded["claimed_at"] = None
            encoded["claimed_by"] = None
        assignments = ", ".join(f"{key} = %s" for key in encoded)

        def write(conn: Conn) -> None:
            row = conn.execute(
                f"UPDATE traces SET {assignments} WHERE id = %s RETURNING id", (*encoded.values(), trace_id)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no trace {trace_id!r}")
            if status == ReflectionStatus.PENDING:
                self._notify_traces(conn)

        self._run(write)

    def list_traces(
        self, namespace: str | None = None, *, status: ReflectionStatus | None = None, limit: int = 50
    ) -> list[Trace]:
        where, params = _trace_filter(namespace, status)
        sql = f"SELECT {TRACE_COLUMNS} FROM traces WHERE {where} ORDER BY created_at DESC, id LIMIT %s"
        rows = self._read(lambda conn: conn.execute(sql, [*params, int(limit)]).fetchall())
        return [trace_from_row(row, []) for row in rows]

    def count_traces(
        self, namespace: str | None = None, *, status: ReflectionStatus | None = None, since: datetime | None = None
    ) -> int:
        where, params = _trace_filter(namespace, status, since)
        row = self._read(lambda conn: conn.execute(f"SELECT count(*) FROM traces WHERE {where}", params).fetchone())
        return int(row[0]) if row else 0

    def claim_pending_traces(self, limit: int, *, lease_s: float = 600.0) -> list[Trace]:
        if limit <= 0:
            return []

        def claim(conn: Conn) -> list[Trace]:
            rows = conn.execute(
                f"WITH picked AS (SELECT id FROM traces WHERE {_CLAIMABLE % _LEASE_CUTOFF} "
                "ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE traces t SET reflection_status = 'running', claimed_at = clock_timestamp(), "
                "claimed_by = %s, reflection_attempts = t.reflection_attempts + 1 FROM picked "
                f"WHERE t.id = picked.id RETURNING {', '.join('t.' + c for c in _TRACE_NAMES)}",
                (float(lease_s), int(limit), self.client_id),
            ).fetchall()
            steps = _steps_of(conn, [row[0] for row in rows])
            traces = [trace_from_row(row, steps[row[0]]) for row in rows]
            return sorted(traces, key=lambda t: (t.created_at, t.id))

        return self._run(claim)

    def count_claimable(self, *, lease_s: float = 600.0) -> int:
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT count(*) FROM traces WHERE {_CLAIMABLE % _LEASE_CUTOFF}", (float(lease_s),)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def release_claims(self, trace_ids: Iterable[str] | None = None) -> int:
        """Give back traces this store claimed and still holds: pending again, the claim's attempt returned.

        Only ``trace_ids`` when given, else every one this store holds; a trace another process
        has reclaimed since (after the lease) is left alone. Returns how many were released.
        """
        ids = None if trace_ids is None else list(trace_ids)

        def release(conn: Conn) -> int:
            sql = (
                "UPDATE traces SET reflection_status = 'pending', claimed_at = NULL, claimed_by = NULL, "
                "reflection_attempts = greatest(reflection_attempts - 1, 0) "
                "WHERE reflection_status = 'running' AND claimed_by = %s"
            )
            params: list[Any] = [self.client_id]
            if ids is not None:
                sql += " AND id = ANY(%s)"
                params.append(ids)
            count = conn.execute(sql, params).rowcount
            if count:
                self._notify_traces(conn)
            return int(count)

        return self._run(release)

    def requeue_traces(
        self, namespace: str | None = None, *, error_contains: str | None = None, before: datetime | None = None
    ) -> int:
        where, params = _trace_filter(namespace, ReflectionStatus.FAILED)
        if error_contains:
            where += " AND strpos(coalesce(reflection_error, ''), %s) > 0"
            params.append(error_contains)
        if before is not None:
            where += " AND created_at < %s"
            params.append(before)

        def requeue(conn: Conn) -> int:
            count = conn.execute(
                "UPDATE traces SET reflection_status = 'pending', reflection_attempts = 0, claimed_at = NULL, "
                f"claimed_by = NULL WHERE {where}",
                params,
            ).rowcount
            if count:
                self._notify_traces(conn)
            return int(count)

        return self._run(requeue)
