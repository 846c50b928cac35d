"""Optional store capabilities: searching on the server instead of in each process's memory.

A store that can rank behaviors itself (``PostgresStore``: pgvector's HNSW index, PostgreSQL's
full-text search) implements these protocols; the retrievers check with ``isinstance`` and use
them when present, else they build their in-memory indexes from ``vectors`` and
``list_behaviors`` as before. Either way a retriever's results are ordered by ``(-score, name)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..types import Behavior, BehaviorStatus

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["TextSearch", "VectorSearch"]


@runtime_checkable
class VectorSearch(Protocol):
    """Nearest behaviors by cosine similarity, found by the store."""

    def search_vectors(
        self,
        namespace: str,
        query: npt.ArrayLike,
        k: int,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
    ) -> list[tuple[Behavior, float]]:
        """Up to ``k`` behaviors of ``namespace`` with their cosine similarity to ``query``, best first.

        Only the given statuses when given; only behaviors whose topic matches ``topic`` case- and
        space-insensitively when given. Complete under the filters: fewer than ``k`` only when
        fewer match. Behaviors come with the one round trip (no second lookup by id).
        """
        ...


@runtime_checkable
class TextSearch(Protocol):
    """Behaviors matching a query's words, found by the store (full-text search)."""

    def search_text(
        self,
        namespace: str,
        query: str,
        k: int,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
    ) -> list[tuple[Behavior, float]]:
        """Up to ``k`` behaviors sharing at least one word with ``query``, with a relevance score, best first.

        Filters as ``VectorSearch.search_vectors``.
        """
        ...
