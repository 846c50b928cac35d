"""``InMemoryStore``: the whole store contract in dicts, for tests, benches and throwaway runs.

Nothing survives the process. It keeps every rule of ``store.base`` (namespaces, errors, copies,
ordering, claims) so code tested against it behaves the same on SQLite; one lock makes every
method atomic, which is all the thread safety a dict needs.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ..errors import ConflictError, InvalidBehaviorError, NotFoundError
from ..types import Behavior, BehaviorStatus, ReflectionStatus, Trace, utcnow
from .base import (
    COUNTERS,
    FEED_MAX_IDS,
    TRACE_UPDATABLE_FIELDS,
    Changes,
    CounterName,
    RetrievalRows,
    Vector,
    Vectors,
    default_retrieval_rows,
)

__all__ = ["InMemoryStore"]


@dataclass
class _Namespace:
    behaviors: dict[str, Behavior] = field(default_factory=dict)  # id -> behavior
    ids_by_name: dict[str, str] = field(default_factory=dict)  # a name index keeps lookups O(1) at 100k behaviors
    vectors: dict[str, Vector] = field(default_factory=dict)  # id -> vector
    token: int = 0
    feed: list[tuple[int, str, bool]] = field(default_factory=list)  # (token, id, deleted), oldest first
    feed_floor: int = 0  # the oldest token the feed reaches back to

    def bump(self, changed: Collection[str] = (), deleted: Collection[str] = ()) -> None:
        """Move the token and log which behaviors moved it (the change feed, as SQLite keeps it)."""
        self.token += 1
        if len(changed) + len(deleted) > FEED_MAX_IDS:
            self.feed.clear()
            self.feed_floor = self.token
            return
        self.feed += [(self.token, i, False) for i in changed] + [(self.token, i, True) for i in deleted]
        if len(self.feed) > 4 * FEED_MAX_IDS:  # keep the newer half
            cut = self.feed[len(self.feed) // 2][0]
            self.feed = [entry for entry in self.feed if entry[0] > cut]
            self.feed_floor = max(self.feed_floor, cut)

    def find(self, namespace: str, key: str) -> Behavior:
        behavior_id = key if key in self.behaviors else self.ids_by_name.get(key)
        if behavior_id is None:
            raise NotFoundError(f"no behavior {key!r} in namespace {namespace!r}")
        return self.behaviors[behavior_id]


@dataclass
class _StoredTrace:
    trace: Trace
    claimed_at: float | None = None  # time.time() of the claim while reflection_status is running


def _copy_behavior(behavior: Behavior) -> Behavior:
    # Behaviors hold scalars, two lists and a JSON dict: copying those is far cheaper than a deep copy.
    return behavior.model_copy(
        update={
            "tags": list(behavior.tags),
            "sources": list(behavior.sources),
            "metadata": copy.deepcopy(behavior.metadata) if behavior.metadata else {},
        }
    )


def _duplicate(behavior: Behavior) -> InvalidBehaviorError:
    return InvalidBehaviorError(
        f"a behavior named {behavior.name!r} already exists in namespace {behavior.namespace!r}"
    )


class InMemoryStore:
    """A ``HandbookStore`` held in this process's memory (see the module docstring)."""

    def __init__(self) -> None:
        self._namespaces: dict[str, _Namespace] = {}
        self._traces: dict[str, _StoredTrace] = {}
        self._meta: dict[str, str] = {}
        self._lock = threading.RLock()

    def _space(self, namespace: str) -> _Namespace:
        return self._namespaces.setdefault(namespace, _Namespace())

    def _read(self, namespace: str) -> _Namespace:
        return self._namespaces.get(namespace) or _Namespace()  # reads leave no trace of the namespace

    # --- behaviors ---------------------------------------------------------------------------
    def put_behavior(self, behavior: Behavior, vector: Vector | None = None) -> Behavior:
        return self.put_behaviors([(behavior, vector)])[0]

    def put_behaviors(self, items: Sequence[tuple[Behavior, Vector | None]]) -> list[Behavior]:
        with self._lock:
            # Check the whole batch before writing any of it: all or nothing.
            taken: set[tuple[str, str]] = set()
            for behavior, _ in items:
                key = (behavior.namespace, behavior.name)
                space = self._namespaces.get(behavior.namespace)
                if key in taken or (space is not None and behavior.name in space.ids_by_name):
                    raise _duplicate(behavior)
                taken.add(key)
            touched: dict[str, list[str]] = {}
            for behavior, vector in items:
                space = self._space(behavior.namespace)
                space.behaviors[behavior.id] = _copy_behavior(behavior)
                space.ids_by_name[behavior.name] = behavior.id
                if vector is not None:
                    space.vectors[behavior.id] = np.array(vector, dtype=np.float32)
                touched.setdefault(behavior.namespace, []).append(behavior.id)
            for namespace, ids in touched.items():
                self._namespaces[namespace].bump(ids)
        return [behavior for behavior, _ in items]

    def get_behavior(self, namespace: str, key: str) -> Behavior:
        with self._lock:
            return _copy_behavior(self._read(namespace).find(namespace, key))

    def update_behavior(self, behavior: Behavior, vector: Vector | None = None) -> Behavior:
        updated = behavior.model_copy(update={"version": behavior.version + 1, "updated_at": utcnow()})
        with self._lock:
            space = self._read(updated.namespace)
            old = space.behaviors.get(updated.id)
            if old is None:
                raise NotFoundError(f"no behavior {updated.id!r} in namespace {updated.namespace!r}")
            if old.version != behavior.version:
                raise ConflictError(
                    f"behavior {updated.name!r} changed since it was read (version {behavior.version}, "
                    f"now {old.version}); read it again and retry",
                    version=old.version,
                )
            if space.ids_by_name.get(updated.name, updated.id) != updated.id:
                raise _duplicate(updated)
            # Counters and the last use move only by increment: keep the stored ones.
            updated = updated.model_copy(update={name: getattr(old, name) for name in (*COUNTERS, "last_used_at")})
            del space.ids_by_name[old.name]
            space.ids_by_name[updated.name] = updated.id
            space.behaviors[updated.id] = _copy_behavior(updated)
            if vector is not None:
                space.vectors[updated.id] = np.array(vector, dtype=np.float32)
            space.bump([updated.id])
        return _copy_behavior(updated)

    def set_vectors(self, namespace: str, vectors: dict[str, Vector]) -> None:
        with self._lock:
            space = self._space(namespace)
            for behavior_id, vector in vectors.items():
                if behavior_id in space.behaviors:
                    space.vectors[behavior_id] = np.array(vector, dtype=np.float32)
            space.bump([i for i in vectors if i in space.behaviors])

    def delete_behavior(self, namespace: str, key: str) -> None:
        with self._lock:
            space = self._read(namespace)
            behavior = space.find(namespace, key)
            del space.behaviors[behavior.id]
            del space.ids_by_name[behavior.name]
            space.vectors.pop(behavior.id, None)
            space.bump(deleted=[behavior.id])

    def list_behaviors(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
        limit: int | None = None,
    ) -> list[Behavior]:
        wanted = None if statuses is None else {BehaviorStatus(s) for s in statuses}
        with self._lock:
            space = self._read(namespace)
            found = [
                _copy_behavior(space.behaviors[space.ids_by_name[name]])
                for name in sorted(space.ids_by_name)
                if (wanted is None or space.behaviors[space.ids_by_name[name]].status in wanted)
                and (topic is None or space.behaviors[space.ids_by_name[name]].topic == topic)
            ]
        return found if limit is None else found[:limit]

    def count_behaviors(self, namespace: str | None = None) -> int:
        with self._lock:
            if namespace is not None:
                return len(self._read(namespace).behaviors)
            return sum(len(space.behaviors) for space in self._namespaces.values())

    def vectors(self, namespace: str) -> Vectors:
        with self._lock:
            space = self._read(namespace)
            ids = [space.ids_by_name[name] for name in sorted(space.ids_by_name)]
            rows = [(i, space.vectors[i]) for i in ids if i in space.vectors]
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        sizes = Counter(len(vector) for _, vector in rows)
        if len(sizes) > 1:  # mixed embedders: keep the most common size, the rest will be re-embedded
            common = sizes.most_common(1)[0][0]
            rows = [row for row in rows if len(row[1]) == common]
        return [i for i, _ in rows], np.stack([vector for _, vector in rows]).astype(np.float32)

    def increment(self, namespace: str, names: Iterable[str], counter: CounterName, by: int = 1) -> None:
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r}; expected one of {sorted(COUNTERS)}")
        with self._lock:
            self._increment(namespace, set(names), counter, by)

    def _increment(self, namespace: str, names: Iterable[str], counter: CounterName, by: int) -> None:
        space = self._read(namespace)
        now = utcnow()
        for name in names:
            behavior_id = space.ids_by_name.get(name)
            if behavior_id is None:
                continue
            behavior = space.behaviors[behavior_id]
            update: dict[str, Any] = {counter: getattr(behavior, counter) + by}
            if counter in ("shown", "cited"):
                update["last_used_at"] = now
            space.behaviors[behavior_id] = behavior.model_copy(update=update)

    def change_token(self, namespace: str) -> int:
        with self._lock:
            space = self._namespaces.get(namespace)
            return 0 if space is None else space.token

    def changes_since(self, namespace: str, token: int) -> Changes | None:
        with self._lock:
            space = self._read(namespace)
            if token > space.token or token < space.feed_floor:
                return None
            last = {i: deleted for t, i, deleted in space.feed if t > token}
            return space.token, [i for i, d in last.items() if not d], [i for i, d in last.items() if d]

    def retrieval_rows(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        ids: Collection[str] | None = None,
        with_vectors: bool = False,
        records: bool = True,
    ) -> RetrievalRows:
        """The contract's default (``list_behaviors`` and ``vectors``): the behaviors are objects here already."""
        return default_retrieval_rows(self, namespace, statuses=statuses, ids=ids, with_vectors=with_vectors)

    def namespaces(self) -> list[str]:
        with self._lock:
            found = {name for name, space in self._namespaces.items() if space.behaviors}
            found.update(stored.trace.namespace for stored in self._traces.values())
        return sorted(found)

    # --- traces ------------------------------------------------------------------------------
    def put_trace(self, trace: Trace) -> Trace:
        with self._lock:
            self._traces[trace.id] = _StoredTrace(trace.model_copy(deep=True))
        return trace

    def save_trace(self, trace: Trace, *, timeout_s: float | None = None) -> bool:
        with self._lock:  # one lock, never held long: the budget cannot run out here
            fresh = trace.id not in self._traces
            self._traces[trace.id] = _StoredTrace(trace.model_copy(deep=True))
            if fresh:
                self._increment(trace.namespace, set(trace.shown), "shown", 1)
                self._increment(trace.namespace, set(trace.cited), "cited", 1)
        return fresh

    def _stored(self, trace_id: str) -> _StoredTrace:
        stored = self._traces.get(trace_id)
        if stored is None:
            raise NotFoundError(f"no trace {trace_id!r}")
        return stored

    def get_trace(self, trace_id: str) -> Trace:
        with self._lock:
            return self._stored(trace_id).trace.model_copy(deep=True)

    def update_trace_fields(self, trace_id: str, **fields: Any) -> None:
        unknown = set(fields) - TRACE_UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"cannot update trace fields {sorted(unknown)}")
        with self._lock:
            stored = self._stored(trace_id)
            # Validate through the model, as a database would reject a value of the wrong type.
            stored.trace = Trace.model_validate({**stored.trace.model_dump(), **fields})
            if stored.trace.reflection_status != ReflectionStatus.RUNNING:
                stored.claimed_at = None

    def _select(
        self, namespace: str | None, status: ReflectionStatus | None, since: datetime | None = None
    ) -> list[Trace]:
        return [
            stored.trace
            for stored in self._traces.values()
            if (namespace is None or stored.trace.namespace == namespace)
            and (status is None or stored.trace.reflection_status == status)
            and (since is None or stored.trace.created_at > since)
        ]

    def list_traces(
        self, namespace: str | None = None, *, status: ReflectionStatus | None = None, limit: int = 50
    ) -> list[Trace]:
        with self._lock:
            found = self._select(namespace, status)
            found.sort(key=lambda t: t.id)
            found.sort(key=lambda t: t.created_at, reverse=True)  # stable: ties stay ordered by id
            return [t.model_copy(update={"steps": []}, deep=True) for t in found[: max(limit, 0)]]

    def count_traces(
        self,
        namespace: str | None = None,
        *,
        status: ReflectionStatus | None = None,
        since: datetime | None = None,
    ) -> int:
        with self._lock:
            return len(self._select(namespace, status, since))

    def _claimable(self, now: float, lease_s: float) -> list[_StoredTrace]:
        return [
            stored
            for stored in self._traces.values()
            if stored.trace.reflection_status == ReflectionStatus.PENDING
            or (
                stored.trace.reflection_status == ReflectionStatus.RUNNING
                and stored.claimed_at is not None
                and stored.claimed_at < now - lease_s
            )
        ]

    def count_claimable(self, *, lease_s: float = 600.0) -> int:
        with self._lock:
            return len(self._claimable(time.time(), lease_s))

    def requeue_traces(
        self, namespace: str | None = None, *, error_contains: str | None = None, before: datetime | None = None
    ) -> int:
        with self._lock:
            chosen = [
                stored
                for stored in self._traces.values()
                if stored.trace.reflection_status == ReflectionStatus.FAILED
                and (namespace is None or stored.trace.namespace == namespace)
                and (not error_contains or error_contains in (stored.trace.reflection_error or ""))
                and (before is None or stored.trace.created_at < before)
            ]
            for stored in chosen:
                stored.trace = stored.trace.model_copy(
                    update={"reflection_status": ReflectionStatus.PENDING, "reflection_attempts": 0}
                )
                stored.claimed_at = None
        return len(chosen)

    def claim_pending_traces(self, limit: int, *, lease_s: float = 600.0) -> list[Trace]:
        now = time.time()
        with self._lock:
            claimable = self._claimable(now, lease_s)
            claimable.sort(key=lambda stored: (stored.trace.created_at, stored.trace.id))
            claimed = []
            for stored in claimable[: max(limit, 0)]:
                stored.trace = stored.trace.model_copy(
                    update={
                        "reflection_status": ReflectionStatus.RUNNING,
                        "reflection_attempts": stored.trace.reflection_attempts + 1,
                    }
                )
                stored.claimed_at = now
                claimed.append(stored.trace.model_copy(deep=True))
        return claimed

    # --- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._meta[key] = value

    def __repr__(self) -> str:
        return "InMemoryStore()"

    def close(self) -> None:
        """Nothing to release; the data stays readable until the store is dropped."""
