"""``HashingEmbedder``: vectors without a model, from hashed word unigrams and bigrams.

Each word and each pair of adjacent words is hashed with blake2b (stable across processes and
machines, unlike Python's salted ``hash``) into one of ``dim`` buckets with a sign, weighted by
``1 + log(count)``, and the row is L2-normalised. Texts sharing words get a high cosine, so dedup
and "embedding" retrieval work with nothing installed beyond numpy. It knows no synonyms: use a
real model (sentence-transformers, or an ``/v1/embeddings`` server) for meaning.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Embedder
from .words import split_words

if TYPE_CHECKING:  # numpy loads with the first vector, not with the import
    import numpy as np
    import numpy.typing as npt

__all__ = ["HashingEmbedder", "HashingEmbeddingsConfig"]

#: Weight of a bigram relative to a unigram: word order helps, but shared words matter most.
BIGRAM_WEIGHT = 0.5


class HashingEmbeddingsConfig(BaseModel):
    """YAML ``embeddings: {provider: hashing, dim: 384}``."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["hashing"] = "hashing"
    dim: int = Field(default=384, ge=16, le=65536, description="number of hash buckets")


@lru_cache(maxsize=65536)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    # the low bit picks the sign, so colliding features cancel on average instead of piling up
    return (value >> 1) % dim, 1.0 if value & 1 else -1.0


class HashingEmbedder(Embedder):
    """Hashed bag of word uni/bigrams; deterministic, dependency-free, ``dim`` wide.

    >>> e = HashingEmbedder(dim=64)
    >>> v = e.embed(["count the union by inclusion exclusion", "inclusion exclusion counts a union"])
    >>> v.shape, round(float((v[0] ** 2).sum()), 5)
    ((2, 64), 1.0)
    """

    def __init__(self, dim: int = 384) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = dim

    @property
    def name(self) -> str:
        return f"hashing-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> Counter[str]:
        words = split_words(text)
        features: Counter[str] = Counter(words)
        features.update(f"{a} {b}" for a, b in itertools.pairwise(words))
        return features

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, count in self._features(text).items():
                bucket, sign = _bucket(feature, self._dim)
                weight = (1.0 + math.log(count)) * (BIGRAM_WEIGHT if " " in feature else 1.0)
                out[row, bucket] += sign * weight
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    @classmethod
    def from_config(cls, config: HashingEmbeddingsConfig) -> HashingEmbedder:
        return cls(dim=config.dim)
