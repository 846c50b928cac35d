"""Exact cosine search: one matrix-vector product over the rows that hold a vector, on one thread.

``ExactMatrix`` keeps row ``r`` of a snapshot's vectors at row ``r`` of a growable float32 matrix
(the snapshot's rows are append-only, so a change writes one row and clears another's flag). Below
``retrieval.ann_threshold`` it is the whole vector search; above it, it answers while the HNSW index
is built, and ``cosine_scores`` scores the few changed rows the index has not taken in yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["ExactMatrix", "cosine_scores"]

_VECDOT = getattr(np, "vecdot", None)  # numpy >= 2.0


def cosine_scores(matrix: npt.NDArray[np.float32], query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``matrix @ query``, computed on one thread on purpose.

    A multi-threaded BLAS matrix-vector product (what ``@`` calls) is about twice as fast on an
    idle machine, but 10-20 times slower when the cores are busy, and a CPU vLLM server on the same
    machine keeps them busy: its threads and BLAS's wait for each other. A row-by-row dot product
    (``np.vecdot``) needs no other thread: about 0.3-0.5 ms at 10k x 384 either way.
    """
    if _VECDOT is not None:
        scores: npt.NDArray[np.float32] = _VECDOT(matrix, query)
    else:
        scores = np.einsum("ij,j->i", matrix, query)
    return scores


class ExactMatrix:
    """Row ``r`` of ``data`` is the vector of snapshot row ``r`` when ``valid[r]``."""

    def __init__(self, dim: int) -> None:
        self.data = np.zeros((0, dim), dtype=np.float32)
        self.valid = np.zeros(0, dtype=bool)
        self._invalid: npt.NDArray[np.intp] | None = None

    def put(self, rows: Sequence[int], matrix: npt.NDArray[np.float32]) -> None:
        if not len(rows):
            return
        top = max(rows) + 1
        if top > self.data.shape[0]:
            size = max(top, self.data.shape[0] + self.data.shape[0] // 4, 64)
            grown = np.zeros((size, self.data.shape[1]), dtype=np.float32)
            grown[: self.data.shape[0]] = self.data
            valid = np.zeros(size, dtype=bool)
            valid[: self.valid.shape[0]] = self.valid
            self.data, self.valid = grown, valid
        self.data[list(rows)] = matrix
        self.valid[list(rows)] = True
        self._invalid = None

    def drop(self, rows: Sequence[int]) -> None:
        rows = [r for r in rows if r < self.valid.shape[0]]
        self.valid[rows] = False
        self._invalid = None

    def count(self) -> int:
        return int(np.count_nonzero(self.valid))

    def scores(self, query: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.float32]:
        m = min(n, self.data.shape[0])
        scores = np.full(n, -np.inf, dtype=np.float32)
        scores[:m] = cosine_scores(self.data[:m], query)
        invalid = self._invalid
        if invalid is None:
            invalid = self._invalid = np.flatnonzero(~self.valid[:m])
        scores[invalid[invalid < m]] = -np.inf
        return scores
