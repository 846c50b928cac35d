"""The change feed of ``PostgresStore`` (``store.base.ChangeFeed``): which behaviors each write touched.

Every write that moves a namespace's token logs the ids it touched in ``behavior_changes`` (migration
2), in the same transaction (``log_changes``, called by ``PostgresStore._bump``). Retrieval in a process that
holds a snapshot (the topic and pinned retrievers; vector and text search run on the server) asks
``changes_since`` and reads only those rows again. The log keeps the last ``_KEEP`` tokens of each
namespace; a write of more than ``FEED_MAX_IDS`` behaviors is not itemised: the floor moves past it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

import numpy as np
import psycopg

from ..types import Behavior, BehaviorStatus
from .base import FEED_MAX_IDS, Changes, RetrievalRows, Vectors
from .postgres_rows import BEHAVIOR_COLUMNS, behavior_from_row

__all__ = ["FeedQueries", "log_changes"]

T = TypeVar("T")
Conn = psycopg.Connection[Any]

_KEEP = 4096  # tokens of history kept per namespace
_PRUNE_EVERY = 256

_COLUMNS = [c.strip() for c in BEHAVIOR_COLUMNS.split(",")]
_AT = {name: _COLUMNS.index(name) for name in ("id", "name", "instruction", "topic", "pinned")}


def log_changes(conn: Conn, namespace: str, token: int, changed: Collection[str], deleted: Collection[str]) -> None:
    """Record which behaviors the write that moved ``namespace`` to ``token`` touched."""
    if len(changed) + len(deleted) > FEED_MAX_IDS:
        conn.execute("UPDATE namespace_versions SET feed_floor = %s WHERE namespace = %s", (token, namespace))
        conn.execute("DELETE FROM behavior_changes WHERE namespace = %s", (namespace,))
        return
    rows = [(namespace, token, i, False) for i in changed] + [(namespace, token, i, True) for i in deleted]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO behavior_changes (namespace, token, behavior_id, deleted) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (namespace, token, behavior_id) DO UPDATE SET deleted = excluded.deleted",
                rows,
            )
    if token % _PRUNE_EVERY == 0 and token > _KEEP:
        oldest = token - _KEEP
        conn.execute("DELETE FROM behavior_changes WHERE namespace = %s AND token <= %s", (namespace, oldest))
        conn.execute(
            "UPDATE namespace_versions SET feed_floor = GREATEST(feed_floor, %s) WHERE namespace = %s",
            (oldest, namespace),
        )


class FeedQueries:
    """``ChangeFeed`` on PostgreSQL (mixed into ``PostgresStore``)."""

    def _read(self, fn: Callable[[Conn], T]) -> T:
        raise NotImplementedError

    def changes_since(self, namespace: str, token: int) -> Changes | None:
        def read(conn: Conn) -> Changes | None:
            # one statement: the token, the floor and the log from the same snapshot of the database
            rows = conn.execute(
                "SELECT v.version, v.feed_floor, c.behavior_id, c.deleted FROM "
                "(SELECT version, feed_floor FROM namespace_versions WHERE namespace = %s "
                " UNION ALL SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM namespace_versions WHERE namespace = %s)) v "
                "LEFT JOIN behavior_changes c ON c.namespace = %s AND c.token > %s AND c.token <= v.version "
                "ORDER BY c.token NULLS FIRST",
                (namespace, namespace, namespace, int(token)),
            ).fetchall()
            current, floor = int(rows[0][0]), int(rows[0][1])
            if token > current or token < floor:
                return None
            last = {r[2]: bool(r[3]) for r in rows if r[2] is not None}
            return current, [i for i, d in last.items() if not d], [i for i, d in last.items() if d]

        return self._read(read)

    def retrieval_rows(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        ids: Collection[str] | None = None,
        with_vectors: bool = False,
        records: bool = True,  # a hint; the rows come whole (the columns are read from the same pages)
    ) -> RetrievalRows:
        sql = f"SELECT {BEHAVIOR_COLUMNS}{', embedding' if with_vectors else ''} FROM behaviors WHERE namespace = %s"
        params: list[Any] = [namespace]
        if statuses is not None:
            sql += " AND status = ANY(%s)"
            params.append([str(s) for s in statuses])
        if ids is not None:
            sql += " AND id = ANY(%s)"
            params.append(list(ids))

        def read(conn: Conn) -> list[Any]:
            with conn.cursor(binary=with_vectors) as cur:  # binary: the vectors as numpy arrays
                cur.execute(sql, params)
                return cur.fetchall()

        found = self._read(read)
        vectors: Vectors | None = None
        if with_vectors:
            with_vector = [r for r in found if r[-1] is not None]
            sizes = [r[-1].shape[0] for r in with_vector]
            if len(set(sizes)) > 1:  # mixed embedders: the most common size, as ``vectors`` does
                common = max(set(sizes), key=sizes.count)
                with_vector = [r for r, size in zip(with_vector, sizes, strict=True) if size == common]
            matrix = (
                np.stack([r[-1] for r in with_vector]).astype(np.float32, copy=False)
                if with_vector
                else np.zeros((0, 0), dtype=np.float32)
            )
            vectors = ([r[0] for r in with_vector], matrix)
            found = [r[:-1] for r in found]
        return RetrievalRows(
            ids=[r[_AT["id"]] for r in found],
            names=[r[_AT["name"]] for r in found],
            instructions=[r[_AT["instruction"]] for r in found],
            topics=[r[_AT["topic"]] for r in found],
            pinned=[bool(r[_AT["pinned"]]) for r in found],
            records=found,
            materialize=_materialize,
            vectors=vectors,
        )


def _materialize(row: Any) -> Behavior:
    return behavior_from_row(row)
