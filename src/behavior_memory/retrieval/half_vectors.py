"""``HalfVectors``: each behavior's vector in float16, looked up by its 64-bit key, to re-rank HNSW hits.

The HNSW graph (``ann.AnnIndex``) keeps its vectors as int8, which makes a walk about twice as fast
as float16 but ranks near-ties loosely (recall@5 0.93 at 100k); re-scoring its top 20 with these
float16 vectors gives the recall back (0.99) for a few microseconds. Layout: the keys sorted, with
their vectors in the same order (saved as two ``.npy`` files beside the index and memory-mapped by a
new process: nothing is read until a query needs a row), plus the vectors written since in a small
dict that is folded in when it grows; large batches (an index being built) wait unsorted until the
first read. One writer; readers take ``state`` whole.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["HalfVectors"]

_Keys = npt.NDArray[np.uint64]
_Half = npt.NDArray[np.float16]
_BULK = 4_096  # a batch at least this large is merged in bulk, not through the dict


class HalfVectors:
    """Float16 vectors by key (see the module docstring)."""

    def __init__(self, dim: int, keys: _Keys | None = None, vectors: _Half | None = None) -> None:
        self.dim = dim
        base_keys = keys if keys is not None else np.zeros(0, dtype=np.uint64)
        base = vectors if vectors is not None else np.zeros((0, dim), dtype=np.float16)
        recent: dict[int, _Half] = {}
        self.state = (base_keys, base, recent)
        self._bulk: list[tuple[_Keys, _Half]] = []  # large batches not merged yet
        self._merging = threading.Lock()

    @classmethod
    def from_matrix(cls, keys: _Keys, matrix: npt.NDArray[np.float32]) -> HalfVectors:
        """In bulk: ``matrix[i]`` is the vector of ``keys[i]`` (keys unique)."""
        order = np.argsort(keys, kind="stable")
        return cls(matrix.shape[1], keys[order], matrix[order].astype(np.float16))

    def copy(self) -> HalfVectors:
        self._settle()
        other = HalfVectors(self.dim)
        keys, base, recent = self.state
        other.state = (keys, base, dict(recent))
        return other

    def __len__(self) -> int:
        self._settle()
        return int(self.state[0].shape[0]) + len(self.state[2])

    def put(self, keys: _Keys, matrix: npt.NDArray[np.float32]) -> None:
        """Set (or replace) the vectors of these keys."""
        half = matrix.astype(np.float16)
        if keys.shape[0] >= _BULK:
            with self._merging:
                self._bulk.append((keys, half))
            return
        self._settle()
        recent = self.state[2]
        recent.update(zip(keys.tolist(), half, strict=True))
        if len(recent) > max(4096, self.state[0].shape[0] // 8):
            self._fold()

    def _fold(self) -> None:
        recent = self.state[2]
        changed = np.fromiter(recent.keys(), dtype=np.uint64, count=len(recent))
        self._merge([(changed, np.stack(list(recent.values())))])

    def _merge(self, batches: list[tuple[_Keys, _Half]]) -> None:
        """Fold ``batches`` (later ones win) and the recent dict into the sorted arrays."""
        keys, base, recent = self.state
        if recent:
            batches = [*batches, (np.fromiter(recent.keys(), dtype=np.uint64), np.stack(list(recent.values())))]
        new_keys = np.concatenate([k for k, _ in batches])
        new = np.concatenate([v for _, v in batches])
        last = new_keys.shape[0] - 1 - np.unique(new_keys[::-1], return_index=True)[1]  # a key's latest
        new_keys, new = new_keys[last], new[last]
        keep = ~np.isin(keys, new_keys)
        merged_keys = np.concatenate([keys[keep], new_keys])
        merged = np.concatenate([np.asarray(base[keep]), new])
        order = np.argsort(merged_keys, kind="stable")
        self.state = (merged_keys[order], merged[order], {})

    def compact(self) -> None:
        """Merge everything waiting (large batches and the recent dict) into the sorted arrays."""
        self._settle()
        if self.state[2]:
            self._fold()

    def _settle(self) -> None:
        """Merge the large batches waiting, if any (the first read after an index build)."""
        if not self._bulk:
            return
        with self._merging:
            if self._bulk:
                self._merge(self._bulk)
                self._bulk = []

    def get(self, keys: _Keys) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """``(found, matrix)``: whether each key has a vector, and the vectors (zeros where not)."""
        self._settle()
        base_keys, base, recent = self.state
        if base_keys.shape[0] and keys.shape[0]:
            at = np.searchsorted(base_keys, keys)
            np.minimum(at, base_keys.shape[0] - 1, out=at)
            found = base_keys[at] == keys
            out = base[at].astype(np.float32)  # a gather of a few rows: cheaper than masking first
            if not found.all():
                out[~found] = 0.0
        else:
            found = np.zeros(keys.shape[0], dtype=bool)
            out = np.zeros((keys.shape[0], self.dim), dtype=np.float32)
        if recent:
            for i, key in enumerate(keys.tolist()):
                vector = recent.get(key)
                if vector is not None:
                    out[i] = vector
                    found[i] = True
        return found, out

    # --- files ---------------------------------------------------------------------------------
    def save(self, keys_path: Path, vectors_path: Path) -> None:
        """Write both files (each through a temporary file and a rename)."""
        self.compact()
        keys, base, _ = self.state
        for path, array in ((keys_path, keys), (vectors_path, base)):
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(temporary, "wb") as out:
                np.save(out, np.asarray(array))
            os.replace(temporary, path)

    @classmethod
    def load(cls, keys_path: Path, vectors_path: Path, dim: int) -> HalfVectors:
        """The files ``save`` wrote, memory-mapped (read-only; writes go to the recent dict)."""
        keys = np.load(keys_path, mmap_mode="r")
        vectors = np.load(vectors_path, mmap_mode="r")
        if keys.dtype != np.uint64 or vectors.dtype != np.float16 or vectors.shape != (keys.shape[0], dim):
            raise ValueError(f"{vectors_path} does not hold {keys.shape[0]} float16 vectors of {dim} dimensions")
        return cls(dim, keys, vectors)
