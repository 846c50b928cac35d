"""``EmbeddingRetriever``: top-k by cosine similarity with a relevance floor (the paper's AIME mode).

The paper embeds the question (BGE-M3), searches a FAISS index and keeps the top 40. We add a floor:
a behavior less similar than ``floor`` is not shown at all, since an irrelevant behavior costs input
tokens and can mislead a small model. ``retrieve_by_vector`` skips the query embedding, and query
embeddings are kept per task text (an LRU of ``query_cache`` entries): an agent that retries or
re-plans on the same task asks the model once. A store that searches on its server
(``store.search.VectorSearch``: PostgreSQL's HNSW index) is asked directly, so no process holds the
namespace's vectors in memory.

While the handbook's vectors belong to another embedder (a re-embedding under way, see
``retrieval.reembed``), vector search would compare apples with pears: the retriever answers with
its ``fallback`` (BM25 when ``build_retriever`` made it) or nothing, and a hybrid keeps its lexical half.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from ..embeddings.base import Embedder
from ..store.base import HandbookStore
from ..store.search import VectorSearch
from ..types import INJECTABLE_STATUSES
from .base import Retriever, ScoredBehavior, rank
from .reembed import vectors_match
from .registry import AnnSettings, SnapshotCache
from .snapshot import Snapshot
from .vector_index import VectorIndex

__all__ = ["EmbeddingRetriever"]

log = logging.getLogger(__name__)


class EmbeddingRetriever(Retriever):
    """Embed the query, then cosine top-k over the namespace's vectors, keeping scores >= ``floor``.

    ``topic``, when given, restricts the candidates to behaviors of that topic. Exact below
    ``ann.threshold`` vectors, HNSW above (``vector_index``).
    """

    source = "embedding"
    #: seconds between two reads of whose vectors the store holds: when they matched, when they did not
    recheck_s: tuple[float, float] = (5.0, 0.5)

    def __init__(
        self,
        store: HandbookStore,
        embedder: Embedder,
        floor: float = 0.3,
        *,
        snapshots: SnapshotCache | None = None,
        index: VectorIndex | None = None,
        ann: AnnSettings | None = None,
        fallback: Retriever | None = None,
        query_cache: int = 1024,
    ) -> None:
        self.store, self.embedder, self.floor, self.fallback = store, embedder, floor, fallback
        self.index = index or VectorIndex(store, snapshots, ann=ann)
        # a runtime protocol check costs tens of microseconds: once, not per query
        self._server = store if isinstance(store, VectorSearch) else None
        self.query_cache = query_cache
        self._queries: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self._checked: tuple[float, bool] = (-1e9, True)  # (when, whether the vectors are this embedder's)

    # --- the query's vector -----------------------------------------------------------------------
    def _cached(self, query: str) -> npt.NDArray[np.float32] | None:
        with self._lock:
            vector = self._queries.get(query)
            if vector is not None:
                self._queries.move_to_end(query)
            return vector

    def _remember(self, query: str, vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        vector = np.asarray(vector, dtype=np.float32)
        if self.query_cache > 0:
            with self._lock:
                self._queries[query] = vector
                while len(self._queries) > self.query_cache:
                    self._queries.popitem(last=False)
        return vector

    def embed_query(self, query: str) -> npt.NDArray[np.float32]:
        """The query's vector, from the cache when this text was embedded before."""
        vector = self._cached(query)
        return vector if vector is not None else self._remember(query, self.embedder.embed([query])[0])

    async def aembed_query(self, query: str) -> npt.NDArray[np.float32]:
        """Async twin of ``embed_query``."""
        vector = self._cached(query)
        return vector if vector is not None else self._remember(query, (await self.embedder.aembed([query]))[0])

    # --- whose vectors ------------------------------------------------------------------------
    def vectors_usable(self) -> bool:
        """Whether the stored vectors are this embedder's (no re-embedding under way); re-read now and then."""
        when, usable = self._checked
        now = time.monotonic()
        if now - when < self.recheck_s[0 if usable else 1]:
            return usable
        usable = vectors_match(self.store, self.embedder)
        if not usable and self._checked[1]:
            log.warning("the handbook's vectors are being re-embedded: retrieval is lexical until it ends")
        self._checked = (now, usable)
        return usable

    # --- search -------------------------------------------------------------------------------
    def retrieve_by_vector(
        self, vector: npt.ArrayLike, *, namespace: str, k: int, topic: str | None = None
    ) -> list[ScoredBehavior]:
        """Like ``retrieve`` for a query already embedded by the same embedder."""
        if self._server is not None:
            return self._search_on_server(self._server, vector, namespace=namespace, k=k, topic=topic)
        return self.index.search(namespace, vector, k, floor=self.floor, topic=topic, source=self.source)

    def _search_on_server(
        self, store: VectorSearch, vector: npt.ArrayLike, *, namespace: str, k: int, topic: str | None
    ) -> list[ScoredBehavior]:
        found = store.search_vectors(namespace, vector, k, statuses=INJECTABLE_STATUSES, topic=topic)
        return rank((ScoredBehavior(b, score, self.source) for b, score in found if score >= self.floor), k)

    def ranked_rows(
        self, query: str, *, namespace: str, k: int, topic: str | None = None
    ) -> tuple[Snapshot, list[tuple[int, float]]] | None:
        """``retrieve`` as rows of the shared snapshot, for a hybrid that fuses before it builds
        any ``Behavior``; ``None`` when this retriever answers otherwise (on the server, or lexically)."""
        if self._server is not None or not self.vectors_usable():
            return None
        return self.index.search_rows(namespace, self.embed_query(query), k, floor=self.floor, topic=topic)

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        if not self.vectors_usable():
            return [] if self.fallback is None else self.fallback.retrieve(query, namespace=namespace, k=k, topic=topic)
        return self.retrieve_by_vector(self.embed_query(query), namespace=namespace, k=k, topic=topic)

    async def aretrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        if not self.vectors_usable():  # a meta read every few seconds at most
            if self.fallback is None:
                return []
            return await self.fallback.aretrieve(query, namespace=namespace, k=k, topic=topic)
        vector = await self.aembed_query(query)
        # the search itself is sub-millisecond, but applying a change reads the store: off the loop
        return await asyncio.to_thread(self.retrieve_by_vector, vector, namespace=namespace, k=k, topic=topic)
