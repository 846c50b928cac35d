"""``plan_lifecycle``: which behaviors change status, and why. A plan, never a write; never a delete.

The statuses and the moves curation makes on its own::

    candidate ──(confirmed)──▶ active ──(unused)──▶ stale
                                 ▲  │                 │
                                 │  └──(harmful)──┐   │
                                 └───(used again)─┼───┘
                                                  ▼
                                              archived  ◀──(harmful)── stale

- candidate -> active: confirmed by ``min_support`` distinct source traces (the curator's
  ``curation.min_support``: one number for both), or minted from a trace whose outcome was a
  confirmed success (``confirmed_sources``).
- active -> stale: not chosen for ``stale_after_tasks`` tasks of its namespace.
- stale -> active: chosen again within that window (``revive_stale_on_use``).
- active or stale -> archived: the counters show harm (the lower bound of the hurt rate exceeds
  ``archive_harm_lcb`` over at least ``archive_min_evidence`` judged tasks), or the measured utility
  says showing it lowers success (enough data, the whole interval below 0).

Pinned behaviors never go stale or archived; quarantined ones are left to a person; archived ones
stay archived. Curation never deletes: archived behaviors keep their counters and provenance.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError
from ..types import Behavior, BehaviorStatus, Trace
from .scores import score
from .utility import WITHHELD_KEY, UtilityEstimate

__all__ = ["LifecycleConfig", "Transition", "count_tasks_since_use", "plan_lifecycle"]


class LifecycleConfig(BaseModel):
    """When behaviors move between statuses, and the randomised-exposure experiment.

    The support that activates a candidate is not here: it is ``curation.min_support``, the same
    number the curator applies when a reflection merges into a candidate (``plan_lifecycle``'s
    ``min_support``).
    """

    model_config = ConfigDict(extra="forbid")

    stale_after_tasks: int = Field(
        200, ge=1, description="an active behavior not chosen for this many tasks of its namespace becomes stale"
    )
    archive_min_evidence: int = Field(
        5, ge=1, description="judged tasks (helped + hurt) needed before the counters can archive a behavior"
    )
    archive_harm_lcb: float = Field(
        0.5, ge=0.0, le=1.0, description="archive when the 95% lower bound of the hurt rate exceeds this"
    )
    revive_stale_on_use: bool = Field(True, description="a stale behavior chosen again becomes active")
    withhold_epsilon: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="probability that a chosen behavior is withheld from a task to measure its effect; 0 turns it off",
    )
    utility_min_samples: int = Field(
        10, ge=1, description="traces needed in each arm (shown, withheld) before utility draws a verdict"
    )


@dataclass(frozen=True)
class Transition:
    """One planned status change: apply it with the store's update, and keep ``reason`` in the history."""

    name: str
    from_status: BehaviorStatus
    to_status: BehaviorStatus
    reason: str


def _one_namespace(behaviors: Sequence[Behavior]) -> None:
    namespaces = sorted({b.namespace for b in behaviors})
    if len(namespaces) > 1:
        raise InvalidInputError(f"plan one namespace at a time (names are unique within one), got {namespaces}")


def count_tasks_since_use(behaviors: Iterable[Behavior], traces: Iterable[Trace]) -> dict[str, int]:
    """For each behavior, the traces of its namespace since it was last chosen (or since it was made).

    "Chosen" means shown, cited, or withheld by the utility experiment (retrieval still picked it).
    Pass the namespace's latest traces; at least ``stale_after_tasks`` of them are enough, since a
    count only needs to reach the limit.
    """
    items = list(behaviors)
    _one_namespace(items)
    ordered = sorted(traces, key=lambda t: t.created_at)
    if items and (strays := sorted({t.namespace for t in ordered} - {items[0].namespace})):
        raise InvalidInputError(f"traces of {strays} given for the behaviors of {items[0].namespace!r}")
    last_chosen: dict[str, int] = {}
    for i, trace in enumerate(ordered):
        withheld = trace.metadata.get(WITHHELD_KEY)
        chosen = {*trace.shown, *trace.cited, *(withheld if isinstance(withheld, list) else ())}
        for name in chosen:
            last_chosen[name] = i
    times = [t.created_at for t in ordered]
    counts = {}
    for b in items:
        if b.name in last_chosen:
            counts[b.name] = len(ordered) - 1 - last_chosen[b.name]
        else:
            counts[b.name] = len(ordered) - bisect_right(times, b.created_at)
    return counts


def _harm_reason(behavior: Behavior, utility: UtilityEstimate | None, config: LifecycleConfig) -> str | None:
    s = score(behavior)
    if s.evidence >= config.archive_min_evidence and s.harm > config.archive_harm_lcb:
        return f"hurt {s.hurt} of {s.evidence} (lower bound {s.harm:.2f} > {config.archive_harm_lcb:g})"
    if utility is not None and utility.hurts_success and utility.success is not None:
        e = utility.success
        return (
            f"showing it lowered success by {-100 * e.estimate:.1f} points (95% interval {-100 * e.high:.1f} "
            f"to {-100 * e.low:.1f}; shown {utility.n_shown}, withheld {utility.n_withheld})"
        )
    return None


def _activation_reason(behavior: Behavior, confirmed_sources: Collection[str], min_support: int) -> str | None:
    support = len(set(behavior.sources))
    if support >= min_support:
        return f"confirmed by {support} source traces (min {min_support})"
    confirmed = [s for s in behavior.sources if s in confirmed_sources]
    if confirmed:
        return f"minted from a successful trace ({confirmed[0]})"
    return None


def _plan_one(
    b: Behavior,
    unused: int | None,
    utility: UtilityEstimate | None,
    confirmed_sources: Collection[str],
    config: LifecycleConfig,
    min_support: int,
) -> Transition | None:
    def to(status: BehaviorStatus, reason: str) -> Transition:
        return Transition(b.name, b.status, status, reason)

    limit = config.stale_after_tasks
    if b.status == BehaviorStatus.CANDIDATE:
        reason = _activation_reason(b, confirmed_sources, min_support)
        return to(BehaviorStatus.ACTIVE, reason) if reason else None
    if b.status not in (BehaviorStatus.ACTIVE, BehaviorStatus.STALE):
        return None  # quarantined waits for a person; archived stays archived
    if not b.pinned and (reason := _harm_reason(b, utility, config)):
        return to(BehaviorStatus.ARCHIVED, reason)
    if unused is None:
        return None  # the caller did not count this one: no evidence either way
    if b.status == BehaviorStatus.ACTIVE and not b.pinned and unused >= limit:
        return to(BehaviorStatus.STALE, f"unused for {unused} tasks (limit {limit})")
    if b.status == BehaviorStatus.STALE and config.revive_stale_on_use and unused < limit:
        return to(BehaviorStatus.ACTIVE, f"used again {unused} tasks ago (limit {limit})")
    return None


def plan_lifecycle(
    behaviors: Iterable[Behavior],
    *,
    tasks_since_last_use: Mapping[str, int],
    utility: Mapping[str, UtilityEstimate] | None = None,
    confirmed_sources: Collection[str] = frozenset(),
    config: LifecycleConfig | None = None,
    min_support: int = 2,
) -> list[Transition]:
    """The status changes the rules call for, one per behavior at most, ordered by name.

    ``behaviors`` are those of one namespace. ``tasks_since_last_use`` maps a name to the tasks of
    the namespace since it was last chosen (``count_tasks_since_use`` computes it); a name missing
    from it neither goes stale nor revives. ``utility`` is ``estimate_utility``'s result, if the
    experiment runs. ``confirmed_sources`` are ids of traces whose outcome was success.
    ``min_support`` is ``curation.min_support``: distinct source traces that make a candidate active.

    >>> from behavior_memory.types import Behavior
    >>> old = Behavior(name="behavior_old", instruction="x")
    >>> [t] = plan_lifecycle([old], tasks_since_last_use={"behavior_old": 240})
    >>> t.name, t.to_status.value, t.reason
    ('behavior_old', 'stale', 'unused for 240 tasks (limit 200)')
    """
    config = config or LifecycleConfig()
    if min_support < 1:
        raise InvalidInputError(f"min_support must be at least 1, got {min_support}")
    items = sorted(behaviors, key=lambda b: b.name)
    _one_namespace(items)
    utility = utility or {}
    plan = []
    for b in items:
        step = _plan_one(
            b, tasks_since_last_use.get(b.name), utility.get(b.name), confirmed_sources, config, min_support
        )
        if step is not None:
            plan.append(step)
    return plan
