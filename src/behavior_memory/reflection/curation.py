"""``CurationPass``: one pass of curation over a namespace, written to the store (or only planned).

The ``lifecycle`` package plans; this module writes what it plans, in the order its docstring gives:

1. Consolidation. Behaviors of one namespace and topic whose embeddings are at least
   ``curation.dedup_threshold`` alike form clusters (``find_near_duplicates``). Each folds into its
   keeper (``merge_plan``): the keeper takes every member's sources, and becomes active if a merged
   member was; each other member is archived ("merged into <keeper>") and then its counters are
   added to the keeper's with the store's atomic ``increment``. A member is archived by one
   conditional write, so two passes racing move its counters once.
2. Lifecycle. ``plan_lifecycle`` over the behaviors as the merges left them and the namespace's
   latest traces (``max(stale_after_tasks, max_traces)`` of them, read without their steps):
   candidates become active on support (``curation.min_support``) or a successful source trace
   (never with ``approval: manual``, where a person decides), active ones go stale when unused,
   stale ones come back when used, and harmful ones are archived (by their counters, or by the
   measured utility of the exposure experiment).

Every status change goes through ``review.transition`` (the behavior's history says who and why)
and ``modify_behavior`` (re-read and retry on a concurrent edit); a behavior whose status moved
since it was read is left alone and noted. Nothing is deleted. ``dry_run=True`` plans the same
changes, returns the same report and writes nothing::

    report = CurationPass(memory.store, memory.embedder, memory.config.curation).run("default", dry_run=True)
    for change in report.changes:
        print(change.name, change.from_status, "->", change.to_status, change.reason)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..embeddings.hashing import HashingEmbedder
from ..errors import BehaviorMemoryError, NotFoundError
from ..lifecycle import (
    WITHHELD_KEY,
    Cluster,
    MergePlan,
    Transition,
    UtilityEstimate,
    count_tasks_since_use,
    estimate_utility,
    find_near_duplicates,
    merge_plan,
    plan_lifecycle,
)
from ..review import transition, with_note
from ..store.base import COUNTERS, HandbookStore
from ..store.edits import modify_behavior
from ..telemetry import set_attributes, span
from ..types import Behavior, BehaviorStatus, Outcome, Trace

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..config.settings import CurationConfig
    from ..embeddings.base import Embedder

__all__ = ["CURATION_ACTOR", "DEFAULT_MAX_TRACES", "CurationChange", "CurationPass", "CurationReport"]

log = logging.getLogger(__name__)

#: Who the behaviors' history names for the changes a pass makes.
CURATION_ACTOR = "curation"
#: Traces a pass reads per namespace (at least ``stale_after_tasks``): the measured utility needs many.
DEFAULT_MAX_TRACES = 2000
_RETIRED = (BehaviorStatus.ARCHIVED, BehaviorStatus.QUARANTINED)


@dataclass(frozen=True)
class CurationChange:
    """One change a pass made, or would make in a dry run.

    ``action``: ``absorb`` (a keeper took its duplicates' sources and counters), ``merge`` (a
    duplicate archived into its keeper) or ``status`` (a lifecycle move).
    """

    namespace: str
    name: str
    action: str
    from_status: str
    to_status: str
    reason: str


@dataclass
class CurationReport:
    """What one pass over ``namespace`` changed (``dry_run``: would change), with a reason for each.

    ``notes`` say what was left alone and why (a pinned duplicate, a behavior changed meanwhile);
    ``error`` is set when the pass stopped on an error (``run_all`` goes on with the next namespace).
    """

    namespace: str
    dry_run: bool
    behaviors: int = 0
    traces_read: int = 0
    changes: list[CurationChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def _activated_at(behavior: Behavior) -> datetime | None:
    """When the behavior's history last moved it to active (``None`` if it never says)."""
    moves = [e for e in behavior.metadata.get("history", []) if isinstance(e, dict) and e.get("to") == "active"]
    try:
        at = datetime.fromisoformat(str(moves[-1].get("at"))) if moves else None
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _tasks_unused(behaviors: list[Behavior], traces: list[Trace], absorbed: dict[str, list[str]]) -> dict[str, int]:
    """``count_tasks_since_use``, counted from no earlier than each behavior's last activation.

    Retrieval offers neither candidates nor stale behaviors: one activated after such a wait (by
    support, or by a person) must not count the wait against itself and go stale on the next pass.
    A keeper was used when any duplicate it absorbed was (``absorbed``: keeper -> their names).
    """
    counts = count_tasks_since_use(behaviors, traces)
    for b in behaviors:
        activated = _activated_at(b)
        if activated is not None and b.name in counts:
            counts[b.name] = min(counts[b.name], sum(1 for t in traces if t.created_at > activated))
    for keeper, names in absorbed.items():
        counts[keeper] = min([counts[keeper], *(counts[n] for n in names if n in counts)])
    return counts


class CurationPass:
    """Consolidation, then lifecycle transitions, for one namespace (``run``) or all (``run_all``).

    ``embedder`` is the handbook's (its stored vectors are reused); with none, hashed word n-grams
    compare the behaviors, as the curator does. ``config`` is ``curation`` of the configuration.
    """

    def __init__(
        self,
        store: HandbookStore,
        embedder: Embedder | None,
        config: CurationConfig,
        *,
        max_traces: int = DEFAULT_MAX_TRACES,
        by: str = CURATION_ACTOR,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self.max_traces = max(int(max_traces), 1)
        self.by = by

    @property
    def trace_limit(self) -> int:
        """Latest traces read per namespace: enough to tell staleness, and at most ``max_traces`` more."""
        return max(self.config.lifecycle.stale_after_tasks, self.max_traces)

    def run_all(self, *, dry_run: bool = False) -> list[CurationReport]:
        """One pass over every namespace of the store; an error in one is logged and reported, not raised."""
        reports = []
        for namespace in self.store.namespaces():
            try:
                reports.append(self.run(namespace, dry_run=dry_run))
            except BehaviorMemoryError as exc:
                log.warning("curation of %r stopped: %s", namespace, exc)
                reports.append(CurationReport(namespace, dry_run, error=str(exc)))
        return reports

    def run(self, namespace: str, *, dry_run: bool = False) -> CurationReport:
        """Consolidate ``namespace``, then apply the lifecycle; with ``dry_run`` only report what would change."""
        with span("bmem.curate", {"bmem.namespace": namespace, "bmem.curate.dry_run": dry_run}) as current:
            report = self._run(namespace, dry_run=dry_run)
            figures = {"bmem.curate.behaviors": report.behaviors, "bmem.curate.changes": len(report.changes)}
            set_attributes(current, figures)
        return report

    def _run(self, namespace: str, *, dry_run: bool) -> CurationReport:
        report = CurationReport(namespace, dry_run)
        behaviors = self.store.list_behaviors(namespace)
        report.behaviors = len(behaviors)
        if not behaviors:
            return report
        state = {b.name: b for b in behaviors}  # the namespace as the merges leave it
        absorbed: dict[str, list[str]] = {}  # keeper -> the duplicates it absorbed in this pass
        clusters = find_near_duplicates(
            behaviors, self._vectors(namespace, behaviors), threshold=self.config.dedup_threshold
        )
        for cluster in clusters:
            self._merge(namespace, cluster, merge_plan(cluster), state, report, absorbed)
        self._lifecycle(namespace, list(state.values()), report, absorbed)
        if report.changes and not dry_run:
            log.info("curation of %r: %d changes", namespace, len(report.changes))
        return report

    def utility(
        self, namespace: str, *, min_samples: int | None = None, tokens: bool = True
    ) -> tuple[dict[str, UtilityEstimate], int]:
        """The measured effect of each behavior of the exposure experiment, and how many of its traces were read.

        Reads the namespace's latest ``trace_limit`` traces; with ``tokens`` the experiment's ones
        are read again with their steps (``get_trace``), since the token effect needs their usage.
        """
        listed = self.store.list_traces(namespace, limit=self.trace_limit)
        traces = [t for t in listed if WITHHELD_KEY in t.metadata]
        if tokens:
            traces = [self.store.get_trace(t.id) for t in traces]
        samples = self.config.lifecycle.utility_min_samples if min_samples is None else min_samples
        return estimate_utility(traces, min_samples=samples), len(traces)

    # --- consolidation ----------------------------------------------------------------------------
    def _vectors(self, namespace: str, behaviors: list[Behavior]) -> npt.NDArray[np.float32]:
        """The behaviors' embeddings: the stored rows when every one has its vector, else embedded now."""
        texts = [b.text for b in behaviors]
        if self.embedder is None:
            return HashingEmbedder().embed(texts)
        ids, matrix = self.store.vectors(namespace)
        row = {bid: i for i, bid in enumerate(ids)}
        if all(b.id in row for b in behaviors) and matrix.shape[1] == self.embedder.dim:
            return matrix[[row[b.id] for b in behaviors]]
        return self.embedder.embed(texts)  # some have no vector yet (or another size): nothing is written

    def _merge(
        self,
        namespace: str,
        cluster: Cluster,
        plan: MergePlan,
        state: dict[str, Behavior],
        report: CurationReport,
        absorbed: dict[str, list[str]],
    ) -> None:
        keeper = state[plan.keeper]
        merged = [t.name for t in plan.archive]
        for name in plan.skipped:
            report.notes.append(f"{name}: pinned, left beside its near-duplicate {plan.keeper}")
        if not merged:
            return
        similar = f"cosine >= {cluster.similarity:.2f}"
        to_status = plan.keeper_transition.to_status if plan.keeper_transition else keeper.status
        gained = len(set(plan.sources) - set(keeper.sources))
        moved = ", ".join(f"+{n} {c}" for c, n in plan.counter_delta.items() if n)
        absorb_reason = f"absorbed {', '.join(merged)} ({similar}): +{gained} sources" + (f", {moved}" if moved else "")
        if plan.keeper_transition is not None:
            absorb_reason += f"; {plan.keeper_transition.reason}"
        if not report.dry_run and not self._absorb(namespace, plan, absorb_reason, report):
            return
        report.changes.append(
            CurationChange(namespace, plan.keeper, "absorb", str(keeper.status), str(to_status), absorb_reason)
        )
        after = keeper.model_copy(
            update={"sources": plan.sources, **{c: int(getattr(keeper, c)) + n for c, n in plan.counter_delta.items()}}
        )
        if plan.keeper_transition is not None:  # in memory too: its history dates the activation
            after = transition(after, to_status, by=self.by, reason=plan.keeper_transition.reason)
        state[plan.keeper] = after
        for step in plan.archive:
            reason = f"{step.reason} ({similar})"
            if not report.dry_run and not self._retire(namespace, step, plan.keeper, reason, report):
                continue
            report.changes.append(
                CurationChange(namespace, step.name, "merge", str(step.from_status), str(step.to_status), reason)
            )
            state[step.name] = state[step.name].model_copy(update={"status": BehaviorStatus.ARCHIVED})
            absorbed.setdefault(plan.keeper, []).append(step.name)

    def _absorb(self, namespace: str, plan: MergePlan, reason: str, report: CurationReport) -> bool:
        """The keeper takes the members' sources (and becomes active, if planned); False if it moved away."""

        def change(b: Behavior) -> Behavior | None:
            if b.status in _RETIRED:
                return None
            sources = list(dict.fromkeys([*b.sources, *plan.sources]))
            edited = with_note(
                b.model_copy(update={"sources": sources}),
                by=self.by,
                reason=reason,
                merged=[t.name for t in plan.archive],
            )
            step = plan.keeper_transition
            if step is not None and b.status == step.from_status:
                edited = transition(edited, step.to_status, by=self.by, reason=step.reason)
            return edited

        return self._modify(namespace, plan.keeper, change, report, why="was archived or quarantined meanwhile")

    def _retire(self, namespace: str, step: Transition, keeper: str, reason: str, report: CurationReport) -> bool:
        """Archive one merged member, then add the counters it had at that moment to the keeper."""
        counters: dict[str, int] = {}

        def change(b: Behavior) -> Behavior | None:
            if b.status in _RETIRED or b.pinned:
                return None
            counters.clear()
            counters.update({c: int(getattr(b, c)) for c in sorted(COUNTERS)})
            return transition(b, BehaviorStatus.ARCHIVED, by=self.by, reason=reason, merged_into=keeper)

        if not self._modify(namespace, step.name, change, report, why="changed meanwhile; not merged"):
            return False
        for counter, by in counters.items():
            if by > 0:
                self.store.increment(namespace, [keeper], counter, by)
        return True

    # --- lifecycle --------------------------------------------------------------------------------
    def _lifecycle(
        self, namespace: str, behaviors: list[Behavior], report: CurationReport, absorbed: dict[str, list[str]]
    ) -> None:
        lifecycle = self.config.lifecycle
        traces = self.store.list_traces(namespace, limit=self.trace_limit)
        report.traces_read = len(traces)
        plan = plan_lifecycle(
            behaviors,
            tasks_since_last_use=_tasks_unused(behaviors, traces, absorbed),
            # success only: traces read without steps carry no token usage, and no decision uses it
            utility=estimate_utility(traces, min_samples=lifecycle.utility_min_samples),
            confirmed_sources={t.id for t in traces if t.outcome == Outcome.SUCCESS},
            config=lifecycle,
            min_support=self.config.min_support,
        )
        for step in plan:
            if step.from_status == BehaviorStatus.CANDIDATE and self.config.approval == "manual":
                report.notes.append(f"{step.name}: {step.reason}, but approval is manual: `bmem review` decides")
                continue
            if not report.dry_run and not self._move(namespace, step, report):
                continue
            report.changes.append(
                CurationChange(namespace, step.name, "status", str(step.from_status), str(step.to_status), step.reason)
            )

    def _move(self, namespace: str, step: Transition, report: CurationReport) -> bool:
        def change(b: Behavior) -> Behavior | None:
            if b.status != step.from_status:
                return None
            return transition(b, step.to_status, by=self.by, reason=step.reason)

        return self._modify(namespace, step.name, change, report, why=f"is no longer {step.from_status}")

    # --- writing ----------------------------------------------------------------------------------
    def _modify(
        self,
        namespace: str,
        name: str,
        change: Callable[[Behavior], Behavior | None],
        report: CurationReport,
        *,
        why: str,
    ) -> bool:
        """``modify_behavior`` that says whether ``change`` wrote (it returns None to leave the behavior)."""
        wrote = [False]

        def tracked(current: Behavior) -> Behavior | None:
            edited = change(current)
            wrote[0] = edited is not None
            return edited

        try:
            modify_behavior(self.store, namespace, name, tracked)
        except NotFoundError:
            report.notes.append(f"{name}: removed meanwhile")
            return False
        if not wrote[0]:
            report.notes.append(f"{name}: {why}")
        return wrote[0]
