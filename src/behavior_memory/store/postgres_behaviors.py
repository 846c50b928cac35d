"""The behavior half of ``PostgresStore``: behaviors, vectors and counters (searches: ``postgres_search``).

``PostgresBase`` names what the halves need from the store (transactions, the change token); the
store itself (``postgres.py``) provides it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import errors as pgerrors

from ..errors import ConflictError, InvalidBehaviorError, NotFoundError
from ..types import Behavior, BehaviorStatus
from .base import COUNTERS, CounterName, Vectors
from .postgres_rows import (
    BEHAVIOR_COLUMNS,
    BEHAVIOR_EDITABLE,
    behavior_edit,
    behavior_from_row,
    behavior_row,
    copy_behaviors,
)

__all__ = ["BehaviorQueries", "PostgresBase"]

T = TypeVar("T")
Conn = psycopg.Connection[Any]

_INSERT = (
    f"INSERT INTO behaviors ({BEHAVIOR_COLUMNS}, embedding) "
    f"VALUES ({', '.join(['%s'] * (len(BEHAVIOR_COLUMNS.split(',')) + 1))})"
)
_EDIT = ", ".join(f"{column} = %s" for column in BEHAVIOR_EDITABLE)


class PostgresBase:
    """What the query halves of ``PostgresStore`` rely on (implemented in ``postgres.py``)."""

    channel: str
    client_id: str
    _vector_oid: int | None
    _deferred: set[int] | None  # vector sizes waiting for their index while ``bulk_load`` runs

    def _run(self, fn: Callable[[Conn], T], *, write: bool = True, budget_s: float | None = None) -> T:
        raise NotImplementedError

    def _read(self, fn: Callable[[Conn], T]) -> T:
        raise NotImplementedError

    def _bump(self, conn: Conn, namespace: str, changed: Collection[str] = (), deleted: Collection[str] = ()) -> int:
        raise NotImplementedError

    def _after_bump(self, namespace: str, token: int) -> None:
        raise NotImplementedError

    def _notify_traces(self, conn: Conn) -> None:
        raise NotImplementedError

    def _vectors_written(self, vectors: Iterable[npt.NDArray[np.float32] | None]) -> None:
        raise NotImplementedError


def _vector(vector: npt.ArrayLike | None) -> npt.NDArray[np.float32] | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1)


def _taken(b: Behavior) -> InvalidBehaviorError:
    return InvalidBehaviorError(f"a behavior named {b.name!r} already exists in namespace {b.namespace!r}")


def increment_in(conn: Conn, namespace: str, names: list[str], counter: str, by: int) -> None:
    """Counters move in SQL, rows locked in name order: concurrent increments neither lose nor deadlock."""
    used = ", last_used_at = now()" if counter in ("shown", "cited") else ""
    conn.execute(
        f"UPDATE behaviors b SET {counter} = b.{counter} + %s{used} FROM (SELECT id FROM behaviors "
        "WHERE namespace = %s AND name = ANY(%s) ORDER BY name FOR UPDATE) s WHERE b.id = s.id",
        (by, namespace, names),
    )


class BehaviorQueries(PostgresBase):
    """``BehaviorStore`` on PostgreSQL."""

    def put_behavior(self, behavior: Behavior, vector: npt.NDArray[np.float32] | None = None) -> Behavior:
        self.put_behaviors([(behavior, vector)])
        return behavior

    def put_behaviors(self, items: Sequence[tuple[Behavior, npt.NDArray[np.float32] | None]]) -> list[Behavior]:
        if not items:
            return []
        rows = [(*behavior_row(b), _vector(v)) for b, v in items]
        namespaces = sorted({b.namespace for b, _ in items})

        def insert(conn: Conn) -> dict[str, int]:
            try:
                if self._deferred is not None and self._vector_oid is not None:  # a bulk load: COPY, binary
                    copy_behaviors(conn, rows, self._vector_oid)
                else:
                    with conn.cursor() as cur:
                        cur.executemany(_INSERT, rows)
            except pgerrors.UniqueViolation as exc:
                clash = next((b for b, _ in items if b.name in str(exc.diag.message_detail or "")), items[0][0])
                raise _taken(clash) from exc
            return {ns: self._bump(conn, ns, [b.id for b, _ in items if b.namespace == ns]) for ns in namespaces}

        for namespace, token in self._run(insert).items():
            self._after_bump(namespace, token)
        self._vectors_written(v for _, v in items)
        return [b for b, _ in items]

    def get_behavior(self, namespace: str, key: str) -> Behavior:
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT {BEHAVIOR_COLUMNS} FROM behaviors WHERE namespace = %s AND (id = %s OR name = %s)",
                (namespace, key, key),
            ).fetchone()
        )
        if row is None:
            raise NotFoundError(f"no behavior {key!r} in namespace {namespace!r}")
        return behavior_from_row(row)

    def update_behavior(self, behavior: Behavior, vector: npt.NDArray[np.float32] | None = None) -> Behavior:
        from ..types import utcnow

        updated = behavior.model_copy(update={"version": behavior.version + 1, "updated_at": utcnow()})
        params: list[Any] = list(behavior_edit(updated))
        sql = f"UPDATE behaviors SET {_EDIT}"
        if vector is not None:
            sql += ", embedding = %s"
            params.append(_vector(vector))
        sql += f" WHERE id = %s AND namespace = %s AND version = %s RETURNING {BEHAVIOR_COLUMNS}"

        def update(conn: Conn) -> tuple[Behavior, int]:
            try:
                row = conn.execute(sql, (*params, updated.id, updated.namespace, behavior.version)).fetchone()
            except pgerrors.UniqueViolation as exc:
                raise _taken(updated) from exc
            if row is None:
                found = conn.execute(
                    "SELECT version FROM behaviors WHERE id = %s AND namespace = %s", (updated.id, updated.namespace)
                ).fetchone()
                if found is None:
                    raise NotFoundError(f"no behavior {updated.id!r} in namespace {updated.namespace!r}")
                raise ConflictError(
                    f"behavior {updated.name!r} changed since it was read (version {behavior.version}, "
                    f"now {found[0]}); read it again and retry",
                    version=int(found[0]),
                )
            return behavior_from_row(row), self._bump(conn, updated.namespace, [updated.id])

        stored, token = self._run(update)
        self._after_bump(updated.namespace, token)
        self._vectors_written([_vector(vector)])
        return stored

    def set_vectors(self, namespace: str, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        rows = [(_vector(v), bid, namespace) for bid, v in sorted(vectors.items())]

        def write(conn: Conn) -> int:
            with conn.cursor() as cur:
                cur.executemany("UPDATE behaviors SET embedding = %s WHERE id = %s AND namespace = %s", rows)
            return self._bump(conn, namespace, [bid for _, bid, _ in rows])

        self._after_bump(namespace, self._run(write))
        self._vectors_written(v for v, _, _ in rows)

    def delete_behavior(self, namespace: str, key: str) -> None:
        def delete(conn: Conn) -> int:
            row = conn.execute(
                "DELETE FROM behaviors WHERE namespace = %s AND (id = %s OR name = %s) RETURNING id",
                (namespace, key, key),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no behavior {key!r} in namespace {namespace!r}")
            return self._bump(conn, namespace, deleted=[row[0]])

        self._after_bump(namespace, self._run(delete))

    def list_behaviors(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
        limit: int | None = None,
    ) -> list[Behavior]:
        sql = f"SELECT {BEHAVIOR_COLUMNS} FROM behaviors WHERE namespace = %s"
        params: list[Any] = [namespace]
        if statuses is not None:
            sql += " AND status = ANY(%s)"
            params.append([str(s) for s in statuses])
        if topic is not None:
            sql += " AND topic = %s"
            params.append(topic)
        sql += " ORDER BY name"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [behavior_from_row(row) for row in rows]

    def count_behaviors(self, namespace: str | None = None) -> int:
        sql, params = "SELECT count(*) FROM behaviors", []
        if namespace is not None:
            sql, params = sql + " WHERE namespace = %s", [namespace]
        row = self._read(lambda conn: conn.execute(sql, params).fetchone())
        return int(row[0]) if row else 0

    def vectors(self, namespace: str) -> Vectors:
        def read(conn: Conn) -> list[Any]:
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    "SELECT id, embedding FROM behaviors WHERE namespace = %s AND embedding IS NOT NULL ORDER BY name",
                    (namespace,),
                )
                return cur.fetchall()

        rows = self._read(read)
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        sizes = [row[1].shape[0] for row in rows]
        if len(set(sizes)) > 1:  # mixed embedders: keep the most common size, the rest will be re-embedded
            common = max(set(sizes), key=sizes.count)
            rows = [row for row, size in zip(rows, sizes, strict=True) if size == common]
        return [row[0] for row in rows], np.stack([row[1] for row in rows]).astype(np.float32, copy=False)

    def increment(self, namespace: str, names: Iterable[str], counter: CounterName, by: int = 1) -> None:
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r}; expected one of {sorted(COUNTERS)}")
        unique = sorted(set(names))
        if unique:
            self._run(lambda conn: increment_in(conn, namespace, unique, counter, by))
