"""``PinnedFirstRetriever``: the namespace's pinned behaviors first, then what another retriever found.

Pinned behaviors are the ones a person wants in every prompt. Putting them first, in name order,
makes the start of the behavior block identical across calls, the stable prefix vLLM's prefix cache
reuses. They come on top of the ``k`` retrieved ones, whatever the query or topic (a person pins a
few; the injection's token budget bounds the block), and a pinned behavior that was also retrieved
appears once, in front.
"""

from __future__ import annotations

import asyncio

from ..store.base import HandbookStore
from .base import Retriever, ScoredBehavior
from .registry import SnapshotCache
from .snapshot import Snapshot, one_version

__all__ = ["PinnedFirstRetriever"]


class PinnedFirstRetriever(Retriever):
    """Wraps ``inner``: pinned behaviors (score 1.0, source ``pinned``) first, then ``inner``'s results."""

    source = "pinned"

    def __init__(self, inner: Retriever, store: HandbookStore, *, snapshots: SnapshotCache | None = None) -> None:
        self.inner, self.store = inner, store
        self.snapshots = snapshots or SnapshotCache.shared(store)

    def _merge(self, snapshot: Snapshot, found: list[ScoredBehavior]) -> list[ScoredBehavior]:
        pinned = [ScoredBehavior(b, 1.0, self.source) for _, b in snapshot.materialized(snapshot.pinned())]
        names = {item.behavior.name for item in pinned}
        return pinned + [item for item in found if item.behavior.name not in names]

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        with one_version():
            snapshot = self.snapshots.get(namespace)
            found = self.inner.retrieve(query, namespace=namespace, k=k, topic=topic)
        return self._merge(snapshot, found)

    async def aretrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        with one_version():
            snapshot = await asyncio.to_thread(self.snapshots.get, namespace)
            found = await self.inner.aretrieve(query, namespace=namespace, k=k, topic=topic)
        return self._merge(snapshot, found)
