"""Approximate vector search past ``ann_threshold``: same answers as exact on small sets, filters, files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from behavior_memory.retrieval.embedding import EmbeddingRetriever
from behavior_memory.retrieval.registry import AnnSettings, SnapshotCache
from behavior_memory.retrieval.vector_index import VectorIndex, VectorSet
from behavior_memory.store.base import HandbookStore
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import Behavior, BehaviorStatus

pytest.importorskip("usearch")

DIM, N, TOPICS = 16, 600, 4
ANN = AnnSettings(threshold=100, ef_search=256)
EXACT = AnnSettings(threshold=10**9)


def vectors(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def fill(store: HandbookStore, n: int = N) -> npt.NDArray[np.float32]:
    m = vectors(n)
    store.put_behaviors(
        [
            (Behavior(name=f"behavior_b{i:04d}", instruction="do the thing well", topic=f"topic {i % TOPICS}"), m[i])
            for i in range(n)
        ]
    )
    return m


def ready(store: HandbookStore, settings: AnnSettings, namespace: str = "default") -> tuple[VectorIndex, VectorSet]:
    index = VectorIndex(store, SnapshotCache(store, ann=settings))
    _, found = index.vectors(namespace)
    found.wait(60)
    return index, found


def search(index: VectorIndex, q: Any, topic: str | None = None, k: int = 8) -> list[str]:
    return [h.behavior.name for h in index.search("default", q, k, topic=topic)]


def same_answers(approx: VectorIndex, exact: VectorIndex, q: Any, topic: str | None = None, k: int = 8) -> None:
    """The same hits with the same scores; the index keeps float16 vectors, so near-ties may swap."""
    got = approx.search("default", q, k, topic=topic)
    want = exact.search("default", q, k, topic=topic)
    assert len(got) == len(want)
    np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=2e-3)
    clear = {h.behavior.name for h in want if h.score > want[-1].score + 2e-3}
    assert clear <= {h.behavior.name for h in got}


@pytest.mark.parametrize("exact_topic", [2048, 10])  # a small topic searched exactly; over-fetched
def test_ann_answers_what_exact_answers_with_and_without_a_topic(
    monkeypatch: pytest.MonkeyPatch, exact_topic: int
) -> None:
    from behavior_memory.retrieval import ann

    monkeypatch.setattr(ann, "_EXACT_TOPIC", exact_topic)
    store = InMemoryStore()
    fill(store)
    approx, vs = ready(store, ANN)
    exact, exact_set = ready(store, EXACT)
    assert vs.ann is not None and exact_set.ann is None
    for q in vectors(40, seed=9):
        same_answers(approx, exact, q)
        for topic in ("topic 1", " TOPIC  3 "):
            same_answers(approx, exact, q, topic)
        assert search(approx, q, "no such topic") == []


def test_ann_follows_puts_status_changes_and_deletes() -> None:
    store = InMemoryStore()
    fill(store)
    index, vs = ready(store, ANN)
    q = vectors(1, seed=5)[0]
    store.put_behavior(Behavior(name="behavior_exact_hit", instruction="do the thing well", topic="topic 0"), q)
    assert search(index, q, k=1) == ["behavior_exact_hit"]
    assert search(index, q, "topic 0", k=1) == ["behavior_exact_hit"]
    hit = store.get_behavior("default", "behavior_exact_hit")
    store.update_behavior(hit.model_copy(update={"status": BehaviorStatus.QUARANTINED}))
    assert "behavior_exact_hit" not in search(index, q, k=50)
    store.update_behavior(store.get_behavior("default", hit.id).model_copy(update={"status": BehaviorStatus.ACTIVE}))
    assert search(index, q, k=1) == ["behavior_exact_hit"]
    store.delete_behavior("default", hit.id)
    assert "behavior_exact_hit" not in search(index, q, k=50)
    vs.flush()  # the writer thread has caught up: the index holds what the store holds
    assert vs.ann is not None and len(vs.ann) == N and not vs._fresh
    assert search(index, q, k=1) != ["behavior_exact_hit"]


def test_a_saved_index_is_loaded_and_caught_up_by_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "handbook.db"
    first = SQLiteStore(path)
    fill(first)
    _, vs = ready(first, ANN)
    assert vs.ann is not None
    saved = list((tmp_path / "handbook.db.index").glob("*.usearch"))
    assert len(saved) == 1

    q = vectors(1, seed=11)[0]
    writer = SQLiteStore(path)  # another process writes after the save
    writer.put_behavior(Behavior(name="behavior_late", instruction="do the thing well"), q)
    writer.delete_behavior("default", "behavior_b0000")

    reopened = SQLiteStore(path)
    index, loaded = ready(reopened, ANN)
    assert loaded.ann is not None and loaded._builder is None  # loaded, not built
    assert search(index, q, k=1) == ["behavior_late"]
    assert "behavior_b0000" not in search(index, vectors(1)[0], k=5)
    exact, _ = ready(reopened, EXACT)
    for probe in vectors(20, seed=13):
        same_answers(index, exact, probe)
    loaded.flush()  # it was memory-mapped; the writer thread took a copy to catch up with the two writes
    assert loaded.ann.path is None and not loaded._fresh
    assert search(index, q, k=1) == ["behavior_late"]


def test_retrieval_before_the_index_is_built_is_exact(tmp_path: Path) -> None:
    store = InMemoryStore()
    fill(store)
    retriever = EmbeddingRetriever(store, _Embedder(), floor=-1.0, snapshots=SnapshotCache(store, ann=ANN))
    hits = retriever.retrieve("anything", namespace="default", k=3)  # while the index builds aside
    assert len(hits) == 3


class _Embedder:
    name, dim = "fixed", DIM

    def embed(self, texts: Any) -> npt.NDArray[np.float32]:
        return np.stack([vectors(1, seed=21)[0] for _ in texts])

    async def aembed(self, texts: Any) -> npt.NDArray[np.float32]:
        return self.embed(texts)


def test_import_behavior_memory_does_not_load_usearch() -> None:
    code = "import sys, behavior_memory; print('usearch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_batch_carrying_one_behavior_twice_keeps_its_latest_vector() -> None:
    # a batch of changes can hold the same behavior twice (edited twice before the writer ran);
    # usearch refuses a repeated key, which once failed the whole batch
    from behavior_memory.retrieval.ann import AnnIndex

    ann = AnnIndex(8, AnnSettings())
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((3, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    keys = np.array([11, 22, 11], dtype=np.uint64)
    ann.add([0, 1, 2], keys, matrix)
    assert len(ann) == 2
    assert ann._row_of.rows(np.array([11, 22], dtype=np.uint64)).tolist() == [2, 1]
    assert ann.same_vectors(keys[2:], matrix[2:]).tolist() == [True]


def test_the_float16_copies_are_saved_beside_the_index_and_rescore_its_hits(tmp_path: Path) -> None:
    # the int8 walk ranks near-ties loosely; the hits are re-scored with float16 copies, saved
    # beside the index and memory-mapped by the next process
    path = tmp_path / "handbook.db"
    store = SQLiteStore(path)
    fill(store)
    ready(store, ANN)
    folder = tmp_path / "handbook.db.index"
    names = sorted(p.name.split(".", 1)[1] for p in folder.iterdir())
    assert names == ["i8.half.npy", "i8.keys.npy", "i8.usearch"]
    index, loaded = ready(SQLiteStore(path), ANN)
    assert loaded.ann is not None and loaded.ann.path is not None  # memory-mapped, not rebuilt
    assert len(loaded.ann.half) == N
    ids, matrix = store.vectors("default")
    probe = matrix[7]
    best = index.search("default", probe, 1)[0]
    assert best.behavior.id == ids[7]
    assert best.score == pytest.approx(float(matrix[7].astype(np.float16).astype(np.float32) @ probe), abs=1e-3)


def test_the_walk_widens_once_the_graph_is_large() -> None:
    # a larger graph needs a wider walk for the same recall (bench: at 1M, 0.974 at ef 64, 0.985 at 96)
    from behavior_memory.retrieval import ann as ann_module

    ann = ann_module.AnnIndex(8, AnnSettings(ef_search=64))
    ann._widen(ann_module._WIDEN_FROM)
    assert ann.index.expansion_search == 96
    ann._widen(ann_module._WIDEN_FROM - 1)
    assert ann.index.expansion_search == 64
