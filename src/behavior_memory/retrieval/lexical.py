"""``BM25Retriever``: Okapi BM25 over ``Behavior.text``, our own, in numpy.

Works with no embedder at all, and catches what embeddings blur: exact names of tools, functions,
error messages. Words come from ``split_words`` (lower-case, stop words dropped). The index is a
compressed sparse layout (for each term, the rows holding it and their precomputed BM25 weights),
built per namespace and rebuilt only when the change token moves. A query adds each of its distinct
terms' weights into a score vector; rows that share no term with the query are never returned.
A store with full-text search on its server (``store.search.TextSearch``: PostgreSQL) is asked
instead: its ranking (``ts_rank``) replaces BM25 there, and no process builds the index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..embeddings.words import split_words
from ..store.base import HandbookStore
from ..store.search import TextSearch
from ..types import INJECTABLE_STATUSES
from .base import Retriever, ScoredBehavior, rank
from .snapshot import NamespaceCache, Snapshot, SnapshotCache, top_rows

__all__ = ["BM25Retriever"]


@dataclass(frozen=True, eq=False)
class _Postings:
    snapshot: Snapshot
    vocabulary: dict[str, int]  # term -> term id
    indptr: npt.NDArray[np.int64]  # term t's postings are [indptr[t], indptr[t + 1])
    rows: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float32]  # idf * saturated, length-normalised term frequency


def _build_postings(snapshot: Snapshot, k1: float, b: float) -> _Postings:
    vocabulary: dict[str, int] = {}
    term_ids: list[int] = []
    doc_rows: list[int] = []
    n = len(snapshot.behaviors)
    lengths = np.zeros(n, dtype=np.float32)
    for row, behavior in enumerate(snapshot.behaviors):
        words = split_words(behavior.text)
        lengths[row] = len(words)
        for word in words:
            term_ids.append(vocabulary.setdefault(word, len(vocabulary)))
        doc_rows.extend([row] * len(words))
    if not term_ids:
        empty = np.zeros(0, dtype=np.int32)
        return _Postings(snapshot, {}, np.zeros(1, dtype=np.int64), empty, empty.astype(np.float32))
    # one (term, row) pair per occurrence -> unique pairs with their counts, sorted by term then row
    keys = np.asarray(term_ids, dtype=np.int64) * n + np.asarray(doc_rows, dtype=np.int64)
    pairs, tf = np.unique(keys, return_counts=True)
    terms, rows = np.divmod(pairs, n)
    df = np.bincount(terms, minlength=len(vocabulary))
    idf = np.log1p((n - df + 0.5) / (df + 0.5))  # Lucene's variant: never negative
    avg = float(lengths.mean()) or 1.0
    norm = k1 * (1.0 - b + b * lengths[rows] / avg)
    weights = idf[terms] * tf * (k1 + 1.0) / (tf + norm)
    indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    return _Postings(snapshot, vocabulary, indptr, rows.astype(np.int32), weights.astype(np.float32))


class BM25Retriever(Retriever):
    """Okapi BM25 (``k1``, ``b``) over each behavior's name words, instruction and topic.

    ``topic``, when given, restricts the candidates to behaviors of that topic.
    """

    source = "lexical"

    def __init__(
        self,
        store: HandbookStore,
        k1: float = 1.5,
        b: float = 0.75,
        *,
        snapshots: SnapshotCache | None = None,
    ) -> None:
        if k1 < 0 or not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.store, self.k1, self.b = store, k1, b
        self.snapshots = snapshots or SnapshotCache(store)
        self._cache: NamespaceCache[_Postings] = NamespaceCache(store, self._build)

    def _build(self, namespace: str, token: int) -> _Postings:
        return _build_postings(self.snapshots.get(namespace, token), self.k1, self.b)

    def scores(self, query: str, namespace: str) -> tuple[Snapshot, npt.NDArray[np.float32]]:
        """BM25 score of every injectable behavior of ``namespace`` (row order of the snapshot)."""
        index = self._cache.get(namespace)
        scores = np.zeros(len(index.snapshot.behaviors), dtype=np.float32)
        for term in dict.fromkeys(split_words(query)):
            term_id = index.vocabulary.get(term)
            if term_id is not None:
                start, stop = index.indptr[term_id], index.indptr[term_id + 1]
                scores[index.rows[start:stop]] += index.weights[start:stop]
        return index.snapshot, scores

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        if isinstance(self.store, TextSearch):
            return self._search_on_server(self.store, query, namespace=namespace, k=k, topic=topic)
        snapshot, scores = self.scores(query, namespace)
        mask = snapshot.topic_mask(topic)
        if mask is not None:
            scores[~mask] = 0.0
        # a score of 0 shares no term with the query (a float32 bound: a float64 one would round to 0)
        rows = top_rows(scores, k, floor=float(np.finfo(np.float32).tiny))
        return [ScoredBehavior(snapshot.behaviors[r], float(scores[r]), self.source) for r in rows]

    def _search_on_server(
        self, store: TextSearch, query: str, *, namespace: str, k: int, topic: str | None
    ) -> list[ScoredBehavior]:
        found = store.search_text(namespace, query, k, statuses=INJECTABLE_STATUSES, topic=topic)
        return rank((ScoredBehavior(b, score, self.source) for b, score in found if score > 0.0), k)
