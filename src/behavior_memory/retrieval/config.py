"""The YAML ``retrieval:`` section and ``build_retriever``.

::

    retrieval:
      strategy: hybrid      # topic | embedding | lexical | hybrid (embedding + BM25, fused by rank)
      k: 8                  # behaviors retrieved per query (pinned ones come on top)
      floor: 0.2            # minimum cosine for the embedding retriever
      token_budget: 600     # the rendered block's limit, applied at injection
      pinned_first: true    # pinned behaviors first: a stable prompt prefix for vLLM's cache
      ann_threshold: 50000  # vectors in a namespace from which search is approximate (HNSW, [ann] extra)
      ann_ef_search: 64     # HNSW candidates per query: recall against speed
      ann_persist: true     # keep the HNSW index beside the handbook file for the next process
      query_cache: 1024     # query embeddings kept per task text
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

# The retrievers (numpy) load when one is built, so the configuration imports cheaply.
if TYPE_CHECKING:
    from ..embeddings.base import Embedder
    from ..store.base import HandbookStore
    from .base import Retriever
    from .registry import SnapshotCache

__all__ = ["STRATEGIES", "RetrievalConfig", "build_retriever"]

logger = logging.getLogger(__name__)

Strategy = Literal["topic", "embedding", "lexical", "hybrid"]


class RetrievalConfig(BaseModel):
    """How behaviors are chosen for a prompt."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field(
        default="hybrid",
        description="topic: every behavior of the task's topic (paper, MATH); embedding: top-k by cosine "
        "(paper, AIME); lexical: BM25; hybrid: embedding and BM25 fused by reciprocal rank.",
    )
    k: int = Field(default=8, ge=1, le=1000, description="Behaviors retrieved per query.")
    floor: float = Field(
        default=0.2,
        ge=-1.0,
        le=1.0,
        description="Minimum cosine similarity for the embedding retriever (MiniLM scores a question "
        "against a matching procedure around 0.2-0.4; raise it for stricter matches).",
    )
    token_budget: int = Field(default=600, ge=0, description="Most tokens the behavior block may take.")
    pinned_first: bool = Field(
        default=True, description="Put pinned behaviors first, in name order (a stable, cacheable prefix)."
    )
    ann_threshold: int = Field(
        default=50_000,
        ge=1,
        description="Vectors in a namespace from which vector search uses an approximate HNSW index (usearch, "
        'pip install "behavior-memory[ann]"); exact below it, and exact when usearch is not installed.',
    )
    ann_ef_search: int = Field(
        default=64,
        ge=8,
        le=4096,
        description="HNSW candidate list per query: higher is closer to exact, slower (half as large again "
        "from 500,000 vectors, where the graph needs it for the same recall).",
    )
    ann_persist: bool = Field(
        default=True,
        description="Save the HNSW index beside a handbook file (<file>.index/), so a new process loads it "
        "and applies the changes since instead of rebuilding.",
    )
    query_cache: int = Field(
        default=1024, ge=0, description="Query embeddings kept per task text (an LRU; 0 turns it off)."
    )


def _topic(cfg: RetrievalConfig, store: HandbookStore, embedder: Embedder | None, s: SnapshotCache) -> Retriever:
    from .topic import TopicRetriever

    return TopicRetriever(store, snapshots=s)


def _lexical(cfg: RetrievalConfig, store: HandbookStore, embedder: Embedder | None, s: SnapshotCache) -> Retriever:
    from .lexical import BM25Retriever

    return BM25Retriever(store, snapshots=s)


def _embedding(cfg: RetrievalConfig, store: HandbookStore, embedder: Embedder | None, s: SnapshotCache) -> Retriever:
    from .embedding import EmbeddingRetriever
    from .lexical import BM25Retriever

    assert embedder is not None
    # lexical answers while the vectors are being re-embedded
    fallback = BM25Retriever(store, snapshots=s)
    return EmbeddingRetriever(store, embedder, cfg.floor, snapshots=s, fallback=fallback, query_cache=cfg.query_cache)


def _hybrid(cfg: RetrievalConfig, store: HandbookStore, embedder: Embedder | None, s: SnapshotCache) -> Retriever:
    from .embedding import EmbeddingRetriever
    from .hybrid import HybridRetriever
    from .lexical import BM25Retriever

    assert embedder is not None
    lexical = BM25Retriever(store, snapshots=s)
    # a large namespace's first query does not wait for the BM25 index: the embedding half answers alone
    lexical.build_aside_from = cfg.ann_threshold
    return HybridRetriever(
        [EmbeddingRetriever(store, embedder, cfg.floor, snapshots=s, query_cache=cfg.query_cache), lexical]
    )


#: strategy -> (needs an embedder, factory)
STRATEGIES: dict[
    str, tuple[bool, Callable[[RetrievalConfig, HandbookStore, Embedder | None, SnapshotCache], Retriever]]
] = {
    "topic": (False, _topic),
    "lexical": (False, _lexical),
    "embedding": (True, _embedding),
    "hybrid": (True, _hybrid),
}


def build_retriever(cfg: RetrievalConfig, store: HandbookStore, embedder: Embedder | None) -> Retriever:
    """The retriever ``cfg`` describes over ``store``.

    A strategy that needs an embedder falls back to lexical (BM25) when there is none, with a WARNING.
    Every retriever over ``store`` shares one in-memory snapshot per namespace (``SnapshotCache.shared``).
    """
    strategy: str = cfg.strategy
    needs_embedder, _ = STRATEGIES[strategy]
    if needs_embedder and embedder is None:
        logger.warning(
            "retrieval strategy %r needs an embedder but embeddings are off (provider: none); "
            "using lexical (BM25) retrieval",
            strategy,
        )
        strategy = "lexical"
    from .pinned import PinnedFirstRetriever
    from .registry import AnnSettings, SnapshotCache

    ann = AnnSettings(threshold=cfg.ann_threshold, ef_search=cfg.ann_ef_search, persist=cfg.ann_persist)
    snapshots = SnapshotCache.shared(store, ann)
    retriever = STRATEGIES[strategy][1](cfg, store, embedder, snapshots)
    if cfg.pinned_first:
        retriever = PinnedFirstRetriever(retriever, store, snapshots=snapshots)
    return retriever
