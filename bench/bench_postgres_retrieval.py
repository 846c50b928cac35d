#!/usr/bin/env python3
"""Retrieval on the PostgreSQL store beside the SQLite store and numpy brute force, in the same run.

For each size (default 10k and 100k behaviors, 384-d clustered unit vectors, one namespace) it times
``EmbeddingRetriever.retrieve_by_vector`` with k=5 (floor off) per query, with ``perf_counter_ns``:

- numpy: exact brute force over the whole matrix (the reference for recall);
- sqlite: ``SQLiteStore`` -> the retriever's in-memory ``VectorIndex`` (exact; built once, not timed);
- postgres: ``PostgresStore`` -> ``search_vectors`` on the server (HNSW, strictly ordered iterative
  scan, one round trip over a Unix socket; the ids come back with their behaviors).

Recall@5 is the share of numpy's top 5 each row returns. Load times (and the HNSW build) are printed.

    python bench/bench_postgres_retrieval.py --sizes 10000 100000 --queries 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_postgres_common import behaviors, clustered_vectors, fresh_schema, postgres_server, queries_near

from behavior_memory.retrieval.embedding import EmbeddingRetriever
from behavior_memory.store.postgres import PostgresStore
from behavior_memory.store.sqlite import SQLiteStore

K = 5


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def measure(name: str, search: object, queries: np.ndarray, truth: list[set[str]]) -> dict[str, float]:
    for q in queries[:20]:  # warm up: caches, plans, the index's pages
        search(q)  # type: ignore[operator]
    times, hits = [], 0
    for q, expected in zip(queries, truth, strict=True):
        t = time.perf_counter_ns()
        found = search(q)  # type: ignore[operator]
        times.append((time.perf_counter_ns() - t) / 1e6)
        hits += len(set(found) & expected)
    return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "recall": hits / (K * len(queries))}


def run(size: int, dsn: str, n_queries: int) -> list[tuple[str, dict[str, float]]]:
    matrix = clustered_vectors(size)
    items = behaviors(size)
    ids = [b.id for b in items]
    queries = queries_near(matrix, n_queries)
    truth = []
    for q in queries:
        scores = matrix @ q
        truth.append({ids[i] for i in np.argsort(-scores)[:K]})

    rows = []
    rows.append(
        (
            "numpy brute force",
            measure("numpy", lambda q: [ids[i] for i in np.argsort(-(matrix @ q))[:K]], queries, truth),
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        sqlite = SQLiteStore(Path(tmp) / "h.db")
        for start in range(0, size, 5000):
            sqlite.put_behaviors(list(zip(items[start : start + 5000], matrix[start : start + 5000], strict=True)))
        print(f"  sqlite: loaded {size} in {time.perf_counter() - t:.1f} s")
        local = EmbeddingRetriever(sqlite, embedder=None, floor=-1.0)  # type: ignore[arg-type]
        local.retrieve_by_vector(queries[0], namespace="bench", k=K)  # build the in-memory index (not timed)
        rows.append(
            (
                "sqlite store (in-memory index)",
                measure(
                    "sqlite",
                    lambda q: [h.behavior.id for h in local.retrieve_by_vector(q, namespace="bench", k=K)],
                    queries,
                    truth,
                ),
            )
        )
        sqlite.close()

    pg = PostgresStore(fresh_schema(dsn, f"bench_{size}"), pool_size=2)
    t = time.perf_counter()
    with pg.bulk_load():
        for start in range(0, size, 2000):
            pg.put_behaviors(list(zip(items[start : start + 2000], matrix[start : start + 2000], strict=True)))
        loaded = time.perf_counter() - t
    print(f"  postgres: loaded {size} in {loaded:.1f} s, HNSW index built in {time.perf_counter() - t - loaded:.1f} s")
    server = EmbeddingRetriever(pg, embedder=None, floor=-1.0)  # type: ignore[arg-type]
    rows.append(
        (
            "postgres store (HNSW on the server)",
            measure(
                "postgres",
                lambda q: [h.behavior.id for h in server.retrieve_by_vector(q, namespace="bench", k=K)],
                queries,
                truth,
            ),
        )
    )
    pg.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    with postgres_server() as (dsn, _):
        print(f"{'size':>8}  {'row':<38} {'p50 ms':>8} {'p99 ms':>8} {'recall@5':>9}")
        for size in args.sizes:
            for name, r in run(size, dsn, args.queries):
                print(f"{size:>8}  {name:<38} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['recall']:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
