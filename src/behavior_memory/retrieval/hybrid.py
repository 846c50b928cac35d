"""``HybridRetriever``: reciprocal rank fusion (RRF) of several retrievers.

Each retriever ranks its own candidates; a behavior's fused score is ``sum(1 / (rrf_k + rank))``
over the lists it appears in (Cormack et al., 2009). Ranks, not raw scores, are fused, so a cosine
and a BM25 sum need no calibration against each other. Each child contributes its best
``max(depth_factor * k, min_depth)`` candidates; the fused list is cut to ``k``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..types import Behavior
from .base import Retriever, ScoredBehavior, rank
from .snapshot import Snapshot, one_version

__all__ = ["HybridRetriever"]


class HybridRetriever(Retriever):
    """Fuses ``retrievers`` by reciprocal rank (``rrf_k`` = 60, as in the RRF paper)."""

    source = "hybrid"

    def __init__(
        self, retrievers: Sequence[Retriever], rrf_k: int = 60, *, depth_factor: int = 3, min_depth: int = 20
    ) -> None:
        if not retrievers:
            raise ValueError("HybridRetriever needs at least one retriever")
        self.retrievers = list(retrievers)
        self.rrf_k, self.depth_factor, self.min_depth = rrf_k, depth_factor, min_depth

    def _depth(self, k: int) -> int:
        return max(self.depth_factor * k, self.min_depth)

    def fuse(self, lists: Sequence[Sequence[ScoredBehavior]], k: int) -> list[ScoredBehavior]:
        """Reciprocal rank fusion of ranked ``lists``, cut to ``k``."""
        scores: dict[str, float] = {}
        behaviors: dict[str, Behavior] = {}
        for ranked in lists:
            for position, item in enumerate(ranked, start=1):
                key = item.behavior.id
                scores[key] = scores.get(key, 0.0) + 1.0 / (self.rrf_k + position)
                behaviors.setdefault(key, item.behavior)
        return rank((ScoredBehavior(behaviors[key], s, self.source) for key, s in scores.items()), k)

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        depth = self._depth(k)
        with one_version():
            fused = self._fuse_rows(query, namespace, depth, k, topic)
            if fused is not None:
                return fused
            lists = [r.retrieve(query, namespace=namespace, k=depth, topic=topic) for r in self.retrievers]
        return self.fuse(lists, k)

    def _fuse_rows(
        self, query: str, namespace: str, depth: int, k: int, topic: str | None
    ) -> list[ScoredBehavior] | None:
        """Fusion over rows of one shared snapshot, so only the ``k`` fused behaviors are built (the
        children's ``depth`` lists are not); ``None`` when a child cannot answer in rows."""
        ranked: list[tuple[Snapshot, list[tuple[int, float]]]] = []
        for child in self.retrievers:
            rows_of = getattr(child, "ranked_rows", None)
            found = None if rows_of is None else rows_of(query, namespace=namespace, k=depth, topic=topic)
            if found is None or (ranked and found[0] is not ranked[0][0]):
                return None
            ranked.append(found)
        if not ranked:
            return None
        snapshot = ranked[0][0]
        scores: dict[int, float] = {}
        for _, rows in ranked:
            for position, (row, _) in enumerate(rows, start=1):
                scores[row] = scores.get(row, 0.0) + 1.0 / (self.rrf_k + position)
        names = snapshot.names
        best = sorted(scores, key=lambda r: (-scores[r], names[r]))[:k]
        return [ScoredBehavior(b, scores[r], self.source) for r, b in snapshot.materialized(best)]

    async def aretrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        depth = self._depth(k)
        with one_version():
            lists = await asyncio.gather(
                *(r.aretrieve(query, namespace=namespace, k=depth, topic=topic) for r in self.retrievers)
            )
        return self.fuse(lists, k)
