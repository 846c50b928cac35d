"""``EmbeddingRetriever``: top-k by cosine similarity with a relevance floor (the paper's AIME mode).

The paper embeds the question (BGE-M3), searches a FAISS index and keeps the top 40. We add a floor:
a behavior less similar than ``floor`` is not shown at all, since an irrelevant behavior costs input
tokens and can mislead a small model. ``retrieve_by_vector`` skips the query embedding. A store that
searches on its server (``store.search.VectorSearch``: PostgreSQL's HNSW index) is asked directly,
so no process holds the namespace's vectors in memory.
"""

from __future__ import annotations

import asyncio

import numpy.typing as npt

from ..embeddings.base import Embedder
from ..store.base import HandbookStore
from ..store.search import VectorSearch
from ..types import INJECTABLE_STATUSES
from .base import Retriever, ScoredBehavior, rank
from .snapshot import SnapshotCache
from .vector_index import VectorIndex

__all__ = ["EmbeddingRetriever"]


class EmbeddingRetriever(Retriever):
    """Embed the query, then exact cosine top-k over the namespace's vectors, keeping scores >= ``floor``.

    ``topic``, when given, restricts the candidates to behaviors of that topic.
    """

    source = "embedding"

    def __init__(
        self,
        store: HandbookStore,
        embedder: Embedder,
        floor: float = 0.3,
        *,
        snapshots: SnapshotCache | None = None,
        index: VectorIndex | None = None,
    ) -> None:
        self.store, self.embedder, self.floor = store, embedder, floor
        self.index = index or VectorIndex(store, snapshots)

    def retrieve_by_vector(
        self, vector: npt.ArrayLike, *, namespace: str, k: int, topic: str | None = None
    ) -> list[ScoredBehavior]:
        """Like ``retrieve`` for a query already embedded by the same embedder."""
        if isinstance(self.store, VectorSearch):
            return self._search_on_server(self.store, vector, namespace=namespace, k=k, topic=topic)
        return self.index.search(namespace, vector, k, floor=self.floor, topic=topic, source=self.source)

    def _search_on_server(
        self, store: VectorSearch, vector: npt.ArrayLike, *, namespace: str, k: int, topic: str | None
    ) -> list[ScoredBehavior]:
        found = store.search_vectors(namespace, vector, k, statuses=INJECTABLE_STATUSES, topic=topic)
        return rank((ScoredBehavior(b, score, self.source) for b, score in found if score >= self.floor), k)

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        vector = self.embedder.embed([query])[0]
        return self.retrieve_by_vector(vector, namespace=namespace, k=k, topic=topic)

    async def aretrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        vector = (await self.embedder.aembed([query]))[0]
        # the search itself is sub-millisecond, but a stale index is rebuilt from the store: off the loop
        return await asyncio.to_thread(self.retrieve_by_vector, vector, namespace=namespace, k=k, topic=topic)
