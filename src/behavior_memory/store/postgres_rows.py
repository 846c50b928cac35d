"""Conversion between the models and the rows of the PostgreSQL handbook, and the ``vector`` adapters.

Lists and dicts go to ``jsonb``, times to ``timestamptz``, vectors to pgvector's binary format (read
back straight into float32 numpy arrays). PostgreSQL cannot store the NUL character in ``text`` or
``jsonb``; a NUL in a value is stored as U+FFFD, the way unencodable text is elsewhere.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types.json import Jsonb

from ..types import Behavior, BehaviorStatus, Step, Trace

__all__ = [
    "BEHAVIOR_COLUMNS",
    "BEHAVIOR_EDITABLE",
    "TRACE_COLUMNS",
    "VectorBinaryDumper",
    "VectorBinaryLoader",
    "behavior_edit",
    "behavior_from_row",
    "behavior_row",
    "clean",
    "copy_behaviors",
    "encode",
    "jsonb",
    "trace_from_row",
    "trace_row",
]

BEHAVIOR_COLUMNS = (
    "id, namespace, name, instruction, topic, tags, status, pinned, sources, model, "
    "shown, cited, helped, hurt, version, created_at, updated_at, last_used_at, metadata"
)
#: What an edit may change (as in SQLite): never the id, the namespace, the counters or the last use.
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
TRACE_COLUMNS = (
    "id, namespace, task, topic, answer, outcome, score, feedback, shown, cited, reflection_status, "
    "reflection_error, reflection_attempts, minted, metadata, created_at, finished_at"
)


def clean(value: Any) -> Any:
    """``value`` with every NUL character in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(clean(value))


def jsonb(value: Any) -> Jsonb:
    """``value`` as a ``jsonb`` parameter."""
    return Jsonb(value, dumps=_dumps)


def encode(value: Any) -> Any:
    """A trace field's value as a query parameter."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, list | dict):
        return jsonb(value)
    return clean(value)


def behavior_row(b: Behavior) -> tuple[Any, ...]:
    return (
        b.id,
        b.namespace,
        clean(b.name),
        clean(b.instruction),
        clean(b.topic),
        jsonb(b.tags),
        str(b.status),
        b.pinned,
        jsonb(b.sources),
        clean(b.model),
        b.shown,
        b.cited,
        b.helped,
        b.hurt,
        b.version,
        b.created_at,
        b.updated_at,
        b.last_used_at,
        jsonb(b.metadata),
    )


#: The types of ``behavior_row``'s values and the vector after them, for a binary COPY (no casts there).
_COPY_TYPES = [
    "text", "text", "text", "text", "text", "jsonb", "text", "bool", "jsonb", "text",
    "int8", "int8", "int8", "int8", "int4", "timestamptz", "timestamptz", "timestamptz", "jsonb",
]  # fmt: skip


def copy_behaviors(conn: psycopg.Connection[Any], rows: Sequence[Sequence[Any]], vector_oid: int) -> None:
    """Write ``behavior_row``s, each followed by its vector or None, with one binary ``COPY``.

    A bulk load's path: several times faster than inserts, and the vectors travel as float32.
    """
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY behaviors ({BEHAVIOR_COLUMNS}, embedding) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([*_COPY_TYPES, vector_oid])
        for row in rows:
            copy.write_row(row)


def behavior_edit(b: Behavior) -> tuple[Any, ...]:
    """The values of ``BEHAVIOR_EDITABLE``, in that order."""
    return (
        clean(b.name),
        clean(b.instruction),
        clean(b.topic),
        jsonb(b.tags),
        str(b.status),
        b.pinned,
        jsonb(b.sources),
        clean(b.model),
        b.version,
        b.updated_at,
        jsonb(b.metadata),
    )


def behavior_from_row(row: Sequence[Any]) -> Behavior:
    return Behavior.model_construct(
        id=row[0],
        namespace=row[1],
        name=row[2],
        instruction=row[3],
        topic=row[4],
        tags=list(row[5]),
        status=BehaviorStatus(row[6]),
        pinned=bool(row[7]),
        sources=list(row[8]),
        model=row[9],
        shown=int(row[10]),
        cited=int(row[11]),
        helped=int(row[12]),
        hurt=int(row[13]),
        version=int(row[14]),
        created_at=row[15],
        updated_at=row[16],
        last_used_at=row[17],
        metadata=dict(row[18]),
    )


def trace_row(t: Trace) -> tuple[Any, ...]:
    return (
        t.id,
        t.namespace,
        clean(t.task),
        clean(t.topic),
        clean(t.answer),
        str(t.outcome),
        t.score,
        clean(t.feedback),
        jsonb(t.shown),
        jsonb(t.cited),
        str(t.reflection_status),
        clean(t.reflection_error),
        t.reflection_attempts,
        jsonb(t.minted),
        jsonb(t.metadata),
        t.created_at,
        t.finished_at,
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
            "shown": row[8],
            "cited": row[9],
            "reflection_status": row[10],
            "reflection_error": row[11],
            "reflection_attempts": row[12],
            "minted": row[13],
            "metadata": row[14],
            "created_at": row[15],
            "finished_at": row[16],
            "steps": steps,
        }
    )


def step_data(step: Step) -> str:
    """A step as JSON text (NUL escaped by JSON itself, so it round-trips exactly)."""
    return step.model_dump_json()


_HEADER = struct.Struct(">HH")  # dimensions, unused


class VectorBinaryDumper(Dumper):
    """A float32 numpy vector in pgvector's binary format (``oid`` is set per database)."""

    format = Format.BINARY

    def dump(self, obj: npt.NDArray[np.float32]) -> Buffer:
        values = np.asarray(obj, dtype=">f4").reshape(-1)
        return _HEADER.pack(values.shape[0], 0) + values.tobytes()


class VectorBinaryLoader(Loader):
    """pgvector's binary format straight into a float32 numpy vector."""

    format = Format.BINARY

    def load(self, data: Buffer) -> npt.NDArray[np.float32]:
        raw = bytes(data)
        dims = _HEADER.unpack_from(raw)[0]
        return np.frombuffer(raw, dtype=">f4", count=dims, offset=_HEADER.size).astype(np.float32)
