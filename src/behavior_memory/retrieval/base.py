"""The ``Retriever`` protocol and what it returns.

A retriever maps a query to behaviors of one namespace, best first. Every implementation returns
only injectable behaviors (``INJECTABLE_STATUSES``: quarantined, stale and archived ones never reach
a prompt) and orders them by ``(-score, name)``, so equal scores never swap places between calls and
the rendered block stays a stable prefix for vLLM's prefix cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..types import Behavior

__all__ = ["Retriever", "ScoredBehavior", "rank"]


@dataclass(frozen=True, slots=True)
class ScoredBehavior:
    """One retrieved behavior, its score and which retriever produced it.

    Scores are comparable only within one ``source``: a cosine for ``embedding``, a BM25 sum for
    ``lexical``, a reciprocal-rank sum for ``hybrid``, 1.0 for ``topic`` and ``pinned``.
    """

    behavior: Behavior
    score: float
    source: str

    @property
    def name(self) -> str:
        return self.behavior.name

    def metadata(self) -> dict[str, Any]:
        """The hit as flat fields: the metadata of a LangChain ``Document`` and a LlamaIndex node alike."""
        b = self.behavior
        return {
            "name": b.name,
            "instruction": b.instruction,
            "status": str(b.status),
            "score": self.score,
            "retriever": self.source,
            "namespace": b.namespace,
            "topic": b.topic,
            "tags": list(b.tags),
            "pinned": b.pinned,
            "shown": b.shown,
            "cited": b.cited,
            "helped": b.helped,
            "hurt": b.hurt,
            "version": b.version,
        }


def rank(items: Iterable[ScoredBehavior], k: int | None = None) -> list[ScoredBehavior]:
    """Sort by ``(-score, name)`` and keep the first ``k`` (all when ``k`` is ``None``)."""
    ordered = sorted(items, key=lambda item: (-item.score, item.behavior.name))
    return ordered if k is None else ordered[: max(k, 0)]


@runtime_checkable
class Retriever(Protocol):
    """Query -> ranked behaviors of one namespace. Subclass it to inherit the threaded ``aretrieve``."""

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        """At most ``k`` injectable behaviors of ``namespace`` for ``query``, best first."""
        ...

    async def aretrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        """Async twin of ``retrieve``; by default runs it in a worker thread (stores do blocking I/O)."""
        return await asyncio.to_thread(self.retrieve, query, namespace=namespace, k=k, topic=topic)
