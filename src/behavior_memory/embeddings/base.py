"""The ``Embedder`` protocol: texts in, L2-normalised float32 rows out.

Every back-end (``hashing``, ``sentence-transformers``, ``openai``) returns an ``(n, dim)`` float32
matrix whose rows have unit length (or are all zero for a text with nothing to embed), so a dot
product is a cosine. ``name`` identifies the model: vectors made by different names do not mix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy loads with the first vector, not with the import
    import numpy as np
    import numpy.typing as npt

__all__ = ["Embedder", "l2_normalize"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors. Subclass it to inherit the threaded ``aembed``."""

    @property
    def name(self) -> str:
        """Which model made the vectors (``hashing-384``, ``sentence-transformers:all-MiniLM-L6-v2``)."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into an ``(len(texts), dim)`` float32 matrix of unit rows."""
        ...

    async def aembed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Async twin of ``embed``; by default runs ``embed`` in a worker thread."""
        return await asyncio.to_thread(self.embed, list(texts))


def l2_normalize(matrix: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length, as a C-contiguous float32 matrix; all-zero rows stay zero."""
    import numpy as np

    out = np.array(matrix, dtype=np.float32, copy=True, order="C")
    if out.ndim == 1:
        out = out.reshape(1, -1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out
