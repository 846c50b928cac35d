#!/usr/bin/env python3
"""Retrieval on the PostgreSQL store beside the SQLite store and numpy brute force, in the same run.

For each size (default 10k and 100k behaviors, 384-d clustered unit vectors, one namespace, 20 topics
and one behavior in ten a candidate, both drawn at random) it times
``EmbeddingRetriever.retrieve_by_vector`` with k=5 (floor off) per query, with ``perf_counter_ns``,
under the retrievers' filters: the status (active only), and in a second pass the status and the
topic of the row the query was drawn from (about 4.5% of the rows pass):

- numpy: exact brute force over the filtered matrix (the reference for recall);
- sqlite: ``SQLiteStore`` -> the retriever's in-memory ``VectorIndex`` (exact; built once, not timed;
  up to ``--sqlite-max`` rows);
- postgres: ``PostgresStore`` -> ``search_vectors`` on the server (HNSW walk with the store's
  ``HnswSettings``, candidates re-ranked exactly, one round trip over a Unix socket), once per
  ``--ef-search`` value on the same index.

Recall@5 is the share of numpy's top 5 each row returns. The load (binary COPY) and the HNSW build
are timed and printed.

    python bench/bench_postgres_retrieval.py --sizes 10000 100000 --queries 300
    python bench/bench_postgres_retrieval.py --sizes 1000000 --ef-search 40 100 --build-memory-mb 4096
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
from bench_postgres_common import (
    behaviors,
    clustered_vectors,
    dsn_in_schema,
    fresh_schema,
    postgres_server,
    queries_near,
)

from behavior_memory.retrieval.embedding import EmbeddingRetriever
from behavior_memory.store.postgres import PostgresStore
from behavior_memory.store.postgres_search import HnswSettings
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import BehaviorStatus

K = 5
WARMUP = 20
Search = Callable[[npt.NDArray[np.float32], str | None], list[str]]


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


WARMUP = 20


def measure(
    search: Search,
    queries: npt.NDArray[np.float32],
    topics: list[str | None],
    truth: list[set[str]],
    warmup: npt.NDArray[np.float32],
) -> dict[str, float]:
    for q in warmup:  # caches, plans, the index's pages: the steady state of a server in use
        search(q, None)
    times, hits = [], 0
    for q, topic, expected in zip(queries, topics, truth, strict=True):
        t = time.perf_counter_ns()
        found = search(q, topic)
        times.append((time.perf_counter_ns() - t) / 1e6)
        hits += len(set(found) & expected)
    return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "recall": hits / (K * len(queries))}


def exact_top(
    matrix: npt.NDArray[np.float32],
    ids: list[str],
    masks: list[npt.NDArray[np.bool_]],
    queries: npt.NDArray[np.float32],
) -> list[set[str]]:
    truth = []
    for q, mask in zip(queries, masks, strict=True):
        scores = np.where(mask, matrix @ q, -np.inf)
        top = np.argpartition(-scores, K)[:K]
        truth.append({ids[i] for i in top})
    return truth


def retriever_search(retriever: EmbeddingRetriever) -> Search:
    return lambda q, topic: [
        h.behavior.id for h in retriever.retrieve_by_vector(q, namespace="bench", k=K, topic=topic)
    ]


def run(size: int, dsn: str, args: argparse.Namespace, emit: Callable[[str, str, dict[str, float]], None]) -> None:
    t = time.perf_counter()
    matrix = clustered_vectors(size)
    items = behaviors(size)
    ids = [b.id for b in items]
    active = np.array([b.status == BehaviorStatus.ACTIVE for b in items])
    topic_of = np.array([b.topic for b in items])
    queries, sources = queries_near(matrix, args.queries)
    warmup = queries_near(matrix, args.warmup, seed=3)[0]  # other queries than the measured ones
    no_topic: list[str | None] = [None] * len(queries)
    passes: dict[str, tuple[list[str | None], list[npt.NDArray[np.bool_]]]] = {
        "status": (no_topic, [active] * len(queries)),
        "status+topic": (
            [str(topic_of[r]) for r in sources],
            [active & (topic_of == topic_of[r]) for r in sources],
        ),
    }
    truth = {name: exact_top(matrix, ids, masks, queries) for name, (_, masks) in passes.items()}
    print(f"  generated {size} behaviors and the exact answers in {time.perf_counter() - t:.1f} s", flush=True)

    def brute(q: npt.NDArray[np.float32], topic: str | None) -> list[str]:
        mask = active if topic is None else active & (topic_of == topic)
        scores = np.where(mask, matrix @ q, -np.inf)
        return [ids[i] for i in np.argpartition(-scores, K)[:K]]

    for name, (topics, _) in passes.items() if args.numpy else ():
        emit("numpy brute force", name, measure(brute, queries, topics, truth[name], warmup))

    if size <= args.sqlite_max:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            sqlite = SQLiteStore(Path(tmp) / "h.db")
            for start in range(0, size, 5000):
                sqlite.put_behaviors(list(zip(items[start : start + 5000], matrix[start : start + 5000], strict=True)))
            print(f"  sqlite: loaded {size} in {time.perf_counter() - t:.1f} s", flush=True)
            local = EmbeddingRetriever(sqlite, embedder=None, floor=-1.0)  # type: ignore[arg-type]
            local.retrieve_by_vector(queries[0], namespace="bench", k=K)  # build the in-memory index (not timed)
            for name, (topics, _) in passes.items():
                emit(
                    "sqlite (in-memory index)",
                    name,
                    measure(retriever_search(local), queries, topics, truth[name], warmup),
                )
            sqlite.close()

    build = HnswSettings(
        m=args.m,
        ef_construction=args.ef_construction,
        build_memory_mb=args.build_memory_mb,
        build_workers=args.build_workers,
    )
    schema_dsn = reused(dsn, size) if args.reuse else None
    if schema_dsn is None:
        schema_dsn = fresh_schema(dsn, f"bench_{size}")
        pg = PostgresStore(schema_dsn, pool_size=2, hnsw=build)
        t = time.perf_counter()
        with pg.bulk_load():
            for start in range(0, size, 10_000):
                pg.put_behaviors(list(zip(items[start : start + 10_000], matrix[start : start + 10_000], strict=True)))
            loaded = time.perf_counter() - t
        built = time.perf_counter() - t - loaded
        print(
            f"  postgres: loaded {size} in {loaded:.1f} s (binary COPY), HNSW index (m={build.m}, "
            f"ef_construction={build.ef_construction}) built in {built:.1f} s",
            flush=True,
        )
        pg.close()
    for ef in args.ef_search:
        settings = HnswSettings(
            ef_search=ef,
            iterative_scan=args.iterative_scan,
            candidates=args.candidates,
            max_scan_tuples=args.max_scan_tuples,
        )
        store = PostgresStore(schema_dsn, pool_size=2, hnsw=settings)
        server = EmbeddingRetriever(store, embedder=None, floor=-1.0)  # type: ignore[arg-type]
        label = f"postgres ef_search={ef} {args.iterative_scan}"
        for name, (topics, _) in passes.items():
            emit(label, name, measure(retriever_search(server), queries, topics, truth[name], warmup))
        store.close()


def reused(dsn: str, size: int) -> str | None:
    """The DSN of schema ``bench_<size>`` when an earlier ``--reuse`` run left it loaded and indexed."""
    schema_dsn = dsn_in_schema(dsn, f"bench_{size}")
    try:
        with psycopg.connect(schema_dsn) as conn:
            rows = conn.execute("SELECT count(*) FROM behaviors").fetchone()
            index = conn.execute(
                "SELECT reloptions FROM pg_class WHERE relname = 'behaviors_hnsw_384' "
                "AND relnamespace = current_schema()::regnamespace"
            ).fetchone()
    except psycopg.Error:
        return None
    if rows is None or rows[0] != size or index is None:
        return None
    print(f"  postgres: reusing the {size} behaviors of schema bench_{size}, index {index[0]}", flush=True)
    return schema_dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = HnswSettings()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=WARMUP, help="queries run before the measured ones")
    parser.add_argument(
        "--reuse", action="store_true", help="keep schema bench_<size> when loaded by an earlier run (sweeps)"
    )
    parser.add_argument(
        "--no-numpy", dest="numpy", action="store_false", help="no numpy timing rows (it still gives the truth)"
    )
    parser.add_argument("--sqlite-max", type=int, default=100_000, help="no SQLite rows above this size")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[defaults.ef_search])
    parser.add_argument(
        "--iterative-scan", choices=["off", "strict_order", "relaxed_order"], default=defaults.iterative_scan
    )
    parser.add_argument("--candidates", type=int, default=defaults.candidates)
    parser.add_argument("--max-scan-tuples", type=int, default=defaults.max_scan_tuples)
    parser.add_argument("--m", type=int, default=defaults.m)
    parser.add_argument("--ef-construction", type=int, default=defaults.ef_construction)
    parser.add_argument("--build-memory-mb", type=int, default=defaults.build_memory_mb)
    parser.add_argument("--build-workers", type=int, default=defaults.build_workers)
    parser.add_argument(
        "--shared-buffers", default="4GB", help="the bundled server's shared_buffers (the index should fit)"
    )
    args = parser.parse_args()
    with postgres_server(shared_buffers=args.shared_buffers) as (dsn, _):
        print(f"{'size':>8}  {'row':<40} {'filters':<13} {'p50 ms':>8} {'p99 ms':>8} {'recall@5':>9}")
        for size in args.sizes:

            def emit(name: str, filters: str, r: dict[str, float], size: int = size) -> None:
                print(
                    f"{size:>8}  {name:<40} {filters:<13} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['recall']:>9.3f}",
                    flush=True,
                )

            run(size, dsn, args, emit)


if __name__ == "__main__":
    main()
