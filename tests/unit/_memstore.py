"""A tiny in-memory ``HandbookStore`` for retriever tests and the retrieval bench.

Behaviors only (trace methods raise): enough for retrieval. Every write bumps the namespace's
change token, as real stores do.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from behavior_memory.errors import InvalidInputError, NotFoundError
from behavior_memory.types import Behavior, BehaviorStatus

Vector = npt.NDArray[np.float32]


class MemoryStore:
    """Behaviors and their vectors in dicts, per namespace."""

    def __init__(self) -> None:
        self._behaviors: dict[str, dict[str, Behavior]] = {}  # namespace -> id -> behavior
        self._vectors: dict[str, dict[str, Vector]] = {}
        self._tokens: dict[str, int] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}  # method -> number of calls, for cache tests

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    def _touch(self, namespace: str) -> None:
        self._tokens[namespace] = next(self._counter)

    def _find(self, namespace: str, key: str) -> Behavior:
        items = self._behaviors.get(namespace, {})
        if key in items:
            return items[key]
        for behavior in items.values():
            if behavior.name == key:
                return behavior
        raise NotFoundError(f"no behavior {key!r} in namespace {namespace!r}")

    # --- writes ----------------------------------------------------------------------------------
    def put_behavior(self, behavior: Behavior, vector: Vector | None = None) -> Behavior:
        return self.put_behaviors([(behavior, vector)])[0]

    def put_behaviors(self, items: Sequence[tuple[Behavior, Vector | None]]) -> list[Behavior]:
        with self._lock:
            for behavior, _ in items:
                existing = self._behaviors.get(behavior.namespace, {})
                if any(b.name == behavior.name for b in existing.values()):
                    raise InvalidInputError(f"behavior {behavior.name!r} exists in {behavior.namespace!r}")
            for behavior, vector in items:
                ns = behavior.namespace
                self._behaviors.setdefault(ns, {})[behavior.id] = behavior
                if vector is not None:
                    self._vectors.setdefault(ns, {})[behavior.id] = np.asarray(vector, dtype=np.float32)
                self._touch(ns)
        return [b for b, _ in items]

    def get_behavior(self, namespace: str, key: str) -> Behavior:
        return self._find(namespace, key)

    def update_behavior(self, behavior: Behavior, vector: Vector | None = None) -> Behavior:
        with self._lock:
            old = self._find(behavior.namespace, behavior.id)
            updated = behavior.model_copy(update={"version": old.version + 1})
            self._behaviors[behavior.namespace][behavior.id] = updated
            if vector is not None:
                self._vectors.setdefault(behavior.namespace, {})[behavior.id] = np.asarray(vector, np.float32)
            self._touch(behavior.namespace)
            return updated

    def delete_behavior(self, namespace: str, key: str) -> None:
        with self._lock:
            behavior = self._find(namespace, key)
            del self._behaviors[namespace][behavior.id]
            self._vectors.get(namespace, {}).pop(behavior.id, None)
            self._touch(namespace)

    def increment(self, namespace: str, names: Iterable[str], counter: str, by: int = 1) -> None:
        with self._lock:
            for name in names:
                try:
                    behavior = self._find(namespace, name)
                except NotFoundError:
                    continue
                setattr(behavior, counter, getattr(behavior, counter) + by)
            self._touch(namespace)

    # --- reads -----------------------------------------------------------------------------------
    def list_behaviors(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
        limit: int | None = None,
    ) -> list[Behavior]:
        self._count("list_behaviors")
        wanted = None if statuses is None else set(statuses)
        found = sorted(
            (
                b
                for b in self._behaviors.get(namespace, {}).values()
                if (wanted is None or b.status in wanted) and (topic is None or b.topic == topic)
            ),
            key=lambda b: b.name,
        )
        return found if limit is None else found[:limit]

    def count_behaviors(self, namespace: str | None = None) -> int:
        if namespace is not None:
            return len(self._behaviors.get(namespace, {}))
        return sum(len(items) for items in self._behaviors.values())

    def vectors(self, namespace: str) -> tuple[list[str], Vector]:
        self._count("vectors")
        items = self._vectors.get(namespace, {})
        ids = list(items)
        if not ids:
            return [], np.zeros((0, 0), dtype=np.float32)
        return ids, np.stack([items[i] for i in ids]).astype(np.float32)

    def change_token(self, namespace: str) -> int:
        self._count("change_token")
        return self._tokens.get(namespace, 0)

    def namespaces(self) -> list[str]:
        return sorted(self._behaviors)

    # --- traces: not needed for retrieval ----------------------------------------------------------
    def put_trace(self, trace: Any) -> Any:
        raise NotImplementedError

    def get_trace(self, trace_id: str) -> Any:
        raise NotImplementedError

    def list_traces(self, namespace: str | None = None, *, status: Any = None, limit: int = 50) -> list[Any]:
        raise NotImplementedError

    def claim_pending_traces(self, limit: int, *, lease_s: float = 600.0) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass
