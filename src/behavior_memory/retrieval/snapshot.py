"""``Snapshot``: one namespace's injectable behaviors as columns, kept current by the store's change feed.

Retrieval must be fast on every call while the handbook changes now and then (a reflection mints a
behavior, a person quarantines one). A snapshot holds what the retrievers need of each behavior in
flat columns (ids, names, topic codes, pinned rows) plus the store's own record of it, which becomes
a ``Behavior`` only when a query returns it: loading a million rows builds no pydantic object.

Rows are append-only: a changed behavior's old row dies and a new row is appended, a deleted one's
row dies. Readers take no lock (a row is published by ``n`` moving after its data is written);
``apply`` runs under the cache's per-namespace lock. Indexes derived from the snapshot (the vectors,
BM25's postings) attach to it lazily and are told of each row added and each row that died, so a
write costs the rows it touched, not a rebuild. ``registry.SnapshotCache`` loads, applies and shares
snapshots; the helpers here (``one_version``, ``change_token``, ``top_rows``) serve every retriever.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .._threads import start_background
from ..store.base import HandbookStore, RetrievalRows, Vectors
from ..types import Behavior

__all__ = ["Attachment", "Snapshot", "change_token", "normalize_topic", "one_version", "top_rows"]

# (id(store), namespace) -> token, while a ``one_version`` scope is open in this context
_SCOPE: ContextVar[dict[tuple[int, str], int] | None] = ContextVar("behavior_memory_tokens", default=None)

#: Materialised behaviors kept per snapshot (the ones queries keep returning); cleared when full.
_BEHAVIOR_CACHE = 4_096


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


def behavior_text(name: str, instruction: str, topic: str | None) -> str:
    """``Behavior.text`` from the columns: the name's words, the instruction and the topic."""
    words = name.removeprefix("behavior_").replace("_", " ")
    return " ".join(part for part in (words, instruction, topic or "") if part)


class Attachment(Protocol):
    """An index derived from a snapshot, told of every row that died and every row added."""

    def apply(self, dead: Sequence[int], dead_ids: Sequence[str], added: Sequence[int], fetched: RetrievalRows) -> None:
        """Rows ``dead`` (of behaviors ``dead_ids``) died; rows ``added`` hold ``fetched``, in order."""
        ...


class _Column:
    """A growable numpy column (capacity doubles; readers slice ``[:n]`` of the array they hold)."""

    def __init__(self, dtype: Any, fill: Any) -> None:
        self.data: npt.NDArray[Any] = np.full(0, fill, dtype=dtype)
        self.fill = fill

    def put(self, start: int, values: npt.ArrayLike) -> None:
        values = np.asarray(values, dtype=self.data.dtype)
        stop = start + values.shape[0]
        if stop > self.data.shape[0]:
            grown = np.full(max(stop, 2 * self.data.shape[0], 64), self.fill, dtype=self.data.dtype)
            grown[: self.data.shape[0]] = self.data
            self.data = grown
        self.data[start:stop] = values


class Snapshot:
    """The injectable behaviors of one namespace at change token ``token`` (see the module docstring)."""

    def __init__(self, namespace: str, token: int, rows: RetrievalRows) -> None:
        self.namespace, self.token = namespace, token
        self.materialize = rows.materialize
        self.ids: list[str] = []
        self.names: list[str] = []
        self.instructions: list[str] = []
        self.topic_names: list[str | None] = []
        self.records: list[Any] = []
        self.row_of: dict[str, int] = {}  # live rows only
        self.topic_codes: dict[str, int] = {}
        self._topics = _Column(np.int32, -1)
        self._live = _Column(np.bool_, False)
        self.pinned_rows: set[int] = set()
        self.n = 0  # rows published to readers
        self.dead = 0
        self.attachments: dict[str, Attachment] = {}
        self.builders: dict[str, Callable[[Snapshot], Attachment]] = {}
        self._attaching: set[str] = set()
        #: the vectors read with the rows, until the vector attachment takes them
        self.loaded_vectors: Vectors | None = rows.vectors
        self.lock = threading.RLock()  # attaching and applying; readers never take it
        self._behaviors: dict[int, Behavior] = {}
        #: reads records by id (all of them with ``None``) when the rows came without them
        self.fetch_records: Callable[[list[str] | None], RetrievalRows] | None = None
        self._derived: dict[Any, Any] = {}  # name-ordered rows per topic, pinned, dead rows; cleared on apply
        self._append(rows)

    # --- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n - self.dead

    @property
    def live(self) -> npt.NDArray[np.bool_]:
        """Whether each of the ``n`` rows is current."""
        column: npt.NDArray[np.bool_] = self._live.data[: self.n]
        return column

    @property
    def topics(self) -> npt.NDArray[np.int32]:
        """Topic code of each row (-1 for none)."""
        column: npt.NDArray[np.int32] = self._topics.data[: self.n]
        return column

    def behavior(self, row: int) -> Behavior:
        """The ``Behavior`` of ``row``, made from the store's record on first use."""
        found = self.materialized([row])
        if not found:
            raise LookupError(f"behavior {self.ids[row]!r} is no longer in the store")
        return found[0][1]

    def materialized(self, rows: Sequence[int]) -> list[tuple[int, Behavior]]:
        """``(row, Behavior)`` for each of ``rows``; records not read yet are read in one go (a row
        whose behavior left the store meanwhile is left out: the change feed will say so)."""
        cache, records = self._behaviors, self.records
        missing = [r for r in rows if r not in cache and records[r] is None]
        if missing and self.fetch_records is not None:
            self._take_records(missing, self.fetch_records([self.ids[r] for r in missing]))
        out = []
        for r in rows:
            found = cache.get(r)
            if found is None:
                record = records[r]
                if record is None:
                    continue
                if len(cache) >= _BEHAVIOR_CACHE:
                    cache.clear()
                found = cache[r] = _compact(self.materialize(record))
            out.append((r, found))
        return out

    def fill_records(self, delay_s: float = 1.0, chunk: int = 2_000) -> None:
        """Read every record the load left out, in a background thread: after ``delay_s`` (the first
        queries go first) and ``chunk`` at a time (a query never waits long for the interpreter)."""
        if self.fetch_records is None:
            return
        time.sleep(delay_s)
        records = self.records
        todo = [r for r in range(self.n) if records[r] is None]
        for start in range(0, len(todo), chunk):
            part = [r for r in todo[start : start + chunk] if records[r] is None]
            try:
                self._take_records(part, self.fetch_records([self.ids[r] for r in part]))
            except Exception:  # queries read the records they need by id instead
                return
            time.sleep(0.005)

    def _take_records(self, rows: list[int], fetched: RetrievalRows) -> None:
        """Keep the records read for ``rows``; the columns then point at the strings the records hold,
        so the ones the load read go (a name and an instruction kept once, not twice)."""
        at = {behavior_id: j for j, behavior_id in enumerate(fetched.ids)}
        records, names, instructions = self.records, self.names, self.instructions
        for r in rows:
            j = at.get(self.ids[r])
            if j is None or records[r] is not None:
                continue
            if names[r] == fetched.names[j] and instructions[r] == fetched.instructions[j]:
                names[r], instructions[r] = fetched.names[j], fetched.instructions[j]
            records[r] = fetched.records[j]

    @property
    def behaviors(self) -> list[Behavior]:
        """Every live behavior in name order (materialises them all: for tests and small handbooks)."""
        return [b for _, b in self.materialized(self.name_order())]

    def name_order(self) -> list[int]:
        """Live rows sorted by name."""
        rows: list[int] = self._cached(
            "names", lambda: sorted(np.flatnonzero(self.live).tolist(), key=self.names.__getitem__)
        )
        return rows

    def dead_rows(self) -> npt.NDArray[np.intp]:
        """Rows that died (their data stays until the next full load)."""
        rows: npt.NDArray[np.intp] = self._cached("dead", lambda: np.flatnonzero(~self.live))
        return rows

    def pinned(self) -> list[int]:
        """Rows of pinned behaviors, in name order."""
        rows: list[int] = self._cached("pinned", lambda: sorted(self.pinned_rows, key=self.names.__getitem__))
        return rows

    def topic_code(self, topic: str | None) -> int | None:
        """The code of ``topic``; ``None`` when no topic filter applies, -2 for a topic nobody has."""
        key = normalize_topic(topic)
        if key is None:
            return None
        return self.topic_codes.get(key, -2)

    def topic_mask(self, topic: str | None) -> npt.NDArray[np.bool_] | None:
        """Boolean mask of the live rows of ``topic``; ``None`` when no topic filter applies."""
        code = self.topic_code(topic)
        if code is None:
            return None
        mask: npt.NDArray[np.bool_] = (self.topics == code) & self.live
        return mask

    def topic_rows(self, topic: str | None) -> list[int]:
        """Live rows of ``topic`` in name order (empty for no topic or an unknown one)."""
        code = self.topic_code(topic)
        if code is None or code < 0:
            return []
        rows: list[int] = self._cached(
            ("topic", code), lambda: [r for r in self.name_order() if self.topics[r] == code]
        )
        return rows

    def _cached(self, key: Any, build: Callable[[], Any]) -> Any:
        derived = self._derived  # apply swaps in a fresh dict: a reader keeps the one it started with
        value = derived.get(key)
        if value is None:
            value = derived[key] = build()
        return value

    # --- changing (under ``lock``) ----------------------------------------------------------------
    def _append(self, rows: RetrievalRows) -> list[int]:
        start, count = self.n, len(rows)
        if not count:
            return []
        self.ids += rows.ids
        self.names += rows.names
        self.instructions += rows.instructions
        interned: dict[str | None, tuple[str | None, int]] = {None: (None, -1)}  # each distinct topic once
        codes = self.topic_codes

        def code_of(topic: str | None) -> tuple[str | None, int]:
            found = interned.get(topic)
            if found is None:
                key = normalize_topic(topic)
                code = -1 if key is None else codes.setdefault(sys.intern(key), len(codes))
                found = interned[topic] = (sys.intern(topic) if topic else topic, code)
            return found

        pairs = [code_of(t) for t in rows.topics]
        self.topic_names += [name for name, _ in pairs]
        self.records += rows.records
        self._topics.put(start, [code for _, code in pairs])
        self._live.put(start, np.ones(count, dtype=bool))
        new_rows = list(range(start, start + count))
        self.row_of.update(zip(rows.ids, new_rows, strict=True))
        self.pinned_rows.update(row for row, pinned in zip(new_rows, rows.pinned, strict=True) if pinned)
        self.n = start + count  # publish
        return new_rows

    def apply(self, token: int, touched: Sequence[str], fetched: RetrievalRows) -> None:
        """Make the snapshot the namespace at ``token``: every id in ``touched`` (changed or deleted)
        loses its row, and the injectable ones among them, read again as ``fetched``, get new rows."""
        with self.lock:
            gone = [(self.row_of.pop(i), i) for i in dict.fromkeys(touched) if i in self.row_of]
            for row, _ in gone:
                self._live.data[row] = False
                self.pinned_rows.discard(row)
            self.dead += len(gone)
            rows = self._append(fetched)
            for attachment in self.attachments.values():
                if gone or rows:
                    attachment.apply([r for r, _ in gone], [i for _, i in gone], rows, fetched)
            self._derived = {}
            self.token = token

    def attach_in_background(self, name: str, build: Callable[[Snapshot, list[int]], Attachment]) -> bool:
        """Build attachment ``name`` in a thread, without holding up ``apply``; True while it is not ready.

        ``build(snapshot, rows)`` indexes the live ``rows`` of the moment it starts; the changes
        applied meanwhile are replayed on it before it is attached.
        """
        with self.lock:
            if name in self.attachments:
                return False
            if name in self._attaching:
                return True
            self._attaching.add(name)
            start, live = self.n, self.live.copy()

        def work() -> None:
            try:
                made = build(self, np.flatnonzero(live).tolist())
                with self.lock:  # catch up with what happened while it was built
                    died = np.flatnonzero(live & ~self.live[:start]).tolist()
                    born = [r for r in range(start, self.n) if self.live[r]]
                    if died or born:
                        made.apply(
                            died,
                            [self.ids[r] for r in died],
                            born,
                            RetrievalRows([], [], [], [], [], [], self.materialize),
                        )
                    self.attachments[name] = made
                    self.builders[name] = lambda snapshot: build(snapshot, np.flatnonzero(snapshot.live).tolist())
            finally:
                self._attaching.discard(name)

        start_background(work, f"bmem-{name}-{self.namespace}")
        return True

    def attach(self, name: str, build: Callable[[Snapshot], Attachment]) -> Attachment:
        """The attachment called ``name``, built from the current rows on first use."""
        found = self.attachments.get(name)
        if found is None:
            with self.lock:
                found = self.attachments.get(name)
                if found is None:
                    found = self.attachments[name] = build(self)
                    self.builders[name] = build
        return found


#: One set shared by every cached behavior that had all fields set (see ``_compact``).
_ALL_FIELDS: set[str] = set(Behavior.model_fields)


def _compact(behavior: Behavior) -> Behavior:
    """Trim the per-object overhead of a cached behavior, without changing any value.

    A store builds each behavior with every field given, so pydantic keeps a private 17-name set
    per object (~730 bytes: a third of its size). An equal set shared by all behaves the same
    (an assignment adds a name already in it), and the namespace and topic strings are interned.
    """
    if behavior.__pydantic_fields_set__ == _ALL_FIELDS:
        object.__setattr__(behavior, "__pydantic_fields_set__", _ALL_FIELDS)
    values = behavior.__dict__
    values["namespace"] = sys.intern(values["namespace"])
    if values["topic"] is not None:
        values["topic"] = sys.intern(values["topic"])
    return behavior


def top_rows(
    scores: npt.NDArray[np.float32], k: int, floor: float = -np.inf, names: Sequence[str] | None = None
) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` best scores ``>= floor``, ordered by ``(-score, name)``.

    Exact and stable: among scores tied at the k-th place the smaller names win (the smaller
    positions when ``names`` is ``None``), where ``np.argpartition`` would pick arbitrarily. Cheap
    at 100k rows: the k-th best of a strided sample is a lower bound for the k-th best of all, so
    one comparison pass leaves a few hundred candidates, and only those are partitioned and sorted.
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
        if names is not None and tied.shape[0] > k - above.shape[0]:
            tied = np.asarray(sorted(tied.tolist(), key=names.__getitem__), dtype=np.intp)
        candidates = np.concatenate([above, tied[: k - above.shape[0]]])
    if names is None:
        order = np.lexsort((candidates, -scores[candidates]))
        return candidates[order]
    ranked = sorted(candidates.tolist(), key=lambda r: (-float(scores[r]), names[r]))
    return np.asarray(ranked, dtype=np.intp)
