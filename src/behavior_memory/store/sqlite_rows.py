"""Conversion between the models and the rows of the SQLite handbook (lists and dicts as JSON), and the
change feed's bookkeeping (``bump``, ``read_changes``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from ..types import Behavior, BehaviorStatus, Step, Trace
from .base import FEED_MAX_IDS, Changes, RetrievalRows, Vectors

__all__ = [
    "BEHAVIOR_COLUMNS",
    "BEHAVIOR_EDITABLE",
    "RETRIEVAL_COLUMNS",
    "TRACE_COLUMNS",
    "behavior_edit",
    "behavior_from_row",
    "behavior_row",
    "blob",
    "bump",
    "encode",
    "read_changes",
    "read_retrieval_rows",
    "record_to_behavior",
    "trace_from_row",
    "trace_row",
]

BEHAVIOR_COLUMNS = (
    "id, namespace, name, instruction, topic, tags, status, pinned, sources, model, "
    "shown, cited, helped, hurt, version, created_at, updated_at, last_used_at, metadata"
)
#: What an edit may change: everything but the id, the namespace, the counters and the last use,
#: which move only by atomic increments (an edit from an earlier read must not roll them back).
BEHAVIOR_EDITABLE = (
    "name",
    "instruction",
    "topic",
    "tags",
    "status",
    "pinned",
    "sources",
    "model",
    "version",
    "updated_at",
    "metadata",
)
#: A retrieval record: what ``record_to_behavior`` needs, id, name, instruction, topic and pinned
#: first (retrieval's columns); empty lists and dicts come back as NULL, one shared ``None``.
RETRIEVAL_COLUMNS = (
    "id, name, instruction, topic, pinned, NULLIF(tags, '[]'), NULLIF(sources, '[]'), model, shown, cited, "
    "helped, hurt, version, created_at, updated_at, last_used_at, NULLIF(metadata, '{}'), status"
)
TRACE_COLUMNS = (
    "id, namespace, task, topic, answer, outcome, score, feedback, shown, cited, reflection_status, "
    "reflection_error, reflection_attempts, minted, metadata, created_at, finished_at"
)


def blob(vector: npt.NDArray[np.float32] | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def encode(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def behavior_row(b: Behavior) -> tuple[Any, ...]:
    return (
        b.id,
        b.namespace,
        b.name,
        b.instruction,
        b.topic,
        json.dumps(b.tags),
        str(b.status),
        int(b.pinned),
        json.dumps(b.sources),
        b.model,
        b.shown,
        b.cited,
        b.helped,
        b.hurt,
        b.version,
        b.created_at.isoformat(),
        b.updated_at.isoformat(),
        b.last_used_at.isoformat() if b.last_used_at else None,
        json.dumps(b.metadata),
    )


def behavior_edit(b: Behavior) -> tuple[Any, ...]:
    """The values of ``BEHAVIOR_EDITABLE``, in that order."""
    return (
        b.name,
        b.instruction,
        b.topic,
        json.dumps(b.tags),
        str(b.status),
        int(b.pinned),
        json.dumps(b.sources),
        b.model,
        b.version,
        b.updated_at.isoformat(),
        json.dumps(b.metadata),
    )


def behavior_from_row(row: Sequence[Any]) -> Behavior:
    return Behavior.model_construct(
        id=row[0],
        namespace=row[1],
        name=row[2],
        instruction=row[3],
        topic=row[4],
        tags=json.loads(row[5]),
        status=BehaviorStatus(row[6]),
        pinned=bool(row[7]),
        sources=json.loads(row[8]),
        model=row[9],
        shown=row[10],
        cited=row[11],
        helped=row[12],
        hurt=row[13],
        version=row[14],
        created_at=datetime.fromisoformat(row[15]),
        updated_at=datetime.fromisoformat(row[16]),
        last_used_at=datetime.fromisoformat(row[17]) if row[17] else None,
        metadata=json.loads(row[18]),
    )


_FIELDS = frozenset(Behavior.model_fields)


def record_to_behavior(namespace: str, row: Sequence[Any]) -> Behavior:
    """The ``Behavior`` of a row read with ``RETRIEVAL_COLUMNS``.

    Every field is given, so this is what ``Behavior.model_construct`` does without its per-field
    loop (a tenth of the time: retrieval builds one for each behavior it returns).
    """
    values = dict(
        id=row[0],
        namespace=namespace,
        name=row[1],
        instruction=row[2],
        topic=row[3],
        tags=json.loads(row[5]) if row[5] else [],
        status=BehaviorStatus(row[17]),
        pinned=bool(row[4]),
        sources=json.loads(row[6]) if row[6] else [],
        model=row[7],
        shown=row[8],
        cited=row[9],
        helped=row[10],
        hurt=row[11],
        version=row[12],
        created_at=datetime.fromisoformat(row[13]),
        updated_at=datetime.fromisoformat(row[14]),
        last_used_at=datetime.fromisoformat(row[15]) if row[15] else None,
        metadata=json.loads(row[16]) if row[16] else {},
    )
    behavior = Behavior.__new__(Behavior)
    object.__setattr__(behavior, "__dict__", values)
    object.__setattr__(behavior, "__pydantic_fields_set__", set(_FIELDS))
    object.__setattr__(behavior, "__pydantic_extra__", None)
    object.__setattr__(behavior, "__pydantic_private__", None)
    return behavior


# --- the change feed -------------------------------------------------------------------------------
_FEED_KEEP = 4096  # tokens of history the feed keeps per namespace
_FEED_PRUNE_EVERY = 256


def bump(conn: sqlite3.Connection, namespace: str, changed: Collection[str] = (), deleted: Collection[str] = ()) -> int:
    """Move the namespace's change token and log which behaviors moved it; returns the new token.

    Inside the writer's transaction, so the log and the token commit together. A write of more
    than ``FEED_MAX_IDS`` behaviors is not logged: the floor moves past it instead.
    """
    conn.execute(
        "INSERT INTO namespace_versions (namespace, version) VALUES (?, 1) "
        "ON CONFLICT (namespace) DO UPDATE SET version = version + 1",
        (namespace,),
    )
    token = int(conn.execute("SELECT version FROM namespace_versions WHERE namespace = ?", (namespace,)).fetchone()[0])
    if len(changed) + len(deleted) > FEED_MAX_IDS:
        conn.execute("UPDATE namespace_versions SET feed_floor = ? WHERE namespace = ?", (token, namespace))
        conn.execute("DELETE FROM behavior_changes WHERE namespace = ?", (namespace,))
        return token
    conn.executemany(
        "INSERT OR REPLACE INTO behavior_changes (namespace, token, behavior_id, deleted) VALUES (?, ?, ?, ?)",
        [(namespace, token, i, 0) for i in changed] + [(namespace, token, i, 1) for i in deleted],
    )
    if token % _FEED_PRUNE_EVERY == 0 and token > _FEED_KEEP:
        oldest = token - _FEED_KEEP
        conn.execute("DELETE FROM behavior_changes WHERE namespace = ? AND token <= ?", (namespace, oldest))
        conn.execute(
            "UPDATE namespace_versions SET feed_floor = MAX(feed_floor, ?) WHERE namespace = ?", (oldest, namespace)
        )
    return token


def read_changes(conn: sqlite3.Connection, namespace: str, token: int) -> Changes | None:
    """``ChangeFeed.changes_since``, inside a read transaction the caller holds (one consistent view)."""
    row = conn.execute(
        "SELECT version, feed_floor FROM namespace_versions WHERE namespace = ?", (namespace,)
    ).fetchone()
    current, floor = (0, 0) if row is None else (int(row[0]), int(row[1]))
    if token > current or token < floor:
        return None
    if token == current:
        return current, [], []
    last: dict[str, int] = {}
    for behavior_id, deleted in conn.execute(
        "SELECT behavior_id, deleted FROM behavior_changes WHERE namespace = ? AND token > ? AND token <= ? "
        "ORDER BY token",
        (namespace, token, current),
    ):
        last[behavior_id] = deleted
    return current, [i for i, d in last.items() if not d], [i for i, d in last.items() if d]


def trace_row(t: Trace) -> tuple[Any, ...]:
    return (
        t.id,
        t.namespace,
        t.task,
        t.topic,
        t.answer,
        str(t.outcome),
        t.score,
        t.feedback,
        json.dumps(t.shown),
        json.dumps(t.cited),
        str(t.reflection_status),
        t.reflection_error,
        t.reflection_attempts,
        json.dumps(t.minted),
        json.dumps(t.metadata),
        t.created_at.isoformat(),
        t.finished_at.isoformat() if t.finished_at else None,
    )


def trace_from_row(row: Sequence[Any], steps: list[Step]) -> Trace:
    return Trace.model_validate(
        {
            "id": row[0],
            "namespace": row[1],
            "task": row[2],
            "topic": row[3],
            "answer": row[4],
            "outcome": row[5],
            "score": row[6],
            "feedback": row[7],
            "shown": json.loads(row[8]),
            "cited": json.loads(row[9]),
            "reflection_status": row[10],
            "reflection_error": row[11],
            "reflection_attempts": row[12],
            "minted": json.loads(row[13]),
            "metadata": json.loads(row[14]),
            "created_at": row[15],
            "finished_at": row[16],
            "steps": steps,
        }
    )


def read_retrieval_rows(
    conn: sqlite3.Connection,
    namespace: str,
    *,
    statuses: Iterable[BehaviorStatus] | None = None,
    ids: Collection[str] | None = None,
    with_vectors: bool = False,
    records: bool = True,
) -> RetrievalRows:
    """``SQLiteStore.retrieval_rows`` on an open connection."""
    narrow = not records and not with_vectors
    columns = RETRIEVAL_COLUMNS.split(", NULLIF")[0] if narrow else RETRIEVAL_COLUMNS
    sql = f"SELECT {columns}{', vector' if with_vectors else ''} FROM behaviors WHERE namespace = ?"
    params: list[Any] = [namespace]
    if statuses is not None:
        wanted = [str(s) for s in statuses]
        sql += f" AND status IN ({', '.join('?' * len(wanted))})"
        params += wanted
    if ids is None:
        found = conn.execute(sql, params).fetchall()
    else:
        chosen, found = list(ids), []
        for start in range(0, len(chosen), 500):
            part = chosen[start : start + 500]
            query = f"{sql} AND id IN ({', '.join('?' * len(part))})"
            found += conn.execute(query, [*params, *part]).fetchall()
    vectors: Vectors | None = None
    if with_vectors:
        with_blob = [r for r in found if r[-1] is not None]
        sizes = [len(r[-1]) for r in with_blob]
        if len(set(sizes)) > 1:  # mixed embedders: the most common size, as ``vectors`` does
            common = max(set(sizes), key=sizes.count)
            with_blob = [r for r, size in zip(with_blob, sizes, strict=True) if size == common]
        matrix = np.frombuffer(b"".join(r[-1] for r in with_blob), dtype=np.float32)
        vectors = (
            [r[0] for r in with_blob],
            matrix.reshape(len(with_blob), -1) if with_blob else matrix.reshape(0, 0),
        )
        found = [r[:-1] for r in found]  # the blobs are in the matrix now
    return RetrievalRows(
        ids=[r[0] for r in found],
        names=[r[1] for r in found],
        instructions=[r[2] for r in found],
        topics=[r[3] for r in found],
        pinned=[bool(r[4]) for r in found],
        records=[None] * len(found) if narrow else found,
        materialize=partial(record_to_behavior, namespace),
        vectors=vectors,
    )
