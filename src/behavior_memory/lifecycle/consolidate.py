"""Consolidation: find behaviors that say the same thing, and plan how to fold them into one.

The write-time dedup of the curator compares a new candidate with the handbook as it was; two
candidates minted by parallel reflections, or behaviors that drifted together through edits, slip
past it. ``find_near_duplicates`` looks at the whole namespace: behaviors of one namespace and one
topic whose embeddings have a cosine of at least ``threshold`` are linked, and linked behaviors form
a cluster (single linkage, by union-find). ``merge_plan`` picks the keeper of a cluster and says
what to write: the keeper's sources and counters grow, the others are archived, nothing is deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..types import Behavior, BehaviorStatus
from .policy import Transition

if TYPE_CHECKING:  # numpy loads on the first call: the config imports this package (LifecycleConfig)
    import numpy as np
    import numpy.typing as npt

__all__ = ["Cluster", "MergePlan", "find_near_duplicates", "merge_plan"]

#: Statuses left out of consolidation by default: archived ones are retired, quarantined ones wait for a person.
SKIPPED_STATUSES = frozenset({BehaviorStatus.ARCHIVED, BehaviorStatus.QUARANTINED})
_COUNTERS = ("shown", "cited", "helped", "hurt")


@dataclass(frozen=True)
class Cluster:
    """Two or more near-duplicate behaviors of one namespace and topic, ordered by name.

    ``similarity`` is the weakest link that joined the cluster: every member reaches another member
    at least this similar (two members may be less similar to each other).
    """

    namespace: str
    topic: str | None
    members: tuple[Behavior, ...]
    similarity: float

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.members]


@dataclass(frozen=True)
class MergePlan:
    """What to write to fold a cluster into its keeper.

    - ``sources``: the keeper's new sources, all members' in order (keeper first), without repeats.
    - ``counter_delta``: the other members' counters, to add to the keeper with the store's atomic
      ``increment`` (never by rewriting the keeper's counters, which move under other writers).
    - ``keeper_transition``: the keeper becomes active when a merged member was active and it was
      not (a merge must not leave only a stale copy of a behavior in use); otherwise ``None``.
    - ``archive``: one transition per merged member, reason ``merged into <keeper>``.
    - ``skipped``: pinned members other than the keeper, left as they are: a person pinned each.
    """

    keeper: str
    sources: list[str]
    counter_delta: dict[str, int]
    keeper_transition: Transition | None
    archive: list[Transition]
    skipped: list[str]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def find_near_duplicates(
    behaviors: Sequence[Behavior],
    vectors: npt.NDArray[np.float32],
    *,
    threshold: float = 0.9,
    skip_statuses: frozenset[BehaviorStatus] = SKIPPED_STATUSES,
) -> list[Cluster]:
    """Clusters of behaviors with cosine >= ``threshold``, within one namespace and one topic.

    Row ``i`` of ``vectors`` (shape ``(n, d)``) is the embedding of ``behaviors[i]``; rows are
    normalised again here, so a vector that is not quite unit length does no harm. Behaviors whose
    status is in ``skip_statuses`` take no part. Clusters come ordered by namespace, topic and
    first name, so the same handbook always gives the same plan.

    >>> import numpy as np
    >>> from behavior_memory.types import Behavior
    >>> bs = [Behavior(name=f"behavior_{n}", instruction="x") for n in ("angle_sum", "angle_total", "base_change")]
    >>> v = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
    >>> [c.names for c in find_near_duplicates(bs, v)]
    [['behavior_angle_sum', 'behavior_angle_total']]
    """
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(behaviors):
        raise InvalidInputError(f"need one vector row per behavior: {len(behaviors)} behaviors, shape {matrix.shape}")
    if not -1.0 <= threshold <= 1.0:
        raise InvalidInputError(f"threshold is a cosine, in [-1, 1]; got {threshold}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms > 0, norms, 1.0)

    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, b in enumerate(behaviors):
        if b.status not in skip_statuses:
            groups.setdefault((b.namespace, b.topic), []).append(i)

    clusters = []
    for rows in groups.values():
        rows.sort(key=lambda i: behaviors[i].name)
        if len(rows) < 2:
            continue
        sims = unit[rows] @ unit[rows].T
        uf = _UnionFind(len(rows))
        links: dict[int, float] = {}
        for a, b in zip(*np.nonzero(np.triu(sims >= threshold, k=1)), strict=True):
            uf.union(int(a), int(b))
            links[int(a)] = min(links.get(int(a), 1.0), float(sims[a, b]))
        members: dict[int, list[int]] = {}
        for k in range(len(rows)):
            members.setdefault(uf.find(k), []).append(k)
        for root, ks in members.items():
            if len(ks) < 2:
                continue
            weakest = min(links[k] for k in ks if k in links)
            first = behaviors[rows[root]]
            group = tuple(behaviors[rows[k]] for k in ks)
            clusters.append(Cluster(first.namespace, first.topic, group, weakest))
    clusters.sort(key=lambda c: (c.namespace, c.topic or "", c.topic is not None, c.names[0]))
    return clusters


def _keeper_key(b: Behavior) -> tuple[bool, int, int, float, str]:
    return (not b.pinned, -(b.helped + b.hurt), -b.cited, b.created_at.timestamp(), b.name)


def merge_plan(cluster: Cluster) -> MergePlan:
    """Fold a cluster into one keeper: pinned first, then most evidence, most cited, oldest, by name.

    >>> from behavior_memory.types import Behavior
    >>> a = Behavior(name="behavior_angle_sum", instruction="x", sources=["t1"], helped=3, shown=9)
    >>> b = Behavior(name="behavior_angle_total", instruction="x", sources=["t2", "t1"], helped=1, shown=4)
    >>> plan = merge_plan(Cluster("default", None, (a, b), 0.95))
    >>> plan.keeper, plan.sources, plan.counter_delta
    ('behavior_angle_sum', ['t1', 't2'], {'shown': 4, 'cited': 0, 'helped': 1, 'hurt': 0})
    >>> plan.archive[0].reason
    'merged into behavior_angle_sum'
    """
    ordered = sorted(cluster.members, key=_keeper_key)
    keeper, rest = ordered[0], ordered[1:]
    skipped = [b for b in rest if b.pinned]
    merged = [b for b in rest if not b.pinned]

    sources = list(dict.fromkeys(s for b in (keeper, *merged) for s in b.sources))
    delta = {c: sum(int(getattr(b, c)) for b in merged) for c in _COUNTERS}
    keeper_transition = None
    if keeper.status != BehaviorStatus.ACTIVE and any(b.status == BehaviorStatus.ACTIVE for b in merged):
        keeper_transition = Transition(
            keeper.name, keeper.status, BehaviorStatus.ACTIVE, "absorbed an active duplicate in a merge"
        )
    archive = [
        Transition(b.name, b.status, BehaviorStatus.ARCHIVED, f"merged into {keeper.name}")
        for b in sorted(merged, key=lambda b: b.name)
    ]
    return MergePlan(
        keeper=keeper.name,
        sources=sources,
        counter_delta=delta,
        keeper_transition=keeper_transition,
        archive=archive,
        skipped=sorted(b.name for b in skipped),
    )
