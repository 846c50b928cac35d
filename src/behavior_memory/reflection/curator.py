"""``Curator``: what enters the handbook after reflection.

A first de-duplication at write time: a candidate with the same name as a behavior of the
namespace, or an embedding at least ``threshold`` similar to one (of the same topic, when the
trace has one), merges into it (provenance appended) instead of being added. New behaviors of one
trace go in one transaction, and every minted or merged behavior names the trace in its sources,
which is how a trace re-reflected after a crash is recognised and mints nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..embeddings.base import Embedder
from ..embeddings.hashing import HashingEmbedder
from ..store.base import HandbookStore
from ..types import Behavior, BehaviorStatus, Trace
from .reflector import ReflectionResult, candidate_to_behavior

__all__ = ["Curator", "MintReport"]

log = logging.getLogger(__name__)


@dataclass
class MintReport:
    """Names added as new behaviors and names that absorbed a candidate."""

    added: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.added + [name for name in self.merged if name not in self.added]


class Curator:
    """De-duplicates candidates against the namespace and stores the survivors."""

    def __init__(
        self,
        store: HandbookStore,
        embedder: Embedder | None,
        *,
        threshold: float = 0.9,
        approval: str = "auto",
    ) -> None:
        self.store = store
        self.embedder = embedder
        # With no embedder configured, dedup still needs a similarity: hashed word n-grams cost nothing.
        self._dedup_embedder: Embedder = embedder or HashingEmbedder()
        self.threshold = threshold
        self.status = BehaviorStatus.ACTIVE if approval == "auto" else BehaviorStatus.CANDIDATE

    def already_minted(self, trace: Trace) -> list[str]:
        """Names of behaviors whose sources include this trace (a reflection that already landed)."""
        return [b.name for b in self.store.list_behaviors(trace.namespace) if trace.id in b.sources]

    def _existing_vectors(self, behaviors: list[Behavior]) -> npt.NDArray[np.float32]:
        if not behaviors:
            return np.zeros((0, self._dedup_embedder.dim), dtype=np.float32)
        if self.embedder is not None:
            ids, matrix = self.store.vectors(behaviors[0].namespace)
            row_of = {bid: i for i, bid in enumerate(ids)}
            if all(b.id in row_of for b in behaviors) and matrix.shape[1] == self.embedder.dim:
                return matrix[[row_of[b.id] for b in behaviors]]
        return self._dedup_embedder.embed([b.text for b in behaviors])

    def mint(self, trace: Trace, result: ReflectionResult) -> MintReport:
        """Merge or add each candidate; returns what happened to them."""
        report = MintReport()
        if not result.candidates:
            return report
        existing = self.store.list_behaviors(trace.namespace)
        by_name = {b.name: b for b in existing}
        pool = [b for b in existing if trace.topic is None or b.topic == trace.topic]
        pool_vectors = self._existing_vectors(pool)
        fresh: list[Behavior] = []
        fresh_vectors: list[npt.NDArray[np.float32]] = []
        merges: dict[str, Behavior] = {}
        candidates = [candidate_to_behavior(c, trace, result.model, status=self.status) for c in result.candidates]
        vectors = self._dedup_embedder.embed([b.text for b in candidates])
        for behavior, vector in zip(candidates, vectors, strict=True):
            target = by_name.get(behavior.name)
            if target is None and len(pool):
                sims = pool_vectors @ vector
                best = int(np.argmax(sims))
                if sims[best] >= self.threshold:
                    target = pool[best]
            if target is None and fresh:
                sims = np.stack(fresh_vectors) @ vector
                best = int(np.argmax(sims))
                if sims[best] >= self.threshold:
                    continue  # a near-twin of a candidate of this same trace: keep the first
            if target is not None:
                merged = merges.get(target.name, target)
                if trace.id not in merged.sources:
                    merges[target.name] = merged.model_copy(update={"sources": [*merged.sources, trace.id]})
                continue
            fresh.append(behavior)
            fresh_vectors.append(vector)
        if fresh:
            stored = self.embedder.embed([b.text for b in fresh]) if self.embedder is not None else None
            self.store.put_behaviors([(b, None if stored is None else stored[i]) for i, b in enumerate(fresh)])
            report.added = [b.name for b in fresh]
        for behavior in merges.values():
            self.store.update_behavior(behavior)
            report.merged.append(behavior.name)
        if report.merged:
            log.info("trace %s: merged into existing behaviors %s", trace.id, report.merged)
        return report
