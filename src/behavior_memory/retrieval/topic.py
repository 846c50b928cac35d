"""``TopicRetriever``: every behavior of the query's topic (the paper's MATH mode).

In the paper each behavior carries the topic of the question it was minted from, and a new question
gets all behaviors of its topic. Topics match case- and space-insensitively. With no topic there is
nothing to match, so nothing is returned (combine it with another retriever in a hybrid).
"""

from __future__ import annotations

from ..store.base import HandbookStore
from .base import Retriever, ScoredBehavior
from .registry import SnapshotCache

__all__ = ["TopicRetriever"]


class TopicRetriever(Retriever):
    """All injectable behaviors whose topic is ``topic``, in name order, each scored 1.0.

    ``k`` is deliberately not applied: the paper gives the whole topic, and the injection's token
    budget bounds the block. The query text is not used.
    """

    source = "topic"

    def __init__(self, store: HandbookStore, *, snapshots: SnapshotCache | None = None) -> None:
        self.store = store
        self.snapshots = snapshots or SnapshotCache.shared(store)

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if topic is None or k <= 0:
            return []
        snapshot = self.snapshots.get(namespace)
        return [ScoredBehavior(b, 1.0, self.source) for _, b in snapshot.materialized(snapshot.topic_rows(topic))]
