"""Conversion between the models and the rows of the SQLite handbook (lists and dicts as JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ..types import Behavior, BehaviorStatus, Step, Trace

__all__ = [
    "BEHAVIOR_COLUMNS",
    "BEHAVIOR_EDITABLE",
    "TRACE_COLUMNS",
    "behavior_edit",
    "behavior_from_row",
    "behavior_row",
    "blob",
    "encode",
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
