"""``Curator``: what enters the handbook after reflection, and in which status.

1. The guard: every candidate passes the deterministic rules (and the optional model judge). One
   that fails is stored ``quarantined`` with the rule and the evidence, so a person can look at it;
   it never merges into (and so never supports) another behavior.
2. De-duplication: a candidate with the same name as a behavior of the namespace, or an embedding
   at least ``threshold`` similar to one (of the same topic, when the trace has one), merges into
   it: the trace joins its sources. A merge is support.
3. Activation: with ``approval: evidence`` (the default) a new behavior starts as ``candidate``
   and becomes ``active`` once ``min_support`` distinct traces back it; ``auto`` activates at once;
   ``manual`` waits for a person (``bmem review``). Quarantined behaviors are never activated here.

Every write is safe against concurrent reflections: merges are read-modify-write with re-tries
(``modify_behavior``), and a name minted by another process meanwhile is merged, not an error.
Every minted or merged behavior names the trace in its sources, which is how a trace re-reflected
after a crash is recognised and mints nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..embeddings.base import Embedder
from ..embeddings.hashing import HashingEmbedder
from ..errors import InvalidBehaviorError, NotFoundError
from ..review import BehaviorGuard, flagged, transition, with_note
from ..store.base import HandbookStore
from ..store.edits import modify_behavior
from ..types import Behavior, BehaviorStatus, Trace
from .reflector import ReflectionResult, candidate_to_behavior

__all__ = ["APPROVAL_MODES", "Curator", "MintReport"]

log = logging.getLogger(__name__)

#: ``curation.approval``: how a minted behavior becomes active.
APPROVAL_MODES = ("evidence", "auto", "manual")
_CURATOR = "curator"


@dataclass
class MintReport:
    """Names added as new behaviors, names that absorbed a candidate, names quarantined by the guard."""

    added: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.added + [name for name in self.merged if name not in self.added]


class Curator:
    """Guards, de-duplicates and stores candidates; activates them on evidence."""

    def __init__(
        self,
        store: HandbookStore,
        embedder: Embedder | None,
        *,
        threshold: float = 0.9,
        approval: str = "evidence",
        min_support: int = 2,
        guard: BehaviorGuard | None = None,
    ) -> None:
        if approval not in APPROVAL_MODES:
            raise ValueError(f"approval must be one of {APPROVAL_MODES}, not {approval!r}")
        self.store = store
        self.embedder = embedder
        # With no embedder configured, dedup still needs a similarity: hashed word n-grams cost nothing.
        self._dedup_embedder: Embedder = embedder or HashingEmbedder()
        self.threshold = threshold
        self.approval = approval
        self.min_support = max(min_support, 1)
        self.guard = guard

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

    # --- status rules ---------------------------------------------------------------------------
    def _arrival(self, behavior: Behavior) -> Behavior:
        """The status a freshly minted behavior that passed the guard starts in."""
        if self.approval == "auto" or (self.approval == "evidence" and self.min_support <= 1):
            return transition(behavior, BehaviorStatus.ACTIVE, by=_CURATOR, reason=f"minted ({self.approval} approval)")
        return transition(behavior, BehaviorStatus.CANDIDATE, by=_CURATOR, reason="minted; waits for evidence")

    def _with_support(self, behavior: Behavior, trace_id: str) -> Behavior | None:
        """``behavior`` with the trace added to its sources (and activated on enough support), or None."""
        if trace_id in behavior.sources:
            return None
        supported = with_note(
            behavior.model_copy(update={"sources": [*behavior.sources, trace_id]}),
            by=_CURATOR,
            reason="merged a candidate of a later trace",
            trace=trace_id,
        )
        support = len(set(supported.sources))
        if self.approval == "evidence" and supported.status == BehaviorStatus.CANDIDATE and support >= self.min_support:
            return transition(supported, BehaviorStatus.ACTIVE, by=_CURATOR, reason=f"supported by {support} traces")
        return supported

    # --- minting --------------------------------------------------------------------------------
    def mint(self, trace: Trace, result: ReflectionResult) -> MintReport:
        """Guard, merge or add each candidate; returns what happened to them."""
        report = MintReport()
        if not result.candidates:
            return report
        existing = self.store.list_behaviors(trace.namespace)
        by_name = {b.name: b for b in existing}
        pool = [
            b
            for b in existing
            if (trace.topic is None or b.topic == trace.topic) and b.status != BehaviorStatus.QUARANTINED
        ]
        pool_vectors = self._existing_vectors(pool)
        fresh: list[Behavior] = []
        fresh_vectors: list[npt.NDArray[np.float32]] = []
        targets: list[str] = []
        candidates = [
            candidate_to_behavior(c, trace, result.model, status=BehaviorStatus.CANDIDATE) for c in result.candidates
        ]
        vectors = self._dedup_embedder.embed([b.text for b in candidates])
        for behavior, vector in zip(candidates, vectors, strict=True):
            verdict = (
                self.guard.check(behavior.name, behavior.instruction, topic=behavior.topic) if self.guard else None
            )
            if verdict is not None and not verdict.ok:
                if behavior.name in by_name:
                    report.notes.append(f"dropped {behavior.name!r}: rule {verdict.rule} ({verdict.evidence})")
                    continue
                fresh.append(flagged(behavior, verdict))
                fresh_vectors.append(vector)
                continue
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
                if target.name not in targets:
                    targets.append(target.name)
                continue
            fresh.append(self._arrival(behavior))
            fresh_vectors.append(vector)
        self._add(trace, fresh, report)
        for name in targets:
            self._merge(trace, name, report)
        if report.merged:
            log.info("trace %s: merged into existing behaviors %s", trace.id, report.merged)
        if report.quarantined:
            log.warning("trace %s: guard quarantined %s", trace.id, report.quarantined)
        return report

    def _add(self, trace: Trace, fresh: list[Behavior], report: MintReport) -> None:
        if not fresh:
            return
        stored = self.embedder.embed([b.text for b in fresh]) if self.embedder is not None else None
        items = [(b, None if stored is None else stored[i]) for i, b in enumerate(fresh)]
        try:
            self.store.put_behaviors(items)
            landed = fresh
        except InvalidBehaviorError:
            # Another reflection minted one of these names meanwhile: add one by one, merge the rest.
            landed = []
            for behavior, vector in items:
                try:
                    self.store.put_behavior(behavior, vector)
                    landed.append(behavior)
                except InvalidBehaviorError:
                    if behavior.status == BehaviorStatus.QUARANTINED:
                        report.notes.append(f"dropped {behavior.name!r}: quarantined and the name is taken")
                    else:
                        self._merge(trace, behavior.name, report)
        for behavior in landed:
            report.added.append(behavior.name)
            if behavior.status == BehaviorStatus.QUARANTINED:
                report.quarantined.append(behavior.name)
            elif behavior.status == BehaviorStatus.ACTIVE:
                report.activated.append(behavior.name)

    def _merge(self, trace: Trace, name: str, report: MintReport) -> None:
        activated: list[bool] = []

        def support(behavior: Behavior) -> Behavior | None:
            supported = self._with_support(behavior, trace.id)
            activated[:] = [supported is not None and supported.status != behavior.status]
            return supported

        try:
            modify_behavior(self.store, trace.namespace, name, support)
        except NotFoundError:  # removed by a person meanwhile: nothing to support
            report.notes.append(f"{name!r} was removed while this trace was reflected")
            return
        if name not in report.merged:
            report.merged.append(name)
        if activated and activated[0] and name not in report.activated:
            report.activated.append(name)
