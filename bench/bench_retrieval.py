#!/usr/bin/env python3
r"""Retrieval at scale: latency, recall, writes, cold start and memory, with numpy and usearch as peers.

For each size N (default 1k, 10k, 100k; add 1000000 with ``--sizes``) it fills a SQLite handbook
with N synthetic behaviors whose 384-d unit vectors come from 48 latent directions plus noise (real
sentence embeddings have such structure; uniformly random vectors have no near neighbours, so no
approximate index could be judged on them), then measures, all in one run:

- warm: ``EmbeddingRetriever.retrieve_by_vector`` (query already embedded; exact below
  ``ann_threshold``, HNSW above), its recall@5 against exact numpy, the default hybrid retriever
  (embedding + BM25, pinned first) and BM25 alone; peers on the same vectors: numpy brute force
  and raw usearch (the same HNSW settings, without our filtering and result building);
- writes: the first retrieval after a put, an edit of the text, a status change, each as a ratio
  to the warm p50 (the change feed applies them; nothing is rebuilt);
- cold: a new process opens the handbook and answers its first query (by vector, then hybrid),
  with the resident memory it took per behavior beyond the 1,536-byte vector; at the sizes with
  an HNSW index this runs twice: before an index was saved (the exact scan answers while it builds)
  and after (the saved index is loaded);
- ``bmem traces list``: the store's newest-first listing at 100k traces.

Targets (issue 13): p50 <= 0.3 ms at 100k and <= 1 ms at 1M, recall@5 >= 0.98; the first retrieve
after a write <= 2x the warm p50 at 100k; cold first query <= 0.5 s at 100k and <= 3 s at 1M;
<= 2 KB resident per behavior beyond its vector; traces list <= 5 ms at 100k traces.

    python bench/bench_retrieval.py                              # make bench
    python bench/bench_retrieval.py --sizes 1000000 --out bench-1m.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from behavior_memory.embeddings.base import Embedder
from behavior_memory.retrieval import BM25Retriever, EmbeddingRetriever, RetrievalConfig, build_retriever
from behavior_memory.retrieval.registry import AnnSettings, SnapshotCache
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import Behavior, BehaviorStatus, Trace

DIM, K, LATENT = 384, 5, 48
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
]
ASK = ["How should I handle the {a} in a {t} problem?", "I'm stuck on {t}; what should I do about the {b}?"]
VERBS = ["identify", "write down", "check", "simplify", "enumerate", "bound", "verify", "isolate"]
WHEN = ["before answering", "at the end", "on a small case first", "when stuck", "after each step"]


# ------------------------------------------------------------------------------------------ data
def make_vectors(n: int, seed: int) -> npt.NDArray[np.float32]:
    """Unit vectors drawn from ``LATENT`` shared directions (heavy-tailed weights) plus noise."""
    basis = np.random.default_rng(12345).standard_normal((LATENT, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        z = rng.standard_normal((m, LATENT)).astype(np.float32) ** 3
        block = z @ basis + 0.3 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[s : s + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def make_behaviors(n: int, seed: int = 0) -> list[Behavior]:
    rng = random.Random(seed)
    topics = list(TOPICS.items())
    out = []
    for i in range(n):
        t, nouns = topics[i % len(topics)]
        (a, b), (v, v2) = rng.sample(nouns, 2), rng.sample(VERBS, 2)
        line = rng.choice(INSTR).format(t=t, a=a, b=b, v=v, v2=v2, w=rng.choice(WHEN))
        name = f"behavior_{t.replace(' ', '_')}_{i // len(topics)}"
        out.append(Behavior(namespace=NAMESPACE, name=name, instruction=line, topic=t, pinned=i < 2))
    return out


def make_queries(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    topics = list(TOPICS.items())
    texts = []
    for _ in range(n):
        t, nouns = rng.choice(topics)
        a, b = rng.sample(nouns, 2)
        texts.append(rng.choice(ASK).format(t=t, a=a, b=b) + f" #{len(texts)}")
    return texts


class LookupEmbedder(Embedder):
    """Serves precomputed query vectors, so retrieval is timed without a model."""

    name, dim = "lookup", DIM

    def __init__(self, texts: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        self.rows = {t: vectors[i] for i, t in enumerate(texts)}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.stack([self.rows.get(t, next(iter(self.rows.values()))) for t in texts])


# ------------------------------------------------------------------------------------------ harness
def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


def timed(fn: Callable[[int], Any], n: int, warmup: int = 10) -> dict[str, float]:
    for i in range(min(warmup, n)):
        fn(i)
    gc.collect()
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        lat.append(time.perf_counter_ns() - t0)
    us = np.asarray(lat) / 1e3
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99))}


def fill(db: Path, n: int) -> float:
    """Seconds to put ``n`` behaviors with their vectors into a new SQLite handbook (20k per transaction)."""
    store = SQLiteStore(db)
    behaviors = make_behaviors(n)
    t0 = time.perf_counter()
    for s in range(0, n, 20_000):
        vectors = make_vectors(min(20_000, n - s), seed=s + 7)
        store.put_behaviors(list(zip(behaviors[s : s + 20_000], vectors, strict=True)))
    seconds = time.perf_counter() - t0
    store.close()
    return seconds


# ------------------------------------------------------------------------------------------ measures
def ann_settings(threshold: int) -> AnnSettings:
    cfg = RetrievalConfig()
    return AnnSettings(threshold=threshold, ef_search=cfg.ann_ef_search, persist=cfg.ann_persist)


def warm_rows(db: Path, n_queries: int, threshold: int) -> list[dict[str, Any]]:
    """Warm search, recall, hybrid and BM25 on a store whose index is built; then the writes."""
    store = SQLiteStore(db)
    qtexts = make_queries(n_queries)
    qvecs = make_vectors(n_queries, seed=999)
    snapshots = SnapshotCache.shared(store, ann_settings(threshold))
    ours = EmbeddingRetriever(store, LookupEmbedder(qtexts, qvecs), floor=-1.0, snapshots=snapshots)
    ours.retrieve_by_vector(qvecs[0], namespace=NAMESPACE, k=K)
    hybrid = build_retriever(RetrievalConfig(k=K, ann_threshold=threshold), store, LookupEmbedder(qtexts, qvecs))
    hybrid.retrieve(qtexts[0], namespace=NAMESPACE, k=K)
    settle(*ours.index.vectors(NAMESPACE))  # warm: what a process serves once its loading is over
    rows: list[dict[str, Any]] = []
    found: list[list[str]] = []
    row = timed(
        lambda i: found.append([h.behavior.id for h in ours.retrieve_by_vector(qvecs[i], namespace=NAMESPACE, k=K)]),
        n_queries,
    )
    # exact answers: numpy over the same vectors, in store order
    store_ids, matrix = store.vectors(NAMESPACE)
    exact = [[store_ids[j] for j in np.argsort(-(matrix @ q))[:K]] for q in qvecs]
    recall = float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found[-n_queries:], exact, strict=True)]))
    mode = "HNSW" if ours.index.vectors(NAMESPACE)[1].ann is not None else "exact"
    rows.append({"system": f"ours: by vector ({mode})", "recall@5": recall} | row)
    rows.append(
        {"system": "ours: hybrid + pinned (default)"}
        | timed(lambda i: hybrid.retrieve(qtexts[i], namespace=NAMESPACE, k=K), n_queries)
    )
    bm25 = BM25Retriever(store, snapshots=snapshots)
    rows.append(
        {"system": "ours: BM25"} | timed(lambda i: bm25.retrieve(qtexts[i], namespace=NAMESPACE, k=K), n_queries)
    )
    m = np.ascontiguousarray(matrix)

    def brute(i: int) -> None:
        s = m @ qvecs[i]
        top = np.argpartition(-s, K)[:K]
        top[np.argsort(-s[top])]

    rows.append({"system": "numpy brute force (peer)", "recall@5": 1.0} | timed(brute, n_queries))
    vs = ours.index.vectors(NAMESPACE)[1]
    if vs.ann is not None:
        raw = vs.ann.index
        rows.append(
            {"system": "usearch raw, same int8 index, no re-score (peer)"}
            | timed(lambda i: raw.search(qvecs[i], K, threads=1), n_queries)
        )
    rows += write_rows(store, ours, qvecs, rows[0]["p50_us"])
    store.close()
    return rows


def write_rows(
    store: SQLiteStore, ours: EmbeddingRetriever, qvecs: npt.NDArray[np.float32], warm_us: float
) -> list[dict[str, Any]]:
    """The first retrieval after each kind of write, as a ratio to the warm p50."""
    fresh = make_vectors(20, seed=4242)
    kinds: dict[str, list[float]] = {"put": [], "edit (text)": [], "status change": []}
    for i in range(20):
        b = Behavior(
            namespace=NAMESPACE, name=f"behavior_fresh_{i}_{time.time_ns()}", instruction="check the new thing first."
        )
        for kind in kinds:
            if kind == "put":
                store.put_behavior(b, fresh[i])
            elif kind == "edit (text)":
                store.update_behavior(
                    store.get_behavior(NAMESPACE, b.id).model_copy(update={"instruction": "check it twice."})
                )
            else:
                store.update_behavior(
                    store.get_behavior(NAMESPACE, b.id).model_copy(update={"status": BehaviorStatus.ARCHIVED})
                )
            t0 = time.perf_counter_ns()
            ours.retrieve_by_vector(qvecs[i], namespace=NAMESPACE, k=K)
            kinds[kind].append((time.perf_counter_ns() - t0) / 1e3)
    return [
        {
            "system": f"ours: first retrieve after a {kind}",
            "p50_us": float(np.median(v)),
            "p99_us": float(np.max(v)),
            "x_warm": float(np.median(v)) / warm_us,
        }
        for kind, v in kinds.items()
    ]


def settle(snapshot: Any, vectors: Any, timeout: float = 3600.0) -> None:
    """Wait for the background work that follows a load: records read, BM25 and HNSW built, writes applied."""
    deadline = time.monotonic() + timeout
    vectors.wait(timeout)
    vectors.flush(timeout)
    while time.monotonic() < deadline and (
        None in snapshot.records
        or snapshot._attaching
        or (vectors.ann is not None and vectors.ann.path is not None)  # the mapped index is being copied
    ):
        time.sleep(0.05)


def cold_child(db: str, threshold: int) -> None:
    """In a new process: open the handbook, answer the first queries; print timings and memory as JSON."""
    rss0 = rss_bytes()
    qvecs = make_vectors(2, seed=31337)
    t0 = time.perf_counter()
    store = SQLiteStore(db)
    n = store.count_behaviors(NAMESPACE)
    ours = EmbeddingRetriever(
        store, LookupEmbedder(["q"], qvecs), floor=-1.0, snapshots=SnapshotCache.shared(store, ann_settings(threshold))
    )
    ours.retrieve_by_vector(qvecs[0], namespace=NAMESPACE, k=K)
    first = time.perf_counter() - t0
    hybrid = build_retriever(
        RetrievalConfig(k=K, ann_threshold=threshold), store, LookupEmbedder(["how to check the residues"], qvecs)
    )
    t1 = time.perf_counter()
    hybrid.retrieve("how to check the residues", namespace=NAMESPACE, k=K)
    first_hybrid = time.perf_counter() - t1
    snapshot, vs = ours.index.vectors(NAMESPACE)
    building = vs._builder is not None
    settle(snapshot, vs)  # steady state; an index built now is saved for the next process
    hybrid.retrieve("how to check the residues", namespace=NAMESPACE, k=K)
    gc.collect()
    held = rss_bytes() - rss0
    if vs.ann is not None and vs.ann.path is not None:  # a memory-mapped index counts in full,
        stem = vs.ann.path.name.removesuffix(".usearch")  # with its float16 copies beside it
        held += sum(p.stat().st_size for p in vs.ann.path.parent.glob(f"{stem}*"))
    mode = "HNSW built aside" if building else ("HNSW loaded" if vs.ann is not None else "exact")
    print(
        json.dumps(
            {
                "first_s": first,
                "first_hybrid_s": first_hybrid,
                "n": n,
                "rss_b_per": held / n,
                "beyond_vector_b": held / n - 4 * DIM,
                "mode": mode,
            }
        )
    )


def cold_rows(db: Path, threshold: int) -> list[dict[str, Any]]:
    cmd = [sys.executable, __file__, "--cold-child", str(db), "--threshold", str(threshold)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    return [
        {
            "system": f"ours: cold first query ({out['mode']})",
            "first_s": out["first_s"],
            "first_hybrid_s": out["first_hybrid_s"],
            "rss_b_per": out["rss_b_per"],
            "beyond_vector_b": out["beyond_vector_b"],
        }
    ]


def traces_rows(workdir: str, n: int) -> list[dict[str, Any]]:
    """``bmem traces list`` (the store's newest-first listing, 50 rows) over ``n`` traces."""
    store = SQLiteStore(Path(workdir) / "traces.db")
    t0 = time.time()
    batch = [
        Trace(
            task=f"task {i}", namespace="default" if i % 4 else "other", created_at=datetime.fromtimestamp(t0 - i, UTC)
        )
        for i in range(n)
    ]
    for s in range(0, n, 5000):  # 5,000 per transaction (the store's own writer), not one each
        store._write(lambda conn, part=batch[s : s + 5000]: [store._put_trace(conn, t) for t in part])
    rows = []
    for label, kwargs in {
        "one namespace": {"namespace": "default"},
        "--all-namespaces": {},
        "--status pending": {"namespace": "default", "status": "pending"},
    }.items():
        rows.append(
            {"system": f"bmem traces list ({label}), store call", "n": n}
            | timed(lambda i, kw=kwargs: store.list_traces(limit=50, **kw), 50)
        )
    store.close()
    return rows


# ------------------------------------------------------------------------------------------ main
def run_size(workdir: str, n: int, n_queries: int, threshold: int) -> list[dict[str, Any]]:
    db = Path(workdir) / f"bench-{n}.db"
    fill_s = fill(db, n)
    rows: list[dict[str, Any]] = [{"system": "store fill (SQLite)", "insert_s": fill_s, "inserts_per_s": n / fill_s}]
    rows += cold_rows(db, threshold)  # no saved index yet
    if n >= threshold:
        rows += cold_rows(db, threshold)  # the index saved by the first cold run
    rows += warm_rows(db, n_queries, threshold)
    for row in rows:
        row["n"] = n
        print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = [
        "p50_us",
        "p99_us",
        "recall@5",
        "x_warm",
        "first_s",
        "first_hybrid_s",
        "rss_b_per",
        "beyond_vector_b",
        "inserts_per_s",
    ]
    head = "| system | N | " + " | ".join(cols) + " |\n|---|---:|" + "---:|" * len(cols) + "\n"

    def cell(row: dict[str, Any], key: str) -> str:
        v = row.get(key)
        return "" if v is None else (f"{v:,.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:,.0f}")

    return head + "\n".join(
        f"| {r['system']} | {r['n']:,} | " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--threshold", type=int, default=RetrievalConfig().ann_threshold)
    ap.add_argument("--traces", type=int, default=100_000, help="traces for the `bmem traces list` row (0: skip)")
    ap.add_argument("--out", help="also write the rows and settings as JSON here")
    ap.add_argument("--cold-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cold_child:
        cold_child(args.cold_child, args.threshold)
        return
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bmem-bench-") as workdir:
        for n in sorted(args.sizes):
            results += run_size(workdir, n, args.queries, args.threshold)
        if args.traces:
            results += traces_rows(workdir, args.traces)
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
            "ann_threshold": args.threshold,
        }
        Path(args.out).write_text(json.dumps(meta | {"results": results, "table_md": table}, indent=1))


if __name__ == "__main__":
    main()
