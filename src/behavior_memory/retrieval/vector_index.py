"""``VectorIndex``: cosine search over one namespace's vectors, exact below a size and approximate above.

Below ``retrieval.ann_threshold`` vectors (50,000 by default) a brute-force scan of a contiguous
float32 matrix (one matrix-vector product, then an exact top-k) is fast and exact, with nothing to
tune. From the threshold on, an HNSW index (``ann.AnnIndex``, usearch) answers in a fraction of a
millisecond; while it is first built (in a background thread) the exact scan keeps answering, and
a saved index lets a new process skip the build. Either way the vectors are the snapshot's
"vectors" attachment: a write adds and removes the rows it touched, nothing is rebuilt. Behaviors
without a vector are invisible here (lexical finds them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .._threads import start_background, stopping
from ..errors import EmbeddingError
from ..store.base import ChangeFeed, HandbookStore, RetrievalRows
from .ann import AnnIndex, find_saved, index_dir, labels_of
from .base import ScoredBehavior
from .exact import ExactMatrix, cosine_scores
from .registry import AnnSettings, SnapshotCache, fetch_rows
from .snapshot import Snapshot, top_rows

__all__ = ["VectorIndex", "VectorSet", "cosine_scores"]

log = logging.getLogger(__name__)

_SAVE_EVERY = 1_000  # vectors changed in an ANN index between two saves
_BUILD_CHUNK = 8_192  # vectors per insert call while an index is built


def ann_available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


class VectorSet:
    """The snapshot's "vectors" attachment: ``ExactMatrix`` rows, or an ``AnnIndex`` past the threshold."""

    def __init__(self, snapshot: Snapshot, cache: SnapshotCache) -> None:
        self.snapshot, self.store, self.settings = snapshot, cache.store, cache.ann
        self.folder: Path | None = index_dir(cache.store) if cache.ann.persist else None
        self.dim = 0
        self.exact: ExactMatrix | None = None
        self.ann: AnnIndex | None = None
        self.lock = threading.Lock()
        self._pending: list[tuple[Sequence[int], Sequence[str], Sequence[int], RetrievalRows]] | None = None
        self._builder: threading.Thread | None = None
        self.foreign = 0  # vectors of another size seen since the load (a re-embedding)
        self._fresh: dict[int, npt.NDArray[np.float32]] = {}  # row -> vector not in the HNSW index yet
        self._fresh_matrix: tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]] | None = None
        self._queue: deque[tuple[list[str], list[tuple[int, str, npt.NDArray[np.float32]]]]] = deque()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        if not self._load_saved():
            self._load_vectors()

    # --- loading ------------------------------------------------------------------------------
    def _load_saved(self) -> bool:
        """Load the newest saved ANN index and catch it up with the change feed; False when there is none to use."""
        snapshot, store = self.snapshot, self.store
        saved = find_saved(self.folder, snapshot.namespace) if snapshot.loaded_vectors is None else None
        if saved is None or not isinstance(store, ChangeFeed) or not ann_available():
            return False
        path, dim, token = saved
        changes = store.changes_since(snapshot.namespace, token) if token <= snapshot.token else None
        if changes is None:
            return False
        try:  # memory-mapped: no copy, no wait; the writer thread reads a copy it can change
            ann = AnnIndex.load(path, dim, self.settings, view=True)
        except Exception as exc:  # a damaged or foreign file: rebuild from the store
            log.warning("ignoring the saved vector index %s: %s", path, exc)
            return False
        touched = {*changes[1], *changes[2]}  # written since the file: their entries there may be stale
        rows = [r for r in np.flatnonzero(snapshot.live).tolist() if snapshot.ids[r] not in touched]
        ann.map_rows(rows, labels_of([snapshot.ids[r] for r in rows]))
        self.ann, self.dim = ann, dim
        self._writer = start_background(self._write_loop, "bmem-ann-writer")
        if touched:
            fresh = [i for i in changes[1] if i in snapshot.row_of]
            fetched = fetch_rows(store, snapshot.namespace, ids=fresh, with_vectors=True, feed=True) if fresh else None
            vectors = self._vectors_by_id(fetched) if fetched is not None else {}
            added = [snapshot.row_of[i] for i in vectors]
            self._defer_vectors(sorted(touched), [(r, i, vectors[i]) for r, i in zip(added, vectors, strict=True)])
        log.info("mapped the vector index of %r from %s (%d vectors)", snapshot.namespace, path, len(ann))
        return True

    def _load_vectors(self) -> None:
        snapshot = self.snapshot
        vectors = snapshot.loaded_vectors or self.store.vectors(snapshot.namespace)
        ids, matrix = vectors
        pairs = [(snapshot.row_of[i], j) for j, i in enumerate(ids) if i in snapshot.row_of]
        if not pairs:
            return
        self.dim = int(matrix.shape[1])
        self.exact = ExactMatrix(self.dim)
        rows = [r for r, _ in pairs]
        picks = [j for _, j in pairs]
        self.exact.put(rows, matrix if picks == list(range(matrix.shape[0])) else matrix[picks])
        if len(rows) >= self.settings.threshold and ann_available():
            self._build_ann_in_background(rows)

    def _build_ann_in_background(self, rows: list[int]) -> None:
        assert self.exact is not None
        data, namespace = self.exact.data, self.snapshot.namespace
        self._pending = []

        def build() -> None:
            try:
                ann = AnnIndex(self.dim, self.settings)
                contiguous = rows == list(range(len(rows)))  # a view, not a copy of a large matrix
                keys = labels_of([self.snapshot.ids[r] for r in rows])
                for start in range(0, len(rows), _BUILD_CHUNK):  # in chunks: an exit need not wait long
                    if stopping():
                        return
                    part = slice(start, start + _BUILD_CHUNK)
                    chunk = data[part] if contiguous else data[rows[part]]
                    ann.add(rows[part], keys[part], chunk, threads=0)
                ann.compact()  # the chunks' row map and vectors sorted once, before the first query
                with self.lock:
                    for change in self._pending or []:
                        self._apply_ann(ann, *change)
                    self.ann, self.exact, self._pending = ann, None, None
                    token = self.snapshot.token
                log.info("built the vector index of %r (%d vectors)", namespace, len(ann))
                self._save(token)
            except Exception:  # the exact scan keeps answering
                log.exception("building the vector index of %r failed", namespace)
                self._pending = None

        self._builder = start_background(build, f"bmem-ann-{namespace}")

    def wait(self, timeout: float | None = None) -> None:
        """Wait for an index build under way (tests, benches)."""
        if self._builder is not None:
            self._builder.join(timeout)

    def _save(self, token: int) -> None:
        ann = self.ann
        if self.folder is None or ann is None:
            return
        try:
            path = ann.save(self.folder, self.snapshot.namespace, token)
            log.info("saved the vector index of %r to %s", self.snapshot.namespace, path)
        except OSError as exc:
            log.warning("could not save the vector index of %r: %s", self.snapshot.namespace, exc)

    # --- changes ------------------------------------------------------------------------------
    def _vectors_by_id(self, fetched: RetrievalRows) -> dict[str, npt.NDArray[np.float32]]:
        if fetched.vectors is None:
            return {}
        ids, matrix = fetched.vectors
        if not ids:
            return {}
        if self.dim and matrix.shape[1] != self.dim:
            self.foreign += len(ids)  # another embedder's vectors: they take over once they are most
            return {}
        return {i: matrix[j] for j, i in enumerate(ids)}

    def _switch_if_outnumbered(self) -> None:
        """After a re-embedding into another size, load the new vectors once they outnumber the old."""
        if self.foreign and self.foreign >= self.size():
            log.info("vectors of %r changed size: loading them again", self.snapshot.namespace)
            self.exact, self.ann, self.dim, self.foreign = None, None, 0, 0
            self.snapshot.loaded_vectors = None
            self._load_vectors()

    def apply(self, dead: Sequence[int], dead_ids: Sequence[str], added: Sequence[int], fetched: RetrievalRows) -> None:
        with self.lock:
            self._apply(dead, dead_ids, added, fetched)
            self._switch_if_outnumbered()

    def _apply(
        self, dead: Sequence[int], dead_ids: Sequence[str], added: Sequence[int], fetched: RetrievalRows
    ) -> None:
        if self.exact is not None:
            self.exact.drop(dead)
            vectors = self._vectors_by_id(fetched)
            pairs = [(r, vectors[i]) for r, i in zip(added, fetched.ids, strict=True) if i in vectors]
            if pairs:
                self.exact.put([r for r, _ in pairs], np.stack([v for _, v in pairs]))
            if self._pending is not None:
                self._pending.append((dead, dead_ids, added, fetched))
        elif self.ann is not None:
            self._defer(dead, dead_ids, added, fetched)
        else:  # no vector yet: the first ones decide the size
            vectors = self._vectors_by_id(fetched)
            if vectors:
                self.dim = len(next(iter(vectors.values())))
                self.exact = ExactMatrix(self.dim)
                pairs = [(r, vectors[i]) for r, i in zip(added, fetched.ids, strict=True) if i in vectors]
                self.exact.put([r for r, _ in pairs], np.stack([v for _, v in pairs]))

    def _apply_ann(
        self, ann: AnnIndex, dead: Sequence[int], dead_ids: Sequence[str], added: Sequence[int], fetched: RetrievalRows
    ) -> None:
        vectors = self._vectors_by_id(fetched)
        self._write_ann(
            ann, list(dead_ids), [(r, i, vectors[i]) for r, i in zip(added, fetched.ids, strict=True) if i in vectors]
        )

    def _write_ann(
        self, ann: AnnIndex, dead_ids: list[str], new: list[tuple[int, str, npt.NDArray[np.float32]]]
    ) -> None:
        keys = labels_of([i for _, i, _ in new])
        matrix = np.stack([v for _, _, v in new]) if new else np.zeros((0, self.dim), dtype=np.float32)
        same = ann.same_vectors(keys, matrix)  # an edit of the text or the status keeps its vector
        ann.map_rows([r for (r, _, _), s in zip(new, same, strict=True) if s], keys[same])
        ann.add([r for (r, _, _), s in zip(new, same, strict=True) if not s], keys[~same], matrix[~same])
        kept = set(keys.tolist())
        gone = labels_of(dead_ids)
        ann.remove(gone[[key not in kept for key in gone.tolist()]] if gone.shape[0] else gone)

    # --- writes to the HNSW index, off the request path -----------------------------------------------
    def _defer(
        self, dead: Sequence[int], dead_ids: Sequence[str], added: Sequence[int], fetched: RetrievalRows
    ) -> None:
        """A change to an HNSW namespace: its new vectors are searched exactly (``_fresh``) until the
        writer thread has put them into the index; a dead row is skipped by every search already."""
        vectors = self._vectors_by_id(fetched)
        new = [(r, i, vectors[i]) for r, i in zip(added, fetched.ids, strict=True) if i in vectors]
        fresh = dict(self._fresh)
        for row in dead:
            fresh.pop(row, None)
        self._fresh = fresh
        self._defer_vectors(list(dead_ids), new)

    def _defer_vectors(self, dead_ids: list[str], new: list[tuple[int, str, npt.NDArray[np.float32]]]) -> None:
        fresh = dict(self._fresh)
        fresh.update((r, v) for r, _, v in new)
        self._fresh, self._fresh_matrix = fresh, None
        self._queue.append((dead_ids, new))
        if self._writer is None:
            self._writer = start_background(self._write_loop, "bmem-ann-writer")
        self._wake.set()

    def _write_loop(self) -> None:
        # A memory-mapped index takes no writes: a copy is made a second after the open (the first
        # queries go first), before the first change needs it; until then changes are searched exactly.
        time.sleep(1.0)
        while not stopping():
            if self.ann is not None and self.ann.path is not None:
                try:
                    self.ann = self.ann.mutable()
                except Exception:
                    log.exception("reading the vector index of %r failed", self.snapshot.namespace)
                    return
            if not self._wake.wait(0.5):
                continue
            # let the request that queued the change finish first (this thread's Python work would
            # hold the interpreter meanwhile), and gather the writes that follow it
            time.sleep(0.005)
            self._wake.clear()
            while self._queue and not stopping():
                dead_ids, new = self._queue[0]
                ann = self.ann
                try:
                    if ann is not None:
                        self._write_ann(ann, dead_ids, new)
                except Exception:  # the exact side list keeps answering for these rows
                    log.exception("updating the vector index of %r failed", self.snapshot.namespace)
                    continue
                finally:
                    self._queue.popleft()
                with self.lock:
                    fresh = dict(self._fresh)
                    for r, _, _ in new:
                        fresh.pop(r, None)
                    self._fresh, self._fresh_matrix = fresh, None
            ann = self.ann
            if ann is not None and ann.changed_since_save >= _SAVE_EVERY and self.folder is not None:
                self._save(self.snapshot.token)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until the writer thread has put every change into the HNSW index (tests, benches)."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._fresh) and time.monotonic() < deadline:
            time.sleep(0.005)

    def _fresh_rows(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]] | None:
        fresh = self._fresh
        if not fresh:
            return None
        cached = self._fresh_matrix
        if cached is None or cached[0].shape[0] != len(fresh):
            rows = np.fromiter(fresh.keys(), dtype=np.intp, count=len(fresh))
            cached = self._fresh_matrix = (rows, np.stack(list(fresh.values())))
        return cached

    # --- searching ----------------------------------------------------------------------------
    def size(self) -> int:
        if self.ann is not None:
            return len(self.ann)
        return 0 if self.exact is None else self.exact.count()

    def search(
        self, query: npt.NDArray[np.float32], k: int, floor: float, topic: str | None
    ) -> list[tuple[int, float]]:
        """``(row, cosine)`` of the ``k`` nearest rows with cosine ``>= floor``, by ``(-cosine, name)``."""
        snapshot = self.snapshot
        ann, exact = self.ann, self.exact
        if ann is not None:
            code = snapshot.topic_code(topic)
            best = dict(ann.search(query, k, snapshot, code))
            fresh = self._fresh_rows()
            if fresh is not None:  # changed rows the writer thread has not put into the index yet
                rows, matrix = fresh
                ok = snapshot.live[rows] if code is None else snapshot.live[rows] & (snapshot.topics[rows] == code)
                for row, score in zip(rows[ok].tolist(), cosine_scores(matrix[ok], query).tolist(), strict=True):
                    best[row] = score
            found = [(r, s) for r, s in best.items() if s >= floor]
            found.sort(key=itemgetter(1), reverse=True)
            if len(found) > k:  # the k best and whatever ties the k-th, then ties broken by name
                found = [item for item in found if item[1] >= found[k - 1][1]]
            found.sort(key=lambda item: (-item[1], snapshot.names[item[0]]))
            return found[:k]
        if exact is None:
            return []
        n = snapshot.n
        scores = exact.scores(query, n)
        mask = snapshot.topic_mask(topic)
        if mask is not None:
            scores = np.where(mask[:n], scores, np.float32(-np.inf))
        return [(int(r), float(scores[r])) for r in top_rows(scores, k, floor, snapshot.names)]


class VectorIndex:
    """Top-k cosine search per namespace over the shared snapshot's vectors; thread-safe."""

    def __init__(
        self, store: HandbookStore, snapshots: SnapshotCache | None = None, *, ann: AnnSettings | None = None
    ) -> None:
        self.store = store
        self.snapshots = snapshots or SnapshotCache.shared(store, ann)
        self.snapshots.want("vectors", self._build)

    def _build(self, snapshot: Snapshot) -> VectorSet:
        return VectorSet(snapshot, self.snapshots)

    def vectors(self, namespace: str) -> tuple[Snapshot, VectorSet]:
        """The namespace's snapshot and its vectors (loaded on first use)."""
        snapshot = self.snapshots.get(namespace)
        vectors = snapshot.attach("vectors", self._build)
        assert isinstance(vectors, VectorSet)
        return snapshot, vectors

    def size(self, namespace: str) -> int:
        """Number of searchable vectors in ``namespace`` (loads them if needed)."""
        return self.vectors(namespace)[1].size()

    def search(
        self,
        namespace: str,
        vector: npt.ArrayLike,
        k: int,
        *,
        floor: float = -1.0,
        topic: str | None = None,
        source: str = "embedding",
    ) -> list[ScoredBehavior]:
        """The ``k`` behaviors most similar to ``vector`` with cosine ``>= floor``, best first.

        ``topic``, when given, restricts the candidates to behaviors of that topic.
        """
        snapshot, found = self.search_rows(namespace, vector, k, floor=floor, topic=topic)
        scores = dict(found)
        return [ScoredBehavior(b, scores[r], source) for r, b in snapshot.materialized([r for r, _ in found])]

    def search_rows(
        self, namespace: str, vector: npt.ArrayLike, k: int, *, floor: float = -1.0, topic: str | None = None
    ) -> tuple[Snapshot, list[tuple[int, float]]]:
        """Like ``search``, as ``(row, cosine)`` of the snapshot it returns (no ``Behavior`` made yet)."""
        snapshot, vectors = self.vectors(namespace)
        if k <= 0 or vectors.size() == 0:
            return snapshot, []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != vectors.dim:
            raise EmbeddingError(
                f"query vector has {query.shape[0]} dimensions but namespace {namespace!r} stores "
                f"{vectors.dim}: the handbook was embedded by another model; re-embed it"
            )
        # not np.linalg.norm: its BLAS dot waits for busy cores (see ``cosine_scores``)
        norm = float(np.sqrt(cosine_scores(query[None, :], query)[0]))
        if norm == 0.0 or not np.isfinite(norm):
            return snapshot, []
        return snapshot, vectors.search(query / norm, k, floor, topic)
