"""Per-namespace caches that follow the store's ``change_token``.

Retrieval must be fast on every call, while the handbook changes rarely (after a reflection). So
each retriever keeps what it derived from the store (the injectable behaviors, a vector matrix, a
BM25 index) per namespace, tagged with the token it was built under, and rebuilds only when
``store.change_token(namespace)`` differs. One ``SnapshotCache`` can be shared by several retrievers
over the same store, so the behaviors are held in memory once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from ..store.base import HandbookStore
from ..types import INJECTABLE_STATUSES, Behavior

__all__ = [
    "NamespaceCache",
    "Snapshot",
    "SnapshotCache",
    "change_token",
    "normalize_topic",
    "one_version",
    "top_rows",
]

T = TypeVar("T")

# (id(store), namespace) -> token, while a ``one_version`` scope is open in this context
_SCOPE: ContextVar[dict[tuple[int, str], int] | None] = ContextVar("behavior_memory_tokens", default=None)


@contextmanager
def one_version() -> Iterator[None]:
    """Within this scope each (store, namespace) change token is read once and then reused.

    A composite retriever (hybrid, pinned first) opens one, so its parts see the same version of
    the handbook and the store is asked once instead of once per part. Context variables follow
    ``asyncio.gather`` tasks and ``asyncio.to_thread`` calls, so async twins share the scope too.
    """
    if _SCOPE.get() is not None:  # nested: the outer scope decides
        yield
        return
    reset = _SCOPE.set({})
    try:
        yield
    finally:
        _SCOPE.reset(reset)


def change_token(store: HandbookStore, namespace: str) -> int:
    """``store.change_token(namespace)``, memoised inside a ``one_version`` scope."""
    memo = _SCOPE.get()
    if memo is None:
        return store.change_token(namespace)
    key = (id(store), namespace)
    token = memo.get(key)
    if token is None:
        token = memo[key] = store.change_token(namespace)
    return token


def normalize_topic(topic: str | None) -> str | None:
    """Topics match case- and space-insensitively: ``" Number Theory"`` is ``"number theory"``."""
    if topic is None:
        return None
    text = " ".join(topic.split()).casefold()
    return text or None


class NamespaceCache(Generic[T]):
    """``get(namespace)`` returns ``build(namespace, token)``, rebuilt only when the change token moves.

    Thread-safe: readers of a fresh entry take no lock; a rebuild holds a per-namespace lock so
    concurrent callers build once, and other namespaces are not blocked meanwhile.
    """

    def __init__(self, store: HandbookStore, build: Callable[[str, int], T]) -> None:
        self.store = store
        self._build = build
        self._entries: dict[str, tuple[int, T]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.builds = 0  # how many times anything was built (for tests and stats)

    def get(self, namespace: str, token: int | None = None) -> T:
        """The value for ``namespace``; pass ``token`` when the caller has just read it."""
        if token is None:
            token = change_token(self.store, namespace)
        entry = self._entries.get(namespace)
        if entry is not None and entry[0] == token:
            return entry[1]
        with self._guard:
            lock = self._locks.setdefault(namespace, threading.Lock())
        with lock:
            entry = self._entries.get(namespace)
            if entry is not None and entry[0] == token:
                return entry[1]
            # The token was read before the data: a change that lands while we build leaves a
            # newer token in the store, so the next call rebuilds instead of serving stale data.
            value = self._build(namespace, token)
            self._entries[namespace] = (token, value)
            self.builds += 1
            return value

    def clear(self) -> None:
        """Forget every namespace (the next call rebuilds)."""
        with self._guard:
            self._entries.clear()


#: One set shared by every cached behavior that had all fields set (see ``_compact``).
_ALL_FIELDS: set[str] = set(Behavior.model_fields)


def _compact(behavior: Behavior) -> Behavior:
    """Trim the per-object overhead of a cached behavior, without changing any value.

    A store builds each behavior with every field given, so pydantic keeps a private 17-name set
    per object (~730 bytes: a third of its size). An equal set shared by all behaves the same
    (an assignment adds a name already in it), and the namespace and topic strings, repeated
    across thousands of rows, are interned. This keeps the cache under 2 KB per behavior.
    """
    if behavior.__pydantic_fields_set__ == _ALL_FIELDS:
        object.__setattr__(behavior, "__pydantic_fields_set__", _ALL_FIELDS)
    values = behavior.__dict__
    values["namespace"] = sys.intern(values["namespace"])
    if values["topic"] is not None:
        values["topic"] = sys.intern(values["topic"])
    return behavior


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The injectable behaviors of one namespace, sorted by name, with lookups retrievers need."""

    behaviors: tuple[Behavior, ...]
    topic_codes: dict[str, int]  # normalised topic -> code
    topics: npt.NDArray[np.int32]  # topic code of each row, -1 for none
    pinned: tuple[int, ...]  # rows of pinned behaviors, in name order
    _topic_rows: dict[str, npt.NDArray[np.intp]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, behaviors: list[Behavior]) -> Snapshot:
        allowed = set(INJECTABLE_STATUSES)  # stores filter too; we do not rely on it
        kept = sorted((_compact(b) for b in behaviors if b.status in allowed), key=lambda b: b.name)
        codes: dict[str, int] = {}
        topics = np.full(len(kept), -1, dtype=np.int32)
        for row, behavior in enumerate(kept):
            key = normalize_topic(behavior.topic)
            if key is not None:
                topics[row] = codes.setdefault(key, len(codes))
        return cls(
            behaviors=tuple(kept),
            topic_codes=codes,
            topics=topics,
            pinned=tuple(row for row, b in enumerate(kept) if b.pinned),
        )

    def __len__(self) -> int:
        return len(self.behaviors)

    def row_of(self) -> dict[str, int]:
        """Behavior id -> row (built on demand: only index builds need it)."""
        return {b.id: row for row, b in enumerate(self.behaviors)}

    def topic_mask(self, topic: str | None) -> npt.NDArray[np.bool_] | None:
        """Boolean mask of the rows of ``topic``; ``None`` when no topic filter applies."""
        key = normalize_topic(topic)
        if key is None:
            return None
        code = self.topic_codes.get(key)
        if code is None:
            return np.zeros(len(self.behaviors), dtype=bool)
        mask: npt.NDArray[np.bool_] = self.topics == code
        return mask

    def topic_rows(self, topic: str | None) -> npt.NDArray[np.intp]:
        """Rows of ``topic`` in name order (empty for no topic or an unknown one)."""
        key = normalize_topic(topic)
        if key is None or key not in self.topic_codes:
            return np.zeros(0, dtype=np.intp)
        rows = self._topic_rows.get(key)
        if rows is None:
            rows = self._topic_rows[key] = np.flatnonzero(self.topics == self.topic_codes[key])
        return rows


class SnapshotCache(NamespaceCache[Snapshot]):
    """Snapshots of ``store``'s injectable behaviors, one per namespace, following the change token."""

    def __init__(self, store: HandbookStore) -> None:
        super().__init__(store, self._load)

    def _load(self, namespace: str, token: int) -> Snapshot:
        return Snapshot.build(self.store.list_behaviors(namespace, statuses=INJECTABLE_STATUSES))


def top_rows(scores: npt.NDArray[np.float32], k: int, floor: float = -np.inf) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` best scores ``>= floor``, ordered by ``(-score, position)``.

    Exact and stable: among scores tied at the k-th place the smaller positions win (rows are in
    name order, so the smaller names), where ``np.argpartition`` would pick arbitrarily. Cheap at
    100k rows: the k-th best of a strided sample is a lower bound for the k-th best of all, so one
    comparison pass leaves a few hundred candidates, and only those are partitioned and sorted.
    """
    n = int(scores.shape[0])
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.intp)
    threshold = floor
    if k < n:
        sample = scores[:: max(1, n // (64 * k))]
        if sample.shape[0] > k:
            bound = float(np.partition(sample, sample.shape[0] - k)[sample.shape[0] - k])
            threshold = max(threshold, bound)
    candidates = np.flatnonzero(scores >= threshold)
    if candidates.shape[0] > k:
        values = scores[candidates]
        kth = values[np.argpartition(values, values.shape[0] - k)[values.shape[0] - k]]
        above = candidates[values > kth]  # fewer than k
        tied = candidates[values == kth]  # ascending positions
        candidates = np.concatenate([above, tied[: k - above.shape[0]]])
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order]
