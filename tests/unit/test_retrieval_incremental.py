"""Retrieval follows the change feed: writes are applied in place, snapshots are shared, rebuilds run aside."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from behavior_memory.retrieval import HybridRetriever, RetrievalConfig, SnapshotCache, build_retriever
from behavior_memory.retrieval.embedding import EmbeddingRetriever
from behavior_memory.retrieval.lexical import BM25Retriever
from behavior_memory.store.base import Changes, HandbookStore
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import Behavior, BehaviorStatus

DIM = 4


def unit(*values: float) -> npt.NDArray[np.float32]:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


class Fixed:
    """An embedder whose every query is the first axis."""

    name, dim = "fixed", DIM

    def embed(self, texts: Any) -> npt.NDArray[np.float32]:
        return np.stack([unit(1, 0, 0, 0) for _ in texts])

    async def aembed(self, texts: Any) -> npt.NDArray[np.float32]:
        return self.embed(texts)


def behavior(name: str, text: str = "check the modulus", **fields: Any) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction=text, **fields)


def names(hits: list[Any]) -> list[str]:
    return [h.behavior.name.removeprefix("behavior_") for h in hits]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> HandbookStore:
    return InMemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "h.db")


def test_writes_are_applied_without_a_rebuild(store: HandbookStore) -> None:
    store.put_behaviors([(behavior(f"b{i}"), unit(0.5, 1, i, 0)) for i in range(5)])
    snapshots = SnapshotCache(store)
    emb = EmbeddingRetriever(store, Fixed(), floor=-1.0, snapshots=snapshots)
    bm25 = BM25Retriever(store, snapshots=snapshots)
    assert len(emb.retrieve("modulus", namespace="default", k=10)) == 5
    assert len(bm25.retrieve("modulus", namespace="default", k=10)) == 5

    store.put_behavior(behavior("new", "a brand new zebra"), unit(1, 0, 0, 0))  # put
    assert names(emb.retrieve("zebra", namespace="default", k=1)) == ["new"]
    assert names(bm25.retrieve("zebra", namespace="default", k=5)) == ["new"]

    b0 = store.get_behavior("default", "behavior_b0")
    store.update_behavior(b0.model_copy(update={"instruction": "now about giraffes"}), unit(0.99, 0.1, 0, 0))
    assert names(bm25.retrieve("giraffes", namespace="default", k=5)) == ["b0"]  # update: text
    assert names(emb.retrieve("q", namespace="default", k=2)) == ["new", "b0"]  # update: vector
    assert bm25.retrieve("modulus", namespace="default", k=10)[0].behavior.name != "behavior_b0"

    new = store.get_behavior("default", "behavior_new")
    store.update_behavior(new.model_copy(update={"status": BehaviorStatus.QUARANTINED}))  # status change
    assert "new" not in names(emb.retrieve("q", namespace="default", k=10))
    assert bm25.retrieve("zebra", namespace="default", k=5) == []

    store.delete_behavior("default", "behavior_b1")  # delete
    assert "b1" not in names(emb.retrieve("q", namespace="default", k=10))
    assert len(bm25.retrieve("modulus", namespace="default", k=10)) == 3

    store.update_behavior(store.get_behavior("default", "behavior_new").model_copy(update={"status": "active"}))
    assert names(emb.retrieve("q", namespace="default", k=1)) == ["new"]  # back, with its vector
    assert snapshots.builds == 1 and snapshots.applies == 5


def test_incremental_results_equal_a_fresh_build(store: HandbookStore) -> None:
    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    store.put_behaviors(
        [
            (behavior(f"b{i:03d}", " ".join(rng.choice(words, 4)), topic=f"t{i % 3}"), unit(*rng.normal(size=DIM)))
            for i in range(60)
        ]
    )
    cache = SnapshotCache(store)
    live = [EmbeddingRetriever(store, Fixed(), floor=-1.0, snapshots=cache), BM25Retriever(store, snapshots=cache)]
    for retriever in live:
        retriever.retrieve("alpha", namespace="default", k=5)
    rounds = 0
    for i in range(20):  # a mix of every kind of write
        key = f"behavior_b{rng.integers(0, 60):03d}"
        try:
            current = store.get_behavior("default", key)
        except Exception:
            continue
        kind = i % 4
        if kind == 0:
            store.update_behavior(current.model_copy(update={"instruction": " ".join(rng.choice(words, 3))}))
        elif kind == 1:
            store.update_behavior(current, unit(*rng.normal(size=DIM)))
        elif kind == 2:
            status = BehaviorStatus.STALE if current.status == BehaviorStatus.ACTIVE else BehaviorStatus.ACTIVE
            store.update_behavior(current.model_copy(update={"status": status}))
        else:
            store.delete_behavior("default", key)
        store.put_behavior(
            behavior(f"n{i:02d}", " ".join(rng.choice(words, 4)), topic="t1"), unit(*rng.normal(size=DIM))
        )
        rounds += 1
        fresh_cache = SnapshotCache(store)
        fresh = [
            EmbeddingRetriever(store, Fixed(), floor=-1.0, snapshots=fresh_cache),
            BM25Retriever(store, snapshots=fresh_cache),
        ]
        for query, topic in [("alpha beta", None), ("gamma", "t1"), ("omega sigma delta", "t0")]:
            for mine, theirs in zip(live, fresh, strict=True):
                got = mine.retrieve(query, namespace="default", k=8, topic=topic)
                expected = theirs.retrieve(query, namespace="default", k=8, topic=topic)
                assert [(h.behavior.name, round(h.score, 5)) for h in got] == [
                    (h.behavior.name, round(h.score, 5)) for h in expected
                ]
    assert cache.builds == 1 and cache.applies == rounds


def _settings() -> Any:
    from behavior_memory.retrieval.registry import AnnSettings

    cfg = RetrievalConfig()
    return AnnSettings(threshold=cfg.ann_threshold, ef_search=cfg.ann_ef_search, persist=cfg.ann_persist)


def test_retrievers_built_apart_share_one_snapshot(store: HandbookStore) -> None:
    store.put_behaviors([(behavior(f"b{i}"), unit(1, i, 0, 0)) for i in range(3)])
    first = build_retriever(RetrievalConfig(), store, Fixed())
    second = build_retriever(RetrievalConfig(strategy="lexical"), store, None)
    first.retrieve("modulus", namespace="default", k=3)
    second.retrieve("modulus", namespace="default", k=3)
    shared = SnapshotCache.shared(store, _settings())
    assert shared is SnapshotCache.shared(store, _settings())
    assert shared.builds == 1
    assert BM25Retriever(store).snapshots is SnapshotCache.shared(store)


class StaleFeed(InMemoryStore):
    """A store whose feed never reaches back: every change needs a rebuild."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = threading.Event()

    def changes_since(self, namespace: str, token: int) -> Changes | None:
        return None

    def retrieval_rows(self, namespace: str, **kw: Any) -> Any:
        if self.slow.is_set():
            time.sleep(1.0)
        return super().retrieval_rows(namespace, **kw)


def test_an_unavoidable_rebuild_runs_aside_while_the_old_snapshot_answers() -> None:
    store = StaleFeed()
    store.put_behavior(behavior("old", "zebra"))
    snapshots = SnapshotCache(store)
    bm25 = BM25Retriever(store, snapshots=snapshots)
    assert names(bm25.retrieve("zebra", namespace="default", k=5)) == ["old"]
    store.put_behavior(behavior("new", "zebra"))
    store.slow.set()
    started = time.perf_counter()
    assert names(bm25.retrieve("zebra", namespace="default", k=5)) == ["old"]  # the old one answers at once
    assert time.perf_counter() - started < 0.5  # not the second the load takes
    snapshots.wait(5)
    assert names(bm25.retrieve("zebra", namespace="default", k=5)) == ["new", "old"]
    assert snapshots.builds == 2


def test_query_embeddings_are_cached_per_text(store: HandbookStore) -> None:
    store.put_behavior(behavior("aa"), unit(1, 0, 0, 0))
    calls: list[str] = []

    class Counting(Fixed):
        def embed(self, texts: Any) -> npt.NDArray[np.float32]:
            calls.extend(texts)
            return super().embed(texts)

    retriever = EmbeddingRetriever(store, Counting(), floor=-1.0, query_cache=2)
    for query in ["one", "one", "two", "one", "three", "two"]:
        assert names(retriever.retrieve(query, namespace="default", k=1)) == ["aa"]
    assert calls == ["one", "two", "three", "two"]  # "two" fell out of the 2-entry LRU


def test_a_large_handbook_opens_on_its_columns_and_reads_records_as_needed(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    store.put_behaviors([(behavior(f"b{i:02d}", f"zebra number {i}"), unit(1, i, 0, 0)) for i in range(30)])
    snapshots = SnapshotCache(store)
    snapshot = snapshots.get("default")
    assert snapshot.records.count(None) > 0 or snapshot.fetch_records is not None  # columns first
    bm25 = BM25Retriever(store, snapshots=snapshots)
    hits = bm25.retrieve("zebra 7", namespace="default", k=3)
    assert hits[0].behavior == store.get_behavior("default", "behavior_b07")  # the whole record, read by id
    snapshot.fill_records(delay_s=0)  # what the background thread does a second after the load
    for _ in range(100):
        if None not in snapshot.records:
            break
        time.sleep(0.01)
    assert None not in snapshot.records


def test_a_large_namespace_builds_bm25_aside_while_the_hybrid_answers_by_vector(store: HandbookStore) -> None:
    store.put_behaviors([(behavior(f"b{i:02d}", f"word{i} shared"), unit(1, i / 10, 0, 0)) for i in range(40)])
    hybrid = build_retriever(RetrievalConfig(floor=-1.0, ann_threshold=10, pinned_first=False), store, Fixed())
    first = hybrid.retrieve("word33", namespace="default", k=3)  # the index is being built: vectors alone
    assert [h.behavior.name for h in first][:1] == ["behavior_b00"]
    store.put_behavior(behavior("late", "word33 again"), unit(0, 1, 0, 0))  # a write while it builds
    snapshot = SnapshotCache.shared(store, _settings_for(10)).get("default")
    for _ in range(200):
        if "bm25" in snapshot.attachments:
            break
        time.sleep(0.01)
    assert isinstance(hybrid, HybridRetriever)
    lexical = hybrid.retrievers[1].retrieve("word33", namespace="default", k=3)
    assert {h.behavior.name for h in lexical} == {"behavior_b33", "behavior_late"}  # the write included
    fused = [h.behavior.name for h in hybrid.retrieve("word33", namespace="default", k=4)]
    assert {"behavior_b33", "behavior_late"} <= set(fused)


def _settings_for(threshold: int) -> Any:
    from behavior_memory.retrieval.registry import AnnSettings

    cfg = RetrievalConfig()
    return AnnSettings(threshold=threshold, ef_search=cfg.ann_ef_search, persist=cfg.ann_persist)


def test_hybrid_fusing_rows_equals_fusing_behaviors(store: HandbookStore) -> None:
    rng = np.random.default_rng(5)
    words = ["alpha", "beta", "gamma", "delta"]
    store.put_behaviors(
        [(behavior(f"b{i:02d}", " ".join(rng.choice(words, 3))), unit(*rng.normal(size=DIM))) for i in range(50)]
    )
    hybrid = build_retriever(RetrievalConfig(floor=-1.0, pinned_first=False), store, Fixed())
    assert isinstance(hybrid, HybridRetriever)
    for query in ("alpha", "beta gamma", "delta delta alpha"):
        lists = [r.retrieve(query, namespace="default", k=20) for r in hybrid.retrievers]
        assert hybrid.retrieve(query, namespace="default", k=6) == hybrid.fuse(lists, 6)
