"""The lifecycle of behaviors: scores, status changes, consolidation and measured utility.

Pure functions over ``Behavior`` and ``Trace`` objects; they plan, the store and ``bmem curate``
write. One pass of curation over a namespace, in the order the parts are meant to run::

    from behavior_memory.lifecycle import (
        count_tasks_since_use, estimate_utility, find_near_duplicates, merge_plan, plan_lifecycle,
    )

    behaviors = store.list_behaviors(ns)
    ids, matrix = store.vectors(ns)                       # rows in the order of ids
    row = {bid: i for i, bid in enumerate(ids)}
    with_vec = [b for b in behaviors if b.id in row]
    for cluster in find_near_duplicates(with_vec, matrix[[row[b.id] for b in with_vec]]):
        plan = merge_plan(cluster)                        # sources, counter delta, archive transitions
        ...                                               # write it, then re-read the behaviors
    # at least stale_after_tasks of the latest; list_traces leaves out steps, and the token effect
    # needs them (get_trace), else utility reports the success effect alone
    traces = [store.get_trace(t.id) for t in store.list_traces(ns, limit=...)]
    plan = plan_lifecycle(
        behaviors,
        tasks_since_last_use=count_tasks_since_use(behaviors, traces),
        utility=estimate_utility(traces, min_samples=config.utility_min_samples),
        confirmed_sources={t.id for t in traces if t.outcome == "success"},
        config=config,
    )
    for t in plan: ...                                    # set t.name's status to t.to_status, keep t.reason

Nothing here deletes: a merged or harmful behavior is archived with its counters and provenance.
"""

from __future__ import annotations

from .consolidate import Cluster, MergePlan, find_near_duplicates, merge_plan
from .intervals import Difference, newcombe_difference, welch_difference, wilson_interval, wilson_lower_bound
from .policy import LifecycleConfig, Transition, count_tasks_since_use, plan_lifecycle
from .scores import BehaviorScores, score
from .utility import (
    UTILITY_TABLE_COLUMNS,
    WITHHELD_KEY,
    UtilityEstimate,
    estimate_utility,
    format_utility_table,
    withhold,
)

__all__ = [
    "UTILITY_TABLE_COLUMNS",
    "WITHHELD_KEY",
    "BehaviorScores",
    "Cluster",
    "Difference",
    "LifecycleConfig",
    "MergePlan",
    "Transition",
    "UtilityEstimate",
    "count_tasks_since_use",
    "estimate_utility",
    "find_near_duplicates",
    "format_utility_table",
    "merge_plan",
    "newcombe_difference",
    "plan_lifecycle",
    "score",
    "welch_difference",
    "wilson_interval",
    "wilson_lower_bound",
    "withhold",
]
