"""``SnapshotCache``: one snapshot per (store, namespace), loaded once, then kept current by the change feed.

``SnapshotCache.shared(store)`` is a registry keyed by the store object: every retriever built over
the same store (``build_retriever`` twice, a LangChain retriever beside the memory) shares one
snapshot per namespace, and so one copy of the vectors and one BM25 index.

On each call the namespace's change token is compared with the snapshot's (one cheap read). When it
moved, ``ChangeFeed.changes_since`` names the behaviors written since, only those are read again,
and the snapshot and its indexes apply them in place: a put, an edit, a status change or a delete
costs the rows it touched. A rebuild happens only when it cannot be avoided (the feed no longer
reaches back, a write touched a large share of the namespace, many dead rows piled up): it runs in a
background thread while the previous snapshot keeps answering. A store without a feed is reloaded
in the caller's thread, as before.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, cast

from .._threads import start_background
from ..store.base import ChangeFeed, HandbookStore, RetrievalRows, default_retrieval_rows
from ..types import INJECTABLE_STATUSES
from .ann import find_saved, index_dir
from .snapshot import Snapshot, change_token

__all__ = ["AnnSettings", "SnapshotCache", "fetch_rows"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnSettings:
    """When vector search turns approximate, and where its index is kept (``retrieval.ann_*``)."""

    threshold: int = 50_000  # vectors in a namespace from which search uses the HNSW index
    ef_search: int = 64  # HNSW candidate list per query: recall against speed
    persist: bool = True  # save the index beside a file store, so a new process loads it


def fetch_rows(
    store: HandbookStore,
    namespace: str,
    *,
    ids: list[str] | None = None,
    with_vectors: bool = False,
    feed: bool | None = None,
    records: bool = True,
) -> RetrievalRows:
    """The injectable behaviors of ``namespace`` as columns: the store's ``retrieval_rows`` or the default.

    ``feed`` says whether ``store`` is a ``ChangeFeed`` when the caller knows (a runtime protocol
    check costs about 0.1 ms).
    """
    if feed if feed is not None else isinstance(store, ChangeFeed):
        feeder = cast(ChangeFeed, store)
        return feeder.retrieval_rows(
            namespace, statuses=INJECTABLE_STATUSES, ids=ids, with_vectors=with_vectors, records=records
        )
    return default_retrieval_rows(store, namespace, statuses=INJECTABLE_STATUSES, ids=ids, with_vectors=with_vectors)


class SnapshotCache:
    """Snapshots of ``store``'s injectable behaviors, one per namespace, following the change token.

    ``builds`` counts full loads and ``applies`` incremental updates (tests and stats).
    """

    _registry: ClassVar[dict[tuple[int, AnnSettings], SnapshotCache]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, store: HandbookStore, *, ann: AnnSettings | None = None) -> None:
        self.store = store
        self.feed = isinstance(store, ChangeFeed)  # once: a runtime protocol check is slow
        self.ann = ann or AnnSettings()
        self._entries: dict[str, Snapshot] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._rebuilding: dict[str, threading.Thread] = {}
        self.builds = 0
        self.applies = 0
        #: attachment name -> builder, installed on every snapshot loaded from now on
        self.wanted: dict[str, Callable[[Snapshot], Any]] = {}

    @classmethod
    def shared(cls, store: HandbookStore, ann: AnnSettings | None = None) -> SnapshotCache:
        """The cache every retriever over ``store`` (with these ANN settings) shares."""
        settings = ann or AnnSettings()
        key = (id(store), settings)
        with cls._registry_lock:
            found = cls._registry.get(key)
            if found is not None and found.store is store:
                return found
            cache = cls(store, ann=settings)
            try:  # forget the entry with the store; a store that cannot be weakly referenced is not shared
                weakref.finalize(store, cls._forget, key)
            except TypeError:
                return cache
            cls._registry[key] = cache
            return cache

    @classmethod
    def _forget(cls, key: tuple[int, AnnSettings]) -> None:
        with cls._registry_lock:
            cls._registry.pop(key, None)

    def want(self, name: str, build: Callable[[Snapshot], Any]) -> None:
        """Build attachment ``name`` on every snapshot as it loads (the vectors: no second read of the rows)."""
        self.wanted.setdefault(name, build)

    # --- reading ------------------------------------------------------------------------------
    def get(self, namespace: str, token: int | None = None) -> Snapshot:
        """The snapshot of ``namespace`` at ``token`` (read now when not given), or the newest one
        while a rebuild runs in the background."""
        if token is None:
            token = change_token(self.store, namespace)
        snapshot = self._entries.get(namespace)
        if snapshot is not None and snapshot.token >= token:
            return snapshot
        with self._guard:
            lock = self._locks.setdefault(namespace, threading.Lock())
        with lock:
            snapshot = self._entries.get(namespace)
            if snapshot is None:
                return self._load(namespace, token)
            if snapshot.token >= token or namespace in self._rebuilding:
                return snapshot
            if not self.feed:
                return self._load(namespace, token)
            changes = cast(ChangeFeed, self.store).changes_since(namespace, snapshot.token)
            if changes is None or self._too_big(snapshot, changes[1], changes[2]):
                self._rebuild_in_background(namespace, snapshot)
                return snapshot
            new_token, changed, deleted = changes
            with_vectors = "vectors" in snapshot.attachments
            fetched = (
                fetch_rows(self.store, namespace, ids=changed, with_vectors=with_vectors, feed=True)
                if changed
                else None
            )
            snapshot.apply(new_token, [*changed, *deleted], fetched or _empty(snapshot))
            self.applies += 1
            if snapshot.dead > max(1024, len(snapshot) // 4):
                self._rebuild_in_background(namespace, snapshot)
            return snapshot

    def clear(self) -> None:
        """Forget every namespace (the next call loads again)."""
        with self._guard:
            self._entries.clear()

    # --- loading ------------------------------------------------------------------------------
    def _too_big(self, snapshot: Snapshot, changed: list[str], deleted: list[str]) -> bool:
        return len(changed) + len(deleted) > max(2_000, len(snapshot) // 10)

    def _load(self, namespace: str, token: int) -> Snapshot:
        snapshot = self._read(namespace, token)
        self._entries[namespace] = snapshot
        return snapshot

    def _read(self, namespace: str, token: int) -> Snapshot:
        # The token was read before the rows: a change that lands meanwhile leaves a newer token in
        # the store, and applying it again later is harmless (a row is replaced, not added twice).
        # vectors come with the rows in the same scan, unless a saved ANN index will bring them
        saved = find_saved(index_dir(self.store), namespace) if self.ann.persist else None
        with_vectors = "vectors" in self.wanted and saved is None
        # only the columns: the records (for the Behaviors a query returns) follow in the background
        rows = fetch_rows(self.store, namespace, with_vectors=with_vectors, feed=self.feed, records=False)
        snapshot = Snapshot(namespace, token, rows)
        snapshot.fetch_records = partial(self._records, namespace)
        if rows.records and rows.records[0] is None:
            start_background(snapshot.fill_records, f"bmem-records-{namespace}")
        self.builds += 1
        for name, build in self.wanted.items():
            snapshot.attach(name, build)
        snapshot.loaded_vectors = None  # the matrix went to the vector attachment; let it go
        return snapshot

    def _records(self, namespace: str, ids: list[str] | None) -> RetrievalRows:
        return fetch_rows(self.store, namespace, ids=ids, feed=self.feed)

    def _rebuild_in_background(self, namespace: str, old: Snapshot) -> None:
        if namespace in self._rebuilding:
            return

        def rebuild() -> None:
            try:
                token = self.store.change_token(namespace)
                fresh = self._read(namespace, token)
                for name, build in old.builders.items():  # whatever the old one had, built before the swap
                    fresh.attach(name, build)
                self._entries[namespace] = fresh
                log.info("retrieval snapshot of %r rebuilt at token %d (%d behaviors)", namespace, token, len(fresh))
            except Exception:  # the old snapshot keeps serving; the next change tries again
                log.exception("rebuilding the retrieval snapshot of %r failed", namespace)
            finally:
                self._rebuilding.pop(namespace, None)

        self._rebuilding[namespace] = start_background(rebuild, f"bmem-snapshot-{namespace}")

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background rebuilds under way (tests, benches, a clean exit)."""
        for thread in list(self._rebuilding.values()):
            thread.join(timeout)


def _empty(snapshot: Snapshot) -> RetrievalRows:
    return RetrievalRows([], [], [], [], [], [], snapshot.materialize)
