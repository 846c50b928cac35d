"""Retrievers over an in-memory store: floor, k, ties, namespaces, topic, BM25, RRF, pinned, caches."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from behavior_memory.embeddings import Embedder, HashingEmbedder
from behavior_memory.errors import EmbeddingError
from behavior_memory.retrieval import (
    BM25Retriever,
    EmbeddingRetriever,
    HybridRetriever,
    PinnedFirstRetriever,
    RetrievalConfig,
    Retriever,
    ScoredBehavior,
    SnapshotCache,
    TopicRetriever,
    VectorIndex,
    build_retriever,
)
from behavior_memory.store.base import Vectors
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.types import Behavior, BehaviorStatus

DIM = 4


def unit(*values: float) -> npt.NDArray[np.float32]:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def with_cosine(c: float) -> npt.NDArray[np.float32]:
    """A unit vector whose cosine with QUERY (the first axis) is ``c``."""
    return unit(c, float(np.sqrt(1 - c * c)), 0.0, 0.0)


QUERY = unit(1, 0, 0, 0)


class TableEmbedder(Embedder):
    """Maps known query strings to fixed vectors."""

    name = "table"
    dim = DIM

    def __init__(self, table: dict[str, npt.NDArray[np.float32]]) -> None:
        self.table = table

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.stack([self.table.get(t, QUERY) for t in texts]).astype(np.float32)


def behavior(name: str, instruction: str = "do the thing", **fields: object) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction=instruction, **fields)  # type: ignore[arg-type]


def names(results: Sequence[ScoredBehavior]) -> list[str]:
    return [r.behavior.name.removeprefix("behavior_") for r in results]


class CountingStore(InMemoryStore):
    """Counts the reads the caches are meant to save."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    def list_behaviors(self, namespace: str, **filters: Any) -> list[Behavior]:
        self._count("list_behaviors")
        return super().list_behaviors(namespace, **filters)

    def vectors(self, namespace: str) -> Vectors:
        self._count("vectors")
        return super().vectors(namespace)

    def change_token(self, namespace: str) -> int:
        self._count("change_token")
        return super().change_token(namespace)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


def embedding_retriever(store: CountingStore, floor: float = 0.3) -> EmbeddingRetriever:
    return EmbeddingRetriever(store, TableEmbedder({}), floor=floor)


# --- embedding ------------------------------------------------------------------------------------
def test_floor_drops_weak_matches(store: CountingStore) -> None:
    store.put_behaviors(
        [
            (behavior("high"), with_cosine(0.9)),
            (behavior("mid"), with_cosine(0.5)),
            (behavior("low"), with_cosine(0.2)),
        ]
    )
    results = embedding_retriever(store).retrieve("q", namespace="default", k=10)
    assert names(results) == ["high", "mid"]
    assert results[0].score == pytest.approx(0.9, abs=1e-5)
    assert {r.source for r in results} == {"embedding"}
    assert names(embedding_retriever(store, floor=0.95).retrieve("q", namespace="default", k=10)) == []


def test_k_keeps_the_best(store: CountingStore) -> None:
    store.put_behaviors([(behavior(f"b{i}"), with_cosine(i / 10)) for i in range(10)])
    retriever = embedding_retriever(store, floor=-1.0)
    assert names(retriever.retrieve("q", namespace="default", k=3)) == ["b9", "b8", "b7"]
    assert retriever.retrieve("q", namespace="default", k=0) == []
    assert len(retriever.retrieve("q", namespace="default", k=50)) == 10


def test_ties_are_ordered_by_name_and_never_flip(store: CountingStore) -> None:
    tied = [f"t{i:02d}" for i in range(20)]
    random.Random(7).shuffle(tied)  # insertion order must not matter
    store.put_behaviors([(behavior(n), with_cosine(0.7)) for n in tied] + [(behavior("best"), with_cosine(0.8))])
    retriever = embedding_retriever(store)
    first = names(retriever.retrieve("q", namespace="default", k=5))
    assert first == ["best", "t00", "t01", "t02", "t03"]  # k cuts through the tie: smallest names win
    for _ in range(20):
        assert names(retriever.retrieve("q", namespace="default", k=5)) == first
    other_order = CountingStore()
    other_order.put_behaviors([(behavior(n), with_cosine(0.7)) for n in sorted(tied, reverse=True)])
    assert names(embedding_retriever(other_order).retrieve("q", namespace="default", k=4)) == [
        "t00",
        "t01",
        "t02",
        "t03",
    ]


def test_namespaces_are_isolated(store: CountingStore) -> None:
    store.put_behaviors(
        [
            (behavior("shared", "alpha version", namespace="acme/a"), with_cosine(0.9)),
            (behavior("shared", "beta version", namespace="acme/b"), with_cosine(0.9)),
            (behavior("only_b", "beta only", namespace="acme/b"), with_cosine(0.8)),
        ]
    )
    for retriever in (embedding_retriever(store), BM25Retriever(store)):
        a = retriever.retrieve("alpha beta version only", namespace="acme/a", k=10)
        assert [r.behavior.instruction for r in a] == ["alpha version"]
        assert {r.behavior.namespace for r in retriever.retrieve("beta", namespace="acme/b", k=10)} == {"acme/b"}
    assert embedding_retriever(store).retrieve("q", namespace="nobody", k=5) == []


def test_embedding_topic_filter(store: CountingStore) -> None:
    store.put_behaviors(
        [
            (behavior("geo", topic="Geometry"), with_cosine(0.6)),
            (behavior("alg", topic="algebra"), with_cosine(0.9)),
        ]
    )
    retriever = embedding_retriever(store)
    assert names(retriever.retrieve("q", namespace="default", k=5, topic="geometry")) == ["geo"]
    assert names(retriever.retrieve("q", namespace="default", k=5)) == ["alg", "geo"]
    assert retriever.retrieve("q", namespace="default", k=5, topic="calculus") == []


def test_dimension_mismatch_is_a_clear_error(store: CountingStore) -> None:
    store.put_behavior(behavior("xx"), with_cosine(0.9))
    retriever = EmbeddingRetriever(store, HashingEmbedder(dim=16))
    with pytest.raises(EmbeddingError, match="re-embed"):
        retriever.retrieve("q", namespace="default", k=3)


def test_behaviors_without_vectors_are_skipped_by_embedding_but_found_by_bm25(store: CountingStore) -> None:
    store.put_behaviors([(behavior("vec", "alpha"), with_cosine(0.9)), (behavior("novec", "alpha"), None)])
    assert names(embedding_retriever(store).retrieve("alpha", namespace="default", k=5)) == ["vec"]
    assert sorted(names(BM25Retriever(store).retrieve("alpha", namespace="default", k=5))) == ["novec", "vec"]


# --- statuses -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status",
    [BehaviorStatus.QUARANTINED, BehaviorStatus.ARCHIVED, BehaviorStatus.CANDIDATE, BehaviorStatus.STALE],
)
def test_only_injectable_statuses_are_ever_returned(store: CountingStore, status: BehaviorStatus) -> None:
    store.put_behaviors(
        [
            (behavior("good", "check the modulus", topic="nt"), with_cosine(0.5)),
            (behavior("bad", "check the modulus", topic="nt", status=status), with_cosine(0.99)),
            (
                behavior("bad_pin", "check the modulus", topic="nt", status=status, pinned=True),
                with_cosine(0.99),
            ),
        ]
    )
    embedder = TableEmbedder({})
    for strategy in ("embedding", "lexical", "hybrid", "topic"):
        retriever = build_retriever(RetrievalConfig(strategy=strategy), store, embedder)  # type: ignore[arg-type]
        results = retriever.retrieve("check the modulus", namespace="default", k=10, topic="nt")
        assert names(results) == ["good"], strategy


# --- topic ----------------------------------------------------------------------------------------
def test_topic_mode_returns_the_whole_topic_in_name_order(store: CountingStore) -> None:
    store.put_behaviors(
        [(behavior(f"nt{i}", topic="Number Theory"), None) for i in (3, 1, 2)]
        + [(behavior("geo", topic="geometry"), None), (behavior("untagged"), None)]
    )
    retriever = TopicRetriever(store)
    results = retriever.retrieve("anything", namespace="default", k=1, topic=" number  theory ")
    assert names(results) == ["nt1", "nt2", "nt3"]  # k is not applied in the paper's MATH mode
    assert {(r.score, r.source) for r in results} == {(1.0, "topic")}
    assert retriever.retrieve("anything", namespace="default", k=5) == []  # no topic: nothing
    assert retriever.retrieve("anything", namespace="default", k=5, topic="calculus") == []


# --- BM25 -----------------------------------------------------------------------------------------
CORPUS = {
    "inclusion_exclusion": "count the size of a union of sets by adding sizes and subtracting intersections",
    "geometric_series": "sum a geometric series with the closed form a (1 - r^n) / (1 - r)",
    "retry_backoff": "retry failed HTTP requests with exponential backoff and a cap on attempts",
    "base_conversion": "convert a number between bases by repeated division and reading remainders",
}


def test_bm25_ranks_the_matching_behavior_first(store: CountingStore) -> None:
    store.put_behaviors([(behavior(name, text), None) for name, text in CORPUS.items()])
    retriever = BM25Retriever(store)
    assert names(retriever.retrieve("how many elements are in the union of two sets?", namespace="default", k=2)) == [
        "inclusion_exclusion"
    ]
    assert names(retriever.retrieve("the HTTP request keeps failing", namespace="default", k=3))[0] == "retry_backoff"
    assert names(retriever.retrieve("sum of a geometric series", namespace="default", k=1)) == ["geometric_series"]
    # name words count too
    assert names(retriever.retrieve("conversion", namespace="default", k=3)) == ["base_conversion"]
    assert retriever.retrieve("zebra giraffe", namespace="default", k=3) == []
    assert retriever.retrieve("the of and", namespace="default", k=3) == []  # stop words only
    scores = [r.score for r in retriever.retrieve("a number of sets", namespace="default", k=4)]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


def test_bm25_prefers_rare_terms_and_short_documents(store: CountingStore) -> None:
    store.put_behaviors(
        [
            (behavior("short", "modulus check"), None),
            (behavior("long", "modulus check with many other words that dilute the match quite a lot"), None),
            (behavior("common1", "check things"), None),
            (behavior("common2", "check stuff"), None),
        ]
    )
    results = BM25Retriever(store).retrieve("modulus check", namespace="default", k=4)
    assert names(results)[:2] == ["short", "long"]


def test_bm25_ties_are_ordered_by_name(store: CountingStore) -> None:
    store.put_behaviors([(behavior(n, "identical words here"), None) for n in ("zeta", "alpha", "mid")])
    assert names(BM25Retriever(store).retrieve("identical", namespace="default", k=2)) == ["alpha", "mid"]


# --- hybrid ---------------------------------------------------------------------------------------
class FixedRetriever(Retriever):
    def __init__(self, items: list[Behavior], source: str) -> None:
        self.items, self.source = items, source
        self.seen_k: list[int] = []

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        self.seen_k.append(k)
        return [ScoredBehavior(b, 1.0 / (i + 1), self.source) for i, b in enumerate(self.items[:k])]


def test_rrf_fuses_by_rank() -> None:
    a, b, c, d = (behavior(n) for n in ("aa", "bb", "cc", "dd"))
    first, second = FixedRetriever([a, b, c], "x"), FixedRetriever([c, d, a], "y")
    hybrid = HybridRetriever([first, second], rrf_k=60)
    results = hybrid.retrieve("q", namespace="default", k=3)
    expected = {
        "aa": 1 / 61 + 1 / 63,
        "cc": 1 / 63 + 1 / 61,
        "bb": 1 / 62,
        "dd": 1 / 62,
    }
    assert names(results) == ["aa", "cc", "bb"]  # a and c tie: name order; b and d tie: b first
    assert [r.score for r in results] == pytest.approx([expected[n] for n in names(results)])
    assert {r.source for r in results} == {"hybrid"}
    assert first.seen_k == [20]  # children are asked for more candidates than k


def test_hybrid_of_real_retrievers_finds_what_either_finds(store: CountingStore) -> None:
    store.put_behaviors(
        [
            (behavior("semantic", "words that do not overlap"), with_cosine(0.9)),
            (behavior("lexical_only", "exact keyword ZX81"), with_cosine(0.0)),
        ]
    )
    hybrid = HybridRetriever([embedding_retriever(store), BM25Retriever(store)])
    assert set(names(hybrid.retrieve("ZX81", namespace="default", k=5))) == {"semantic", "lexical_only"}


# --- pinned ---------------------------------------------------------------------------------------
def test_pinned_come_first_in_name_order(store: CountingStore) -> None:
    store.put_behaviors(
        [
            (behavior("z_pinned", "unrelated text", pinned=True, topic="other"), with_cosine(0.0)),
            (behavior("a_pinned", "also unrelated", pinned=True), with_cosine(0.95)),
            (behavior("best", "relevant"), with_cosine(0.9)),
            (behavior("next", "relevant"), with_cosine(0.8)),
        ]
    )
    retriever = PinnedFirstRetriever(embedding_retriever(store), store)
    results = retriever.retrieve("q", namespace="default", k=3, topic=None)
    # the inner top 3 are a_pinned, best, next: a_pinned moves to the front, z_pinned joins it
    assert names(results) == ["a_pinned", "z_pinned", "best", "next"]
    assert [r.source for r in results] == ["pinned", "pinned", "embedding", "embedding"]
    cfg_on, cfg_off = (
        RetrievalConfig(strategy="embedding"),
        RetrievalConfig(strategy="embedding", pinned_first=False),
    )
    assert names(build_retriever(cfg_on, store, TableEmbedder({})).retrieve("q", namespace="default", k=2))[:2] == [
        "a_pinned",
        "z_pinned",
    ]
    assert names(build_retriever(cfg_off, store, TableEmbedder({})).retrieve("q", namespace="default", k=2)) == [
        "a_pinned",
        "best",
    ]


# --- caches ---------------------------------------------------------------------------------------
def test_index_is_rebuilt_only_when_the_change_token_moves(store: CountingStore) -> None:
    store.put_behavior(behavior("one", "alpha"), with_cosine(0.9))
    snapshots = SnapshotCache(store)
    emb = EmbeddingRetriever(store, TableEmbedder({}), snapshots=snapshots)
    bm25 = BM25Retriever(store, snapshots=snapshots)
    for _ in range(5):
        emb.retrieve("alpha", namespace="default", k=5)
        bm25.retrieve("alpha", namespace="default", k=5)
    assert store.calls["list_behaviors"] == 1  # one snapshot shared by both retrievers
    assert store.calls["vectors"] == 1

    store.put_behavior(behavior("two", "alpha"), with_cosine(0.8))
    assert names(emb.retrieve("alpha", namespace="default", k=5)) == ["one", "two"]
    assert sorted(names(bm25.retrieve("alpha", namespace="default", k=5))) == ["one", "two"]
    assert store.calls["list_behaviors"] == 2 and store.calls["vectors"] == 2

    quarantined = store.get_behavior("default", "behavior_one").model_copy(
        update={"status": BehaviorStatus.QUARANTINED}
    )
    store.update_behavior(quarantined)
    assert names(emb.retrieve("alpha", namespace="default", k=5)) == ["two"]
    assert names(bm25.retrieve("alpha", namespace="default", k=5)) == ["two"]
    store.delete_behavior("default", "behavior_two")
    assert emb.retrieve("alpha", namespace="default", k=5) == []


def test_concurrent_retrievals_build_once_and_agree(store: CountingStore) -> None:
    rng = np.random.default_rng(0)
    store.put_behaviors(
        [(behavior(f"b{i:03d}", f"word{i % 7} common"), unit(*rng.normal(size=DIM))) for i in range(300)]
    )
    retriever = build_retriever(RetrievalConfig(floor=-1.0), store, TableEmbedder({}))
    expected = names(retriever.retrieve("word3 common", namespace="default", k=8))
    store.put_behavior(behavior("late", "word3 common"), QUERY)  # invalidate, then race the rebuild
    store.calls.clear()
    barrier, results, errors = threading.Barrier(8), [], []

    def work() -> None:
        try:
            barrier.wait()
            results.append(names(retriever.retrieve("word3 common", namespace="default", k=8)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({tuple(r) for r in results}) == 1 and "late" in results[0] and results[0] != expected
    assert store.calls["list_behaviors"] == 1


# --- async twins ----------------------------------------------------------------------------------
async def test_async_twins_match_sync(store: CountingStore) -> None:
    store.put_behaviors(
        [
            (
                behavior(name, text, topic="t", pinned=name == "base_conversion"),
                HashingEmbedder(DIM).embed([text])[0],
            )
            for name, text in CORPUS.items()
        ]
    )
    embedder = HashingEmbedder(DIM)
    retrievers: list[Retriever] = [
        EmbeddingRetriever(store, embedder, floor=-1.0),
        BM25Retriever(store),
        TopicRetriever(store),
        HybridRetriever([EmbeddingRetriever(store, embedder, floor=-1.0), BM25Retriever(store)]),
        build_retriever(RetrievalConfig(), store, embedder),
    ]
    for retriever in retrievers:
        sync = retriever.retrieve("union of sets", namespace="default", k=3, topic="t")
        assert await retriever.aretrieve("union of sets", namespace="default", k=3, topic="t") == sync
        assert sync, type(retriever).__name__


# --- config ---------------------------------------------------------------------------------------
def test_config_defaults_and_unknown_keys() -> None:
    cfg = RetrievalConfig()
    assert (cfg.strategy, cfg.k, cfg.floor, cfg.token_budget, cfg.pinned_first) == (
        "hybrid",
        8,
        0.2,
        600,
        True,
    )
    with pytest.raises(ValidationError):
        RetrievalConfig(strategy="magic")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RetrievalConfig.model_validate({"kk": 3})


@pytest.mark.parametrize("strategy", ["embedding", "hybrid"])
def test_missing_embedder_falls_back_to_lexical_with_a_warning(
    store: CountingStore, strategy: str, caplog: pytest.LogCaptureFixture
) -> None:
    store.put_behaviors([(behavior(name, text), None) for name, text in CORPUS.items()])
    with caplog.at_level(logging.WARNING, logger="behavior_memory.retrieval.config"):
        retriever = build_retriever(RetrievalConfig(strategy=strategy, pinned_first=False), store, None)  # type: ignore[arg-type]
    assert isinstance(retriever, BM25Retriever)
    assert "lexical" in caplog.text
    assert names(retriever.retrieve("union of sets", namespace="default", k=1)) == ["inclusion_exclusion"]


def test_build_retriever_shapes(store: CountingStore) -> None:
    embedder = TableEmbedder({})
    shapes = {
        "topic": TopicRetriever,
        "lexical": BM25Retriever,
        "embedding": EmbeddingRetriever,
        "hybrid": HybridRetriever,
    }
    for strategy, cls in shapes.items():
        plain = build_retriever(RetrievalConfig(strategy=strategy, pinned_first=False), store, embedder)  # type: ignore[arg-type]
        assert isinstance(plain, cls)
        wrapped = build_retriever(RetrievalConfig(strategy=strategy), store, embedder)  # type: ignore[arg-type]
        assert isinstance(wrapped, PinnedFirstRetriever) and isinstance(wrapped.inner, cls)


def test_vector_index_size(store: CountingStore) -> None:
    store.put_behaviors([(behavior("aa"), QUERY), (behavior("bb", status=BehaviorStatus.ARCHIVED), QUERY)])
    assert VectorIndex(store).size("default") == 1


def test_composite_retrievers_read_the_change_token_once_per_query(store: CountingStore) -> None:
    store.put_behaviors([(behavior(name, text, pinned=True), with_cosine(0.5)) for name, text in CORPUS.items()])
    retriever = build_retriever(RetrievalConfig(), store, TableEmbedder({}))
    retriever.retrieve("union of sets", namespace="default", k=3)  # builds
    store.calls.clear()
    retriever.retrieve("union of sets", namespace="default", k=3)
    assert store.calls == {"change_token": 1}


async def test_composite_async_reads_the_change_token_once(store: CountingStore) -> None:
    store.put_behaviors([(behavior(name, text), with_cosine(0.5)) for name, text in CORPUS.items()])
    retriever = build_retriever(RetrievalConfig(), store, TableEmbedder({}))
    await retriever.aretrieve("union of sets", namespace="default", k=3)
    store.calls.clear()
    await retriever.aretrieve("union of sets", namespace="default", k=3)
    assert store.calls == {"change_token": 1}


def test_snapshot_compaction_keeps_every_value(store: CountingStore) -> None:
    full = behavior("full", "alpha beta", topic="tt").model_dump()
    stored = Behavior(**full)  # every field given, as a store builds it
    before = stored.model_dump(exclude_unset=True)
    store.put_behavior(stored, QUERY)
    cached = SnapshotCache(store).get("default").behaviors[0]
    assert cached.model_dump(exclude_unset=True) == before == full
    cached.shown = 5  # assignment still validates and works
    assert cached.shown == 5 and cached.model_fields_set == set(Behavior.model_fields)


def test_top_rows_matches_a_plain_sort_with_name_order_ties() -> None:
    from behavior_memory.retrieval.snapshot import top_rows

    rng = np.random.default_rng(0)
    for trial in range(600):
        n, k = int(rng.integers(0, 3000)), int(rng.integers(0, 20))
        scores = [
            rng.standard_normal(n),
            rng.integers(0, 4, n),  # many ties
            np.sort(rng.standard_normal(n)),  # scores follow the row order
            np.zeros(n),
        ][trial % 4].astype(np.float32)
        floor = float(rng.choice([-np.inf, -1.0, 0.0, 0.5]))
        expected = sorted((i for i in range(n) if scores[i] >= floor), key=lambda i: (-scores[i], i))[:k]
        assert top_rows(scores, k, floor).tolist() == expected
