#!/usr/bin/env python3
r"""Retrieval latency and memory of behavior-memory, with numpy and faiss as peer rows in the same run.

For each size N (default 1k, 10k, 100k) it fills a handbook store with N synthetic behaviors, each
with a random unit 384-d vector, then times, per query, with ``perf_counter_ns``:

- ``EmbeddingRetriever`` search for an already embedded query (``retrieve_by_vector``: change-token
  check, one matrix-vector product, top-k selection, results built), floor off so k come back;
- ``BM25Retriever`` on query text;
- the default ``build_retriever`` (hybrid embedding + BM25, pinned first) with a lookup embedder;
- peers on the same vectors: numpy brute force and, when installed, faiss (flat and HNSW).

Rendering is not timed. Query embedding is measured once, separately (MiniLM, one query at a time).
Memory: resident-set growth (``/proc/self/status`` VmRSS) per behavior while the store is filled and
while each index is built. Targets: p50 < 1 ms at 10k and < 10 ms at 100k; index memory < 2 KB per
behavior on top of its 1,536-byte vector.

    python bench/bench_retrieval.py                       # SQLiteStore (the default)
    python bench/bench_retrieval.py --sizes 1000 10000 --store memory --out bench.json

Any object implementing ``HandbookStore`` can be measured: call ``run_size(store, ...)`` yourself.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from behavior_memory.embeddings.base import Embedder
from behavior_memory.retrieval import (
    BM25Retriever,
    EmbeddingRetriever,
    RetrievalConfig,
    build_retriever,
)
from behavior_memory.store.base import HandbookStore
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import Behavior

DIM = 384
K = 8
NAMESPACE = "bench"
TOPICS = {
    "modular arithmetic": ["residues", "prime modulus", "chinese remainder"],
    "counting": ["complement count", "overcounting", "stars and bars"],
    "probability": ["sample space", "conditional probability", "expected value"],
    "series": ["common ratio", "telescoping sum", "partial sums"],
    "triangles": ["similar triangles", "angle bisector", "area formula"],
    "dynamic programming": ["state definition", "transition", "memo table"],
    "graph traversal": ["visited set", "bfs queue", "cycle check"],
    "http clients": ["timeout", "retry with backoff", "status code"],
    "sql queries": ["join condition", "null handling", "index usage"],
    "tool calling": ["tool schema", "argument validation", "tool result"],
    "task planning": ["subgoal list", "dependency order", "done criterion"],
    "debugging": ["stack trace", "minimal repro", "print statement"],
}
INSTR = [
    "When working on {t}, {v} the {a} before touching the {b}.",
    "In {t} tasks, {v} the {a}, then {v2} the {b} {w}.",
    "For {t}, {v} the {a} first; it usually exposes problems with the {b}.",
    "If a {t} step involves the {b}, {v} the {a} and state it explicitly.",
]
ASK = [
    "How should I handle the {a} in a {t} problem?",
    "I'm stuck on {t}; what should I do about the {b}?",
    "{t}: how do I check the {a} and the {b}?",
]
VERBS = ["identify", "write down", "check", "simplify", "enumerate", "bound", "verify", "isolate"]
WHEN = ["before answering", "at the end", "on a small case first", "when stuck", "after each step"]


# ------------------------------------------------------------------------------------------ data
def make_behaviors(n: int, seed: int = 0) -> tuple[list[Behavior], npt.NDArray[np.float32]]:
    """``n`` behaviors spread over the topics (the first two pinned) and random unit 384-d vectors."""
    rng = random.Random(seed)
    topics = list(TOPICS.items())
    behaviors = []
    for i in range(n):
        t, nouns = topics[i % len(topics)]
        (a, b), (v, v2) = rng.sample(nouns, 2), rng.sample(VERBS, 2)
        line = rng.choice(INSTR).format(t=t, a=a, b=b, v=v, v2=v2, w=rng.choice(WHEN))
        name = f"behavior_{t.replace(' ', '_')}_{i // len(topics)}"
        behaviors.append(Behavior(namespace=NAMESPACE, name=name, instruction=line, topic=t, pinned=i < 2))
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return behaviors, vectors


def make_queries(vectors: npt.NDArray[np.float32], n: int, seed: int = 1) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Question texts, and query vectors near stored ones (cosine about 0.7 with their source)."""
    rng = random.Random(seed)
    topics = list(TOPICS.items())
    texts = []
    for _ in range(n):
        t, nouns = rng.choice(topics)
        a, b = rng.sample(nouns, 2)
        texts.append(rng.choice(ASK).format(t=t, a=a, b=b))
    gen = np.random.default_rng(seed)
    picks = gen.integers(0, len(vectors), n)
    noisy = vectors[picks] + gen.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return texts, (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


class LookupEmbedder(Embedder):
    """Serves precomputed query vectors, so hybrid retrieval is timed without a model."""

    name = "lookup"
    dim = DIM

    def __init__(self, texts: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        self.rows = {t: vectors[i] for i, t in enumerate(texts)}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.stack([self.rows[t] for t in texts])


# ------------------------------------------------------------------------------------------ harness
def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc/self/status``; else peak RSS from ``resource``)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
    except OSError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def timed(fn: Callable[[int], Any], n_queries: int, warmup: int) -> dict[str, float]:
    """Call ``fn(i)`` for warm-up and then every query; latency percentiles in µs."""
    for i in range(min(warmup, n_queries)):
        fn(i)
    gc.collect()
    lat = []
    for i in range(n_queries):
        t0 = time.perf_counter_ns()
        fn(i)
        lat.append(time.perf_counter_ns() - t0)
    us = np.asarray(lat) / 1e3
    return {
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
    }


def open_store(kind: str, workdir: str) -> tuple[HandbookStore, str]:
    """``(store, label)``: a SQLiteStore file in ``workdir`` (``auto``, ``sqlite``) or an ``InMemoryStore``."""
    if kind == "memory":
        return InMemoryStore(), "InMemoryStore"
    return SQLiteStore(os.path.join(workdir, f"bench-{time.time_ns()}.db")), "SQLiteStore"


# ------------------------------------------------------------------------------------------ measures
def measure_insert(
    store: HandbookStore, behaviors: list[Behavior], vectors: npt.NDArray[np.float32], chunk: int = 5000
) -> dict[str, float]:
    """Fill ``store`` with ``put_behaviors`` in chunks; rate and resident growth per behavior."""
    gc.collect()
    rss0, t0 = rss_bytes(), time.perf_counter()
    for s in range(0, len(behaviors), chunk):
        store.put_behaviors(list(zip(behaviors[s : s + chunk], vectors[s : s + chunk], strict=True)))
    seconds = time.perf_counter() - t0
    gc.collect()
    return {
        "insert_s": seconds,
        "insert_per_s": len(behaviors) / seconds,
        "rss_b_per": (rss_bytes() - rss0) / len(behaviors),
    }


def _build_then_time(
    make: Callable[[], Any],
    build: Callable[[Any], Any],
    search: Callable[[Any, int], Any],
    n: int,
    n_queries: int,
    warmup: int,
) -> dict[str, float]:
    """Build (timed, resident growth), search every query (timed), then rebuild under tracemalloc.

    ΔRSS misses memory the allocator reuses from earlier measures; the traced figure counts every
    byte (Python objects and numpy buffers) the built retriever holds, whatever it reused.
    """
    gc.collect()
    rss0, t0 = rss_bytes(), time.perf_counter()
    retriever = make()
    build(retriever)
    build_s = time.perf_counter() - t0
    gc.collect()
    row = {"build_s": build_s, "rss_b_per": (rss_bytes() - rss0) / n}
    row |= timed(lambda i: search(retriever, i), n_queries, warmup)
    del retriever
    gc.collect()
    tracemalloc.start()
    retriever = make()
    build(retriever)
    gc.collect()
    row["held_b_per"] = tracemalloc.get_traced_memory()[0] / n
    tracemalloc.stop()
    return row


def measure_embedding_search(
    store: HandbookStore, qvecs: npt.NDArray[np.float32], n: int, warmup: int
) -> tuple[dict[str, float], list[list[str]]]:
    """EmbeddingRetriever.retrieve_by_vector: search only, query already embedded; floor off."""
    found: list[list[str]] = []

    def search(retriever: EmbeddingRetriever, i: int) -> None:
        hits = retriever.retrieve_by_vector(qvecs[i], namespace=NAMESPACE, k=K)
        found.append([r.behavior.id for r in hits])

    row = _build_then_time(
        lambda: EmbeddingRetriever(store, LookupEmbedder([], qvecs[:0]), floor=-1.0),
        lambda r: r.index.size(NAMESPACE),
        search,
        n,
        len(qvecs),
        warmup,
    )
    return row, found[-len(qvecs) :]


def measure_bm25(store: HandbookStore, qtexts: list[str], n: int, warmup: int) -> dict[str, float]:
    """BM25Retriever.retrieve on the query text (with its own snapshot of the behaviors)."""
    return _build_then_time(
        lambda: BM25Retriever(store),
        lambda r: r.retrieve("warm up", namespace=NAMESPACE, k=K),
        lambda r, i: r.retrieve(qtexts[i], namespace=NAMESPACE, k=K),
        n,
        len(qtexts),
        warmup,
    )


def measure_default_retriever(
    store: HandbookStore, qtexts: list[str], qvecs: npt.NDArray[np.float32], n: int, warmup: int
) -> dict[str, float]:
    """``build_retriever(RetrievalConfig())``: hybrid (vectors + BM25), pinned first; lookup embedder."""
    embedder = LookupEmbedder(qtexts, qvecs)
    return _build_then_time(
        lambda: build_retriever(RetrievalConfig(), store, embedder),
        lambda r: r.retrieve(qtexts[0], namespace=NAMESPACE, k=K),
        lambda r, i: r.retrieve(qtexts[i], namespace=NAMESPACE, k=K),
        n,
        len(qtexts),
        warmup,
    )


def measure_numpy(
    vectors: npt.NDArray[np.float32], qvecs: npt.NDArray[np.float32], warmup: int
) -> tuple[dict[str, float], list[list[int]]]:
    """Peer: the floor any in-process exact search can reach (matrix @ q, argpartition, argsort)."""
    m = np.ascontiguousarray(vectors)
    found: list[list[int]] = []

    def search(i: int) -> None:
        s = m @ qvecs[i]
        top = np.argpartition(-s, K)[:K]
        found.append(top[np.argsort(-s[top])].tolist())

    return {"build_s": 0.0, "rss_b_per": 0.0} | timed(search, len(qvecs), warmup), found[-len(qvecs) :]


def measure_faiss(
    vectors: npt.NDArray[np.float32], qvecs: npt.NDArray[np.float32], warmup: int
) -> dict[str, dict[str, float]]:
    """Peers: faiss IndexFlatIP and HNSW (M32, efSearch 64), when faiss is installed."""
    try:
        import faiss
    except ImportError:
        return {}
    rows = {}
    n = len(vectors)
    for label, make in {
        "faiss IndexFlatIP": lambda: faiss.IndexFlatIP(DIM),
        "faiss HNSW (M32 efS64)": lambda: faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT),
    }.items():
        gc.collect()
        rss0, t0 = rss_bytes(), time.perf_counter()
        index = make()
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = 64
        index.add(vectors)
        build_s = time.perf_counter() - t0
        rows[label] = {"build_s": build_s, "rss_b_per": (rss_bytes() - rss0) / n} | timed(
            lambda i, index=index: index.search(qvecs[i][None, :], K), len(qvecs), warmup
        )
        del index
    return rows


def measure_query_embedding(qtexts: list[str], warmup: int = 10) -> dict[str, float] | None:
    """Embedding one query with the local MiniLM (SentenceTransformerEmbedder), one at a time."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from behavior_memory.embeddings.sentence_transformers import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
        embedder.embed(["load the model"])
    except Exception as exc:  # the [embeddings] extra is optional
        print(f"skip query embedding: {type(exc).__name__}: {exc}", flush=True)
        return None
    texts = qtexts[: 60 + warmup]
    return timed(lambda i: embedder.embed([texts[i]]), len(texts), warmup)


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]))


# ------------------------------------------------------------------------------------------ main
def run_size(store: HandbookStore, label: str, n: int, n_queries: int, warmup: int) -> list[dict[str, Any]]:
    """Every measure at one size on ``store`` (empty, any ``HandbookStore``)."""
    behaviors, vectors = make_behaviors(n)
    qtexts, qvecs = make_queries(vectors, n_queries)
    rows: list[dict[str, Any]] = []

    def add(system: str, row: dict[str, Any]) -> None:
        rows.append({"system": system, "n": n} | row)
        print(json.dumps(rows[-1]), flush=True)

    add(f"store fill ({label})", measure_insert(store, behaviors, vectors))
    # the default retriever first: its ΔRSS then lands on fresh memory, not memory freed by another
    add(
        "behavior-memory default retriever (hybrid + pinned, lookup embedder)",
        measure_default_retriever(store, qtexts, qvecs, n, warmup),
    )
    ours, ours_found = measure_embedding_search(store, qvecs, n, warmup)
    np_row, np_found = measure_numpy(vectors, qvecs, warmup)
    ids = [b.id for b in behaviors]
    exact = [[ids[j] for j in f] for f in np_found]
    add("behavior-memory EmbeddingRetriever (vector given)", ours | {"recall": recall(ours_found, exact)})
    add("behavior-memory BM25Retriever", measure_bm25(store, qtexts, n, warmup))
    add("numpy brute force (peer)", np_row | {"recall": 1.0})
    for system, row in measure_faiss(vectors, qvecs, warmup).items():
        add(f"{system} (peer)", row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| system | N | build s | p50 µs | p99 µs | mean µs | recall@8 | ΔRSS B/beh. | held B/beh. "
        "| inserts/s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )

    def f(row: dict[str, Any], key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else ""

    return head + "\n".join(
        f"| {r['system']} | {r['n']:,} | {f(r, 'build_s', '.2f') or f(r, 'insert_s', '.2f')} "
        f"| {f(r, 'p50_us', ',.1f')} "
        f"| {f(r, 'p99_us', ',.1f')} | {f(r, 'mean_us', ',.1f')} | {f(r, 'recall', '.3f')} "
        f"| {f(r, 'rss_b_per', ',.0f')} | {f(r, 'held_b_per', ',.0f')} | {f(r, 'insert_per_s', ',.0f')} |"
        for r in rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--store", choices=["auto", "sqlite", "memory"], default="auto")
    ap.add_argument("--no-model", action="store_true", help="skip the MiniLM query-embedding row")
    ap.add_argument("--out", help="also write the rows and settings as JSON here")
    args = ap.parse_args()

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bmem-bench-") as workdir:
        for n in sorted(args.sizes):
            store, label = open_store(args.store, workdir)
            results += run_size(store, label, n, args.queries, args.warmup)
            store.close()
            del store
            gc.collect()
    embed = None if args.no_model else measure_query_embedding(make_queries(make_behaviors(10)[1], 80)[0])
    if embed:
        results.append({"system": "query embedding (MiniLM, one query, CPU)", "n": 1} | embed)
    table = markdown(results)
    print("\n" + table)
    if args.out:
        meta = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "k": K,
            "dim": DIM,
            "queries": args.queries,
            "warmup": args.warmup,
        }
        Path(args.out).write_text(json.dumps(meta | {"results": results, "table_md": table}, indent=1))


if __name__ == "__main__":
    main()
