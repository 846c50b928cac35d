"""``AnnIndex``: approximate nearest neighbours (HNSW) for a namespace past ``retrieval.ann_threshold``.

Built on **usearch** (Unum, Apache-2.0, ``pip install "behavior-memory[ann]"``). Why it, and not
faiss or hnswlib: it adds *and removes* single vectors in place (faiss's HNSW cannot remove; hnswlib
only marks deletions and has not had a release since 2023), it saves one file a new process loads
in a fraction of a second (``Index.restore``; ``view=True`` memory-maps it), it stores vectors as
int8 (a walk twice as fast as float16; the top hits are re-scored with float16 copies,
``half_vectors``, so recall is not lost), and it ships wheels with no system dependency for Linux,
macOS and Windows. ``import behavior_memory`` never loads it: this
module is imported only when a namespace crosses the threshold.

Keys are 64 bits of the behavior id (its first 16 hex digits for our uuid4 ids, a hash otherwise),
so a saved index stays valid whichever rows a process gives the behaviors. The file is named after
the namespace, the vector size and the change token it reflects
(``<handbook.db>.index/<namespace hash>-<dim>d-<token>.i8.usearch``, with ``.keys.npy`` and
``.half.npy`` beside it, written first): a process that opens the handbook
later loads the newest one and applies ``changes_since(token)``; it never rebuilds unless the feed
no longer reaches back. Filters: the index holds one namespace's injectable behaviors only, so
namespace and status filters are exact by construction; a topic is over-fetched (in proportion to
its share of the namespace) and re-checked, and a small topic is searched exactly.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import MissingDependencyError
from .half_vectors import HalfVectors

if TYPE_CHECKING:
    from .registry import AnnSettings
    from .snapshot import Snapshot

__all__ = ["AnnIndex", "find_saved", "index_dir", "labels_of"]

log = logging.getLogger(__name__)

_CONNECTIVITY = 16  # HNSW's M
_EXPANSION_ADD = 128  # efConstruction: with ef_search 64, recall@5 0.98 at 100k (64: 0.977)
_EXACT_TOPIC = 2_048  # a topic with at most this many behaviors is searched exactly
_SERIAL_START = 2_048  # an index smaller than this grows one insert at a time
# int8 walks, float16 re-scores: at 100k, recall@5 0.931 from the int8 top 5, 0.989 from its top 20
# re-scored, at 0.21 ms against float16's 0.43 ms (bench/bench_retrieval.py's vectors, ef_search 64).
# A larger graph needs a wider walk for the same recall: at 1M, 0.974 at ef_search 64, 0.985 at 96
# (top 40 re-scored; 0.46 ms and 0.57 ms for the bare index call on a busy machine).
_RESCORE = 40
_WIDEN_FROM = 500_000  # vectors from which the walk is half as wide again as retrieval.ann_ef_search
_FORMAT = "i8"  # in the file name: an index saved in another layout is not loaded (it is rebuilt)
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)


#: every index of this process, released before the interpreter tears its modules down (usearch's
#: native objects freed during that teardown can abort the process: "terminate called ...")
_OPEN: weakref.WeakSet[AnnIndex] = weakref.WeakSet()


@atexit.register
def _release_all() -> None:
    for ann in list(_OPEN):
        try:
            ann.index.reset()
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _usearch_index() -> Any:
    try:
        from usearch.index import Index
    except ImportError as exc:
        raise MissingDependencyError("approximate vector search (retrieval.ann_threshold)", "ann") from exc
    return Index


def labels_of(ids: list[str]) -> npt.NDArray[np.uint64]:
    """The 64-bit key of each behavior id (vectorised for hex ids, hashed for any other)."""
    if not ids:
        return np.zeros(0, dtype=np.uint64)
    raw = np.array([i[:16] for i in ids], dtype="S16")
    nibbles = _HEX[raw.view(np.uint8).reshape(len(ids), 16)].astype(np.uint64)
    keys = np.zeros(len(ids), dtype=np.uint64)
    for column in range(16):
        keys = (keys << np.uint64(4)) | nibbles[:, column]
    short = raw.view(np.uint8).reshape(len(ids), 16)[:, 15] == 0  # "S16" pads a shorter id with zeros
    odd = np.flatnonzero((nibbles == 255).any(axis=1) | short)
    for row in odd.tolist():
        keys[row] = int.from_bytes(hashlib.blake2b(ids[row].encode(), digest_size=8).digest(), "little")
    return keys


def index_dir(store: object) -> Path | None:
    """Where a store kept in a file keeps its indexes (``<file>.index``); ``None`` for any other store."""
    path = getattr(store, "path", None)
    return Path(f"{path}.index") if isinstance(path, Path) else None


def _stem(namespace: str) -> str:
    return hashlib.sha1(namespace.encode()).hexdigest()[:16]


def find_saved(folder: Path | None, namespace: str) -> tuple[Path, int, int] | None:
    """``(path, dim, token)`` of the newest saved index of ``namespace``, or ``None``."""
    if folder is None or not folder.is_dir():
        return None
    pattern = re.compile(rf"{_stem(namespace)}-(\d+)d-(\d+)\.{_FORMAT}\.usearch")
    found = [(m, p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    if not found:
        return None
    match, path = max(found, key=lambda item: int(item[0].group(2)))
    return path, int(match.group(1)), int(match.group(2))


class _RowMap:
    """Key -> snapshot row in sorted arrays (12 bytes a behavior, not a dict's ~100), with the changes
    since in a small dict that is folded in when it grows. One writer; readers take ``state`` whole."""

    def __init__(self) -> None:
        empty: dict[int, int] = {}  # key -> row, -1 for a key taken out
        self.state = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32), empty)

    def copy(self) -> _RowMap:
        other = _RowMap()
        keys, values, changes = self.state
        other.state = (keys, values, dict(changes))
        return other

    def update(self, keys: npt.NDArray[np.uint64], rows: list[int]) -> None:
        if not self.state[0].shape[0] and not self.state[2] and len(rows) > 4096:  # the first, bulk mapping
            order = np.argsort(keys, kind="stable")
            self.state = (keys[order], np.asarray(rows, dtype=np.int32)[order], {})
            return
        self.state[2].update(zip(keys.tolist(), rows, strict=True))
        if len(self.state[2]) > max(4096, self.state[0].shape[0] // 8):
            self._fold()

    def compact(self) -> None:
        if self.state[2]:
            self._fold()

    def forget(self, keys: npt.NDArray[np.uint64]) -> None:
        self.state[2].update((key, -1) for key in keys.tolist())

    def _fold(self) -> None:
        base, values, changes = self.state
        changed = np.fromiter(changes.keys(), dtype=np.uint64, count=len(changes))
        rows = np.fromiter(changes.values(), dtype=np.int64, count=len(changes))
        keep = ~np.isin(base, changed)
        keys = np.concatenate([base[keep], changed[rows >= 0]])
        merged = np.concatenate([values[keep], rows[rows >= 0].astype(np.int32)])
        order = np.argsort(keys, kind="stable")
        self.state = (keys[order], merged[order], {})

    def rows(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """The row of each key, -1 for a key not mapped."""
        base, values, changes = self.state
        if base.shape[0]:
            at = np.searchsorted(base, keys)
            np.minimum(at, base.shape[0] - 1, out=at)
            out = values[at].astype(np.int64)
            out[base[at] != keys] = -1
        else:
            out = np.full(keys.shape[0], -1, dtype=np.int64)
        if changes:
            for i, key in enumerate(keys.tolist()):
                row = changes.get(key)
                if row is not None:
                    out[i] = row
        return out


def _last_of_each_key(
    rows: list[int], keys: npt.NDArray[np.uint64], matrix: npt.NDArray[np.float32]
) -> tuple[list[int], npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
    """One entry per key, the latest (a batch of changes can carry one behavior twice)."""
    _, first_from_end = np.unique(keys[::-1], return_index=True)
    if first_from_end.shape[0] == keys.shape[0]:
        return rows, keys, matrix
    keep = np.sort(keys.shape[0] - 1 - first_from_end)
    return [rows[i] for i in keep.tolist()], keys[keep], matrix[keep]


class AnnIndex:
    """HNSW (cosine, int8, re-scored in float16) over one namespace's vectors, keyed by behavior id;
    rows from its snapshot."""

    def __init__(
        self,
        dim: int,
        settings: AnnSettings,
        index: Any | None = None,
        *,
        path: Path | None = None,
        half: HalfVectors | None = None,
    ) -> None:
        self.dim, self.settings = dim, settings
        self.path = path  # the file a viewed index maps (read-only until ``mutable``)
        self.index = index or _usearch_index()(
            ndim=dim, metric="ip", dtype=_FORMAT, connectivity=_CONNECTIVITY, expansion_add=_EXPANSION_ADD
        )
        self.half = half or HalfVectors(dim)  # the float16 vectors that re-score the walk's hits
        self.index.expansion_search = settings.ef_search
        _OPEN.add(self)
        self._row_of = _RowMap()  # key -> snapshot row
        self.lock = threading.Lock()  # writers (add, remove, save); searches run beside them
        self.changed_since_save = 0

    def __len__(self) -> int:
        return len(self.index)

    # --- writing ------------------------------------------------------------------------------
    def map_rows(self, rows: list[int], keys: npt.NDArray[np.uint64]) -> None:
        """Point ``keys`` at these snapshot rows (after a load: the index has the vectors already)."""
        self._row_of.update(keys, rows)

    def add(
        self, rows: list[int], keys: npt.NDArray[np.uint64], matrix: npt.NDArray[np.float32], threads: int = 1
    ) -> None:
        """Insert (or replace) the vectors of these rows."""
        if not rows:
            return
        rows, keys, matrix = _last_of_each_key(rows, keys, matrix)  # usearch refuses a repeated key
        with self.lock:
            present = self.index.contains(keys)
            if np.any(present):
                self.index.remove(keys[present])
            matrix = np.ascontiguousarray(matrix, dtype=np.float32)
            # Concurrent inserts into a small graph can leave a node unreachable: the first ones go alone.
            alone = 0 if threads == 1 else max(0, min(len(rows), _SERIAL_START - len(self.index)))
            if alone:
                self.index.add(keys[:alone], matrix[:alone], threads=1)
            if alone < len(rows):
                self.index.add(keys[alone:], matrix[alone:], threads=threads)
            self.half.put(keys, matrix)
            self.map_rows(rows, keys)
            self.changed_since_save += len(rows)

    def compact(self) -> None:
        """Sort what the writes of a build left in the row map's and the float16 copies' small dicts
        (a query then looks keys up in sorted arrays only)."""
        with self.lock:
            self._row_of.compact()
            self.half.compact()

    def remove(self, keys: npt.NDArray[np.uint64]) -> None:
        """Take these behaviors out (unknown keys are ignored)."""
        with self.lock:
            present = keys[self.index.contains(keys)] if keys.shape[0] else keys
            if present.shape[0]:
                self.index.remove(present)
            self._row_of.forget(keys)
            self.changed_since_save += int(keys.shape[0])

    def same_vectors(self, keys: npt.NDArray[np.uint64], matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Whether each key is stored with (the float16 of) this vector already (an edit of the text only)."""
        if not keys.shape[0]:
            return np.zeros(0, dtype=bool)
        found, stored = self.half.get(keys)
        same: npt.NDArray[np.bool_] = found & np.all(stored == matrix.astype(np.float16).astype(np.float32), axis=1)
        in_index: npt.NDArray[np.bool_] = np.asarray(self.index.contains(keys), dtype=bool)
        return same & in_index

    # --- searching ----------------------------------------------------------------------------
    def search(
        self, query: npt.NDArray[np.float32], k: int, snapshot: Snapshot, topic_code: int | None
    ) -> list[tuple[int, float]]:
        """Up to ``k`` ``(row, cosine)`` pairs, best first (approximately), topic re-checked on each row."""
        size = len(self.index)
        if size == 0:
            return []
        topics, live = snapshot.topics, snapshot.live
        if topic_code is not None:
            members = int(np.count_nonzero((topics == topic_code) & live))
            if members == 0:
                return []
            if members <= _EXACT_TOPIC:
                return self._exact(query, snapshot, np.flatnonzero((topics == topic_code) & live))
            want = min(size, k * 2 * -(-size // members))
        else:
            members, want = size, k
        while True:
            self._widen(size)
            fetched = min(size, max(want, _RESCORE))
            found = self._lookup(self.index.search(query, fetched, threads=1), query, snapshot, topic_code)
            if len(found) >= k or fetched >= size:
                return found
            if topic_code is not None and want >= 8 * k * -(-size // members):
                return self._exact(query, snapshot, np.flatnonzero((topics == topic_code) & live))
            want = min(size, want * 4)

    def _widen(self, size: int) -> None:
        ef = self.settings.ef_search * 3 // 2 if size >= _WIDEN_FROM else self.settings.ef_search
        if self.index.expansion_search != ef:  # the index grew past (or shrank below) the mark
            self.index.expansion_search = ef

    def _lookup(
        self, matches: Any, query: npt.NDArray[np.float32], snapshot: Snapshot, topic_code: int | None
    ) -> list[tuple[int, float]]:
        """The hits that are live (and in the topic), re-scored with their float16 vectors, best first."""
        live, topics, n = snapshot.live, snapshot.topics, snapshot.n
        keys = np.asarray(matches.keys, dtype=np.uint64)
        rows = self._row_of.rows(keys)
        ok = (rows >= 0) & (rows < n)
        ok[ok] = live[rows[ok]]
        if topic_code is not None:
            ok[ok] = topics[rows[ok]] == topic_code
        has, vectors = self.half.get(keys[ok])
        # inner products of unit vectors: cosines (an entry without a float16 copy keeps the walk's)
        scores = np.where(has, vectors @ query, 1.0 - np.asarray(matches.distances, dtype=np.float32)[ok])
        order = np.argsort(-scores, kind="stable")
        return list(zip(rows[ok][order].tolist(), scores[order].tolist(), strict=True))

    def _exact(
        self, query: npt.NDArray[np.float32], snapshot: Snapshot, rows: npt.NDArray[np.intp]
    ) -> list[tuple[int, float]]:
        keys = labels_of([snapshot.ids[r] for r in rows.tolist()])
        has, matrix = self.half.get(keys)
        if not has.any():
            return []
        matrix = matrix[has]
        norms = np.linalg.norm(matrix, axis=1)
        norms[norms == 0] = 1.0
        scores = (matrix @ query) / norms
        return list(zip(rows[has].tolist(), scores.tolist(), strict=True))

    # --- files ---------------------------------------------------------------------------------
    def save(self, folder: Path, namespace: str, token: int) -> Path:
        """Write the index as of ``token`` (atomically: a temporary file, then a rename) and drop older ones."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_stem(namespace)}-{self.dim}d-{token}.{_FORMAT}.usearch"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self.lock:
            self.index.save(str(temporary))
            self.half.save(*_companions(path))  # before the index's rename: a found index has them
            self.changed_since_save = 0
        os.replace(temporary, path)
        current = {path, *_companions(path)}
        for old in folder.glob(f"{_stem(namespace)}-*"):
            if old not in current:
                try:
                    old.unlink()
                except OSError:  # another process may have removed it first
                    pass
        return path

    @classmethod
    def load(cls, path: Path, dim: int, settings: AnnSettings, *, view: bool = False) -> AnnIndex:
        """An index saved by ``save``: read into memory, or with ``view`` memory-mapped (instant,
        read-only, shared with other processes). Rows are mapped by the caller."""
        index = _usearch_index().restore(str(path), view=view)
        if index is None or index.ndim != dim:
            raise ValueError(f"{path} is not a usearch index of {dim} dimensions")
        half = HalfVectors.load(*_companions(path), dim)
        return cls(dim, settings, index, path=path if view else None, half=half)

    def mutable(self) -> AnnIndex:
        """This index as one that takes writes: itself, or for a viewed one a copy read into memory."""
        if self.path is None:
            return self
        # from the mapping: the file may be gone; the float16 files stay mapped (writes go beside them)
        copy = AnnIndex(self.dim, self.settings, self.index.copy(), half=self.half.copy())
        copy._row_of = self._row_of.copy()
        return copy


def _companions(path: Path) -> tuple[Path, Path]:
    """The float16 files saved beside an index: its keys, and their vectors."""
    stem = path.name.removesuffix(".usearch")
    return path.with_name(f"{stem}.keys.npy"), path.with_name(f"{stem}.half.npy")
