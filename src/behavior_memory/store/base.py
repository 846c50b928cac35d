"""The store contract: ``BehaviorStore``, ``TraceStore`` and ``MetaStore``, together ``HandbookStore``.

Every store implements all three (``SQLiteStore``, the default, and ``InMemoryStore`` for tests and
benches); ``tests/conformance/test_store_contract.py`` runs the same checks against each.
The rules a store must keep, beyond each method's docstring:

- Namespaces: behavior methods take the namespace explicitly and never answer across namespaces;
  a behavior's name is unique within its namespace only.
- Errors: a missing record raises ``NotFoundError``; a duplicate name raises ``InvalidBehaviorError``;
  vendor errors are wrapped in ``StoreError`` (or a subclass) at the store's boundary.
- Copies: what a store returns is the caller's; changing it changes nothing stored.
- Vectors are float32, L2-normalised by the caller, and stored beside the behavior they embed.
- Threads and processes: every method is safe to call from many at once. Counters move only by
  atomic increments; an edit is refused (``ConflictError``) when the behavior changed since it was
  read, so no edit, merge or counter is ever lost (``store.edits.modify_behavior`` re-reads and retries).

``ChangeFeed`` is what lets retrieval follow a large handbook without rebuilding: which behaviors
changed since a change token, and the columns retrieval needs, without a pydantic object per row.
The stores shipped here implement it; for another store retrieval falls back to ``list_behaviors``
and ``vectors`` (``default_retrieval_rows``) and to rebuilding off the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from ..types import Behavior, BehaviorStatus, ReflectionStatus, Trace

if TYPE_CHECKING:  # numpy is only needed to spell the types; importing the contract stays cheap
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "COUNTERS",
    "FEED_MAX_IDS",
    "TRACE_UPDATABLE_FIELDS",
    "BehaviorStore",
    "ChangeFeed",
    "Changes",
    "CounterName",
    "HandbookStore",
    "MetaStore",
    "RetrievalRows",
    "TraceStore",
    "Vector",
    "Vectors",
    "default_retrieval_rows",
]

#: One behavior's embedding.
Vector: TypeAlias = "npt.NDArray[np.float32]"
#: ``(ids, matrix)``: row ``i`` of the float32 matrix is the vector of behavior ``ids[i]``.
Vectors: TypeAlias = "tuple[list[str], npt.NDArray[np.float32]]"
CounterName = str  # one of COUNTERS
#: ``(token, changed_ids, deleted_ids)``: what ``ChangeFeed.changes_since`` returns.
Changes: TypeAlias = "tuple[int, list[str], list[str]]"

#: A write that touches more behaviors than this is not itemised in the change feed: the feed's
#: floor moves past it and followers rebuild (a re-embedding rewrites every vector at once).
FEED_MAX_IDS = 10_000

#: The usage counters of a behavior that ``increment`` may move.
COUNTERS = frozenset({"shown", "cited", "helped", "hurt"})

#: The trace fields ``update_trace_fields`` may change; the rest (id, namespace, task, steps,
#: created_at) are fixed once the trace is saved.
TRACE_UPDATABLE_FIELDS = frozenset(
    {
        "outcome",
        "score",
        "feedback",
        "cited",
        "shown",
        "reflection_status",
        "reflection_error",
        "reflection_attempts",
        "minted",
        "metadata",
        "answer",
        "finished_at",
    }
)


@runtime_checkable
class BehaviorStore(Protocol):
    """Behaviors and their vectors, one namespace at a time."""

    def put_behavior(self, behavior: Behavior, vector: Vector | None = None) -> Behavior:
        """Insert a new behavior (with its vector, if any) and return it.

        A behavior with the same name in the same namespace raises ``InvalidBehaviorError``.
        """
        ...

    def put_behaviors(self, items: Sequence[tuple[Behavior, Vector | None]]) -> list[Behavior]:
        """Insert many behaviors in one transaction: all of them, or (on any error) none."""
        ...

    def get_behavior(self, namespace: str, key: str) -> Behavior:
        """The behavior of ``namespace`` whose id or name is ``key``; raises ``NotFoundError``."""
        ...

    def update_behavior(self, behavior: Behavior, vector: Vector | None = None) -> Behavior:
        """Replace the editable fields of the behavior with ``behavior.id`` in ``behavior.namespace``.

        Optimistic concurrency: only when the stored version is still ``behavior.version``; else
        ``ConflictError`` and nothing changes. The counters and ``last_used_at`` are never written
        here (they move by ``increment``). The stored version becomes ``behavior.version + 1`` and
        ``updated_at`` now; the result is what is stored (current counters included). The vector
        is replaced when given and kept otherwise. Raises ``NotFoundError`` when no behavior has
        that id there, ``InvalidBehaviorError`` when the new name is taken in the namespace.
        """
        ...

    def set_vectors(self, namespace: str, vectors: dict[str, Vector]) -> None:
        """Replace the vectors of the given behavior ids (when the embedder changed); unknown ids are ignored."""
        ...

    def delete_behavior(self, namespace: str, key: str) -> None:
        """Remove the behavior whose id or name is ``key``, with its vector; raises ``NotFoundError``."""
        ...

    def list_behaviors(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
        limit: int | None = None,
    ) -> list[Behavior]:
        """Behaviors of one namespace ordered by name, optionally only these statuses and this topic."""
        ...

    def count_behaviors(self, namespace: str | None = None) -> int:
        """How many behaviors ``namespace`` holds; every namespace's when ``None``."""
        ...

    def vectors(self, namespace: str) -> Vectors:
        """The stored vectors of the namespace, rows in the order of the ids, ids ordered by behavior name.

        Behaviors without a vector are left out; when vectors of several sizes are stored (an
        embedder change under way) only those of the most common size are. An empty namespace
        gives ``([], <0x0 matrix>)``.
        """
        ...

    def increment(self, namespace: str, names: Iterable[str], counter: CounterName, by: int = 1) -> None:
        """Add ``by`` to ``counter`` of each distinct named behavior, atomically.

        Unknown names are ignored; a counter not in ``COUNTERS`` raises ``ValueError``. ``shown``
        and ``cited`` also set ``last_used_at`` to now. Neither the version nor the change token
        moves: counters are statistics, and moving the token would rebuild every retrieval index
        after each task.
        """
        ...

    def change_token(self, namespace: str) -> int:
        """A number that grows with every write to the namespace's behaviors, counters excepted.

        ``0`` for a namespace never written. Caches compare it to know when to rebuild.
        """
        ...

    def namespaces(self) -> list[str]:
        """Every namespace holding at least one behavior or trace, sorted."""
        ...


@runtime_checkable
class TraceStore(Protocol):
    """Traces: what each task did, and where its reflection stands."""

    def put_trace(self, trace: Trace) -> Trace:
        """Insert or replace a trace, steps included, durably; a replaced trace loses its claim."""
        ...

    def save_trace(self, trace: Trace, *, timeout_s: float | None = None) -> bool:
        """Record a finished task: ``put_trace`` and, in the same transaction, one more ``shown``
        and ``cited`` for the behaviors the trace names, only when its id is new (a replayed trace
        counts once). Returns whether the id was new.

        ``timeout_s`` bounds the wait for another writer: past it, ``StoreBusyError`` and nothing written.
        """
        ...

    def get_trace(self, trace_id: str) -> Trace:
        """The trace with its steps; raises ``NotFoundError``."""
        ...

    def update_trace_fields(self, trace_id: str, **fields: Any) -> None:
        """Change a few top-level fields without rewriting the steps.

        Only ``TRACE_UPDATABLE_FIELDS`` may change (others raise ``ValueError``); a missing trace
        raises ``NotFoundError``. Setting ``reflection_status`` to anything but running ends the
        trace's claim.
        """
        ...

    def list_traces(
        self,
        namespace: str | None = None,
        *,
        status: ReflectionStatus | None = None,
        limit: int = 50,
    ) -> list[Trace]:
        """Up to ``limit`` traces, newest first (ties by id), without their steps (``get_trace`` has them).

        Only ``namespace``'s when given, every namespace's when ``None``; only those with this
        reflection status when given.
        """
        ...

    def count_traces(
        self,
        namespace: str | None = None,
        *,
        status: ReflectionStatus | None = None,
        since: datetime | None = None,
    ) -> int:
        """How many traces ``list_traces`` with no limit would return; only those created after
        ``since`` when given (how many tasks ran since a behavior was last used)."""
        ...

    def claim_pending_traces(self, limit: int, *, lease_s: float = 600.0) -> list[Trace]:
        """Atomically mark up to ``limit`` claimable traces as running and return them, oldest first.

        Claimable: pending, or running with a claim older than ``lease_s`` seconds (the process
        that claimed it died). Claiming adds one to ``reflection_attempts``. Traces of every
        namespace are claimed; two concurrent callers never get the same trace.
        """
        ...

    def count_claimable(self, *, lease_s: float = 600.0) -> int:
        """How many traces ``claim_pending_traces`` could claim now (every namespace)."""
        ...

    def requeue_traces(
        self, namespace: str | None = None, *, error_contains: str | None = None, before: datetime | None = None
    ) -> int:
        """Put failed traces back to pending with no attempts used; returns how many.

        Only ``namespace``'s when given; only those whose ``reflection_error`` contains
        ``error_contains``, or that were created before ``before``, when given.
        """
        ...


@runtime_checkable
class MetaStore(Protocol):
    """A few settings of the store itself (which embedder made the vectors), shared by all namespaces."""

    def get_meta(self, key: str) -> str | None:
        """The value set for ``key``, or ``None``."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Set ``key`` to ``value``, replacing any previous value."""
        ...


@runtime_checkable
class HandbookStore(BehaviorStore, TraceStore, MetaStore, Protocol):
    """Durable home of behaviors (with their vectors), traces and meta: what the core needs."""

    def close(self) -> None:
        """Release connections; the store is not used after this."""
        ...


@dataclass(frozen=True, eq=False)
class RetrievalRows:
    """What retrieval needs of some behaviors of one namespace, in columns: row ``i`` of each is one behavior.

    ``records`` are the store's own rows, opaque to retrieval; ``materialize`` turns one into a
    ``Behavior``, which retrieval does only for the behaviors a query returns (a namespace of a
    million behaviors loads without a million pydantic objects). A record may be ``None`` when
    ``retrieval_rows`` was asked for ``records=False``: read it later by id. ``vectors`` is ``(ids, matrix)``
    as ``BehaviorStore.vectors`` gives it, when asked for, else ``None``.
    """

    ids: list[str]
    names: list[str]
    instructions: list[str]
    topics: list[str | None]
    pinned: list[bool]
    records: Sequence[Any]
    materialize: Callable[[Any], Behavior]
    vectors: Vectors | None = None

    def __len__(self) -> int:
        return len(self.ids)


@runtime_checkable
class ChangeFeed(Protocol):
    """Which behaviors of a namespace changed since a change token, and retrieval's columns of them."""

    def changes_since(self, namespace: str, token: int) -> Changes | None:
        """``(token, changed_ids, deleted_ids)`` for every write to the namespace's behaviors after ``token``.

        ``token`` in the result is the namespace's ``change_token`` now (``token`` itself when
        nothing changed). A behavior written and then deleted is only in ``deleted_ids``; one
        deleted and written again only in ``changed_ids``; ids may name behaviors that no longer
        match (reading them again tells). ``None`` when the feed no longer reaches back to
        ``token`` (it keeps recent writes only, and never itemises a write of more than
        ``FEED_MAX_IDS`` behaviors) or when ``token`` is ahead of the store: then rebuild.
        Counters never appear (they do not move the token).
        """
        ...

    def retrieval_rows(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        ids: Collection[str] | None = None,
        with_vectors: bool = False,
        records: bool = True,
    ) -> RetrievalRows:
        """The behaviors of ``namespace`` (only these statuses, only these ids, when given) as columns.

        Rows come in no particular order. With ``with_vectors`` the result carries their vectors
        under the rules of ``BehaviorStore.vectors``. ``records=False`` is a hint that only the
        columns are needed now (a store may then leave ``records`` as ``None`` each and read less).
        """
        ...


def _identity(behavior: Behavior) -> Behavior:
    return behavior


def default_retrieval_rows(
    store: BehaviorStore,
    namespace: str,
    *,
    statuses: Iterable[BehaviorStatus] | None = None,
    ids: Collection[str] | None = None,
    with_vectors: bool = False,
    records: bool = True,
) -> RetrievalRows:
    """``ChangeFeed.retrieval_rows`` from ``list_behaviors`` and ``vectors``: for any store, at their cost
    (the records are the behaviors themselves, whatever ``records`` says)."""
    wanted = None if ids is None else set(ids)
    behaviors = [
        b
        for b in store.list_behaviors(namespace, statuses=None if statuses is None else list(statuses))
        if wanted is None or b.id in wanted
    ]
    vectors: Vectors | None = None
    if with_vectors:
        vector_ids, matrix = store.vectors(namespace)
        keep = {b.id for b in behaviors}
        picks = [i for i, vector_id in enumerate(vector_ids) if vector_id in keep]
        if len(picks) != len(vector_ids):
            vector_ids, matrix = [vector_ids[i] for i in picks], matrix[picks]
        vectors = (vector_ids, matrix)
    return RetrievalRows(
        ids=[b.id for b in behaviors],
        names=[b.name for b in behaviors],
        instructions=[b.instruction for b in behaviors],
        topics=[b.topic for b in behaviors],
        pinned=[b.pinned for b in behaviors],
        records=behaviors,
        materialize=_identity,
        vectors=vectors,
    )
