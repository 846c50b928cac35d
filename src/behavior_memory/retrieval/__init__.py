"""Retrievers: query -> ranked behaviors of one namespace (topic, embedding, BM25, hybrid, pinned first)."""

from __future__ import annotations

from .base import Retriever, ScoredBehavior, rank
from .config import RetrievalConfig, build_retriever
from .embedding import EmbeddingRetriever
from .hybrid import HybridRetriever
from .lexical import BM25Retriever
from .pinned import PinnedFirstRetriever
from .snapshot import SnapshotCache
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
