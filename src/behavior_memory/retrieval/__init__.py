"""Retrievers: query -> ranked behaviors of one namespace (topic, embedding, BM25, hybrid, pinned first).

The names below load on first use: the configuration imports ``retrieval.config`` with
``import behavior_memory``, and that must not pull numpy through the retrievers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import load_export

if TYPE_CHECKING:
    from .base import Retriever, ScoredBehavior, rank
    from .config import RetrievalConfig, build_retriever
    from .embedding import EmbeddingRetriever
    from .hybrid import HybridRetriever
    from .lexical import BM25Retriever
    from .pinned import PinnedFirstRetriever
    from .registry import SnapshotCache
    from .topic import TopicRetriever
    from .vector_index import VectorIndex

__all__ = [
    "BM25Retriever",
    "EmbeddingRetriever",
    "HybridRetriever",
    "PinnedFirstRetriever",
    "RetrievalConfig",
    "Retriever",
    "ScoredBehavior",
    "SnapshotCache",
    "TopicRetriever",
    "VectorIndex",
    "build_retriever",
    "rank",
]

#: public name -> the module that defines it
_MODULES = {
    "BM25Retriever": ".lexical",
    "EmbeddingRetriever": ".embedding",
    "HybridRetriever": ".hybrid",
    "PinnedFirstRetriever": ".pinned",
    "RetrievalConfig": ".config",
    "Retriever": ".base",
    "ScoredBehavior": ".base",
    "SnapshotCache": ".registry",
    "TopicRetriever": ".topic",
    "VectorIndex": ".vector_index",
    "build_retriever": ".config",
    "rank": ".base",
}


def __getattr__(name: str) -> object:
    return load_export(__name__, _MODULES, name)
